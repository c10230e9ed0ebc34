"""Builders of ``Store`` write ops and a snapshot of what a store holds, for the contract
suite and the lifecycle tests (which run over the same ``store`` fixture)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from legato.model import EventKind, HistoryEvent, Run, Signal, Task
from legato.storage.base import (
    Append,
    CloseTasks,
    NewRun,
    NewSignal,
    NewTask,
    SetRun,
    Store,
    UpdateTask,
)

T0 = 1_900_000_000.0


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _json(value: object) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def new_run(
    run_id: str,
    *,
    workflow: str = "wf",
    status: str = "running",
    created: float = T0,
    owner: str | None = None,
    deadline: float | None = None,
    args: list[object] | None = None,
    parent: str | None = None,
) -> NewRun:
    return NewRun(
        run_id,
        workflow,
        status,
        orjson.dumps(args if args is not None else [run_id]),
        created,
        deadline,
        owner,
        parent_run_id=parent,
    )


def append(
    run_id: str,
    pos: int,
    kind: EventKind = EventKind.STEP_STARTED,
    *,
    key: str | None = "1",
    name: str | None = "a",
    attempt: int = 1,
    data: object = None,
    ts: float = T0,
    owner: str | None = None,
) -> Append:
    return Append(run_id, pos, kind.value, key, name, attempt, _json(data), ts, owner)


def set_run(
    run_id: str,
    status: str,
    *,
    output: object = None,
    error: object = None,
    ts: float = T0 + 1,
    wake_at: float | None = None,
    release: bool = False,
    owner: str | None = None,
    error_pos: int | None = None,
) -> SetRun:
    return SetRun(
        run_id,
        status,
        _json(output),
        _json(error),
        ts,
        wake_at,
        release=release,
        owner=owner,
        error_pos=error_pos,
    )


def new_signal(run_id: str, name: str = "go", payload: object = None, ts: float = T0) -> NewSignal:
    return NewSignal(run_id, name, _json(payload), ts)


def new_task(
    run_id: str,
    task_id: str,
    *,
    name: str = "approve",
    data: object = None,
    assignee: str | None = None,
    form: object = None,
    created: float = T0,
    due: float | None = None,
) -> NewTask:
    return NewTask(run_id, task_id, name, _json(data), assignee, _json(form), created, due)


def close_tasks(
    run_id: str, task_id: str | None = None, *, status: str = "cancelled", ts: float = T0 + 1
) -> CloseTasks:
    return CloseTasks(run_id, task_id, status, ts)


def update_task(
    run_id: str,
    task_id: str,
    *,
    if_status: str = "open",
    status: str = "completed",
    response: object = None,
    ts: float = T0 + 1,
    by: str | None = None,
) -> UpdateTask:
    return UpdateTask(run_id, task_id, if_status, status, _json(response), ts, by)


@dataclass(frozen=True)
class State:
    """Everything a batch of writes can change, as the store's reads show it."""

    runs: list[Run]
    histories: dict[str, list[HistoryEvent]]
    signals: dict[str, list[Signal]]
    tasks: list[Task]


async def snapshot(store: Store, run_ids: Iterable[str] = ()) -> State:
    """What ``store`` holds: every run, task, and the history and signals of every run
    it holds or ``run_ids`` names (signals and history may exist for unknown runs)."""
    runs = await store.list_runs(limit=100_000)
    ids = sorted({r.run_id for r in runs} | set(run_ids))
    return State(
        runs=runs,
        histories=await store.histories(ids),
        signals={rid: await store.signals(rid) for rid in ids},
        tasks=await store.list_tasks(status=None, limit=100_000),
    )
