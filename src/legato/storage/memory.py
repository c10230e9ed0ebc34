"""In-memory ``Store``: the same contract as SQLite, for tests, docs and quick starts.

Rows are kept raw (float times, JSON bytes), as a database would keep them, and turned
into ``Run`` / ``HistoryEvent`` on read. Every method runs without awaiting, so each is
atomic on the event loop without a lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import orjson

from legato.errors import ConcurrencyConflict
from legato.model import HistoryEvent, Run, RunStatus, Signal, Task, TaskStatus
from legato.model.history import kind_of
from legato.model.ids import RunId
from legato.model.runs import TERMINAL_STATUSES
from legato.model.tokens import ApiToken, Scope
from legato.storage.base import (
    KEEP,
    Append,
    CloseTasks,
    NewRun,
    NewSignal,
    NewTask,
    RunSearch,
    SetRun,
    UpdateRun,
    UpdateTask,
    WorkerInfo,
    Write,
    to_datetime,
)
from legato.storage.fencing import fence_conflict, fenced_appends
from legato.storage.memoryalerts import MemoryAlerts
from legato.storage.memorybus import MemoryBus
from legato.storage.memoryexpect import MemoryExpectations

_TERMINAL = {s.value for s in TERMINAL_STATUSES}


@dataclass(slots=True)
class _Row:
    run_id: str
    workflow: str
    status: str
    input: bytes
    output: bytes | None
    error: bytes | None
    created_at: float
    updated_at: float
    deadline_at: float | None
    wake_at: float | None
    owner: str | None
    cancel_requested: bool = False
    parent_run_id: str | None = None
    error_pos: int | None = None
    correlation_id: str | None = None
    traceparent: str | None = None
    cancel_by: str | None = None


@dataclass(slots=True)
class _TaskRow:
    task_id: str
    run_id: str
    name: str
    data: bytes | None
    assignee: str | None
    form: bytes | None
    status: str
    response: bytes | None
    created_at: float
    due_at: float | None
    completed_at: float | None = None
    completed_by: str | None = None


def _task(row: _TaskRow) -> Task:
    return Task(
        task_id=row.task_id,
        run_id=row.run_id,
        name=row.name,
        data=_loads(row.data),
        assignee=row.assignee,
        form=_loads(row.form),  # type: ignore[arg-type]  # an object
        status=TaskStatus(row.status),
        response=_loads(row.response),
        created_at=to_datetime(row.created_at),  # type: ignore[arg-type]  # never None
        due_at=to_datetime(row.due_at),
        completed_at=to_datetime(row.completed_at),
        completed_by=row.completed_by,
    )


def _drop_last(items: list[Signal]) -> None:
    items.pop()


def _loads(data: bytes | None) -> object:
    return None if data is None else orjson.loads(data)


def _run(row: _Row, history: list[Append] | None = None) -> Run:
    """The ``Run`` of ``row``; ``history`` (its records) gives an error by reference."""
    error = row.error
    if error is None and row.error_pos is not None and history:
        error = next((op.data for op in history if op.pos == row.error_pos), None)
    return Run(
        run_id=RunId(row.run_id),
        workflow=row.workflow,
        status=RunStatus(row.status),
        input=orjson.loads(row.input),
        output=_loads(row.output),
        error=_loads(error),  # type: ignore[arg-type]  # a JSON object when set
        created_at=to_datetime(row.created_at),  # type: ignore[arg-type]  # never None
        updated_at=to_datetime(row.updated_at),  # type: ignore[arg-type]  # never None
        deadline_at=to_datetime(row.deadline_at),
        wake_at=to_datetime(row.wake_at),
        owner=row.owner,
        cancel_requested=row.cancel_requested,
        parent_run_id=row.parent_run_id,
        correlation_id=row.correlation_id,
        traceparent=row.traceparent,
        cancel_by=row.cancel_by,
    )


def _event(op: Append) -> HistoryEvent:
    return HistoryEvent(
        run_id=op.run_id,
        pos=op.pos,
        kind=kind_of(op.kind),
        key=op.key,
        name=op.name,
        attempt=op.attempt,
        data=_loads(op.data),
        at=to_datetime(op.at),  # type: ignore[arg-type]  # never None
    )


class MemoryStore(MemoryBus, MemoryExpectations, MemoryAlerts):
    """Keeps everything in dicts; lost when the process ends."""

    def __init__(self) -> None:
        self._init_bus()
        self._init_expectations()
        self._init_alerts()
        self._runs: dict[str, _Row] = {}
        self._history: dict[str, list[Append]] = {}
        self._positions: dict[str, set[int]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._workflows: set[str] = set()
        self._signals: dict[str, list[Signal]] = {}
        self._signal_ids = 0
        self._tasks: dict[str, _TaskRow] = {}
        self._tokens: dict[str, tuple[str, ApiToken]] = {}  # name -> (digest, token)

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    async def check_location(self) -> None:
        """Nothing to check: the data lives in this object."""

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Nothing to watch: only this process writes here, and its engine knows."""
        return _nothing

    # -- API tokens --------------------------------------------------------------------

    async def create_token(self, name: str, digest: str, scope: str, at: float) -> bool:
        """Store a token; False (nothing written) if one of that name exists."""
        if name in self._tokens or any(d == digest for d, _ in self._tokens.values()):
            return False
        self._tokens[name] = (digest, ApiToken(name, Scope(scope), _datetime(at)))
        return True

    async def revoke_token(self, name: str, at: float) -> bool:
        """Revoke the active token ``name``; False if there is none."""
        found = self._tokens.get(name)
        if found is None or not found[1].active:
            return False
        revoked = dataclasses.replace(found[1], revoked_at=_datetime(at))
        self._tokens[name] = (found[0], revoked)
        return True

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, by name."""
        return [token for _, (_, token) in sorted(self._tokens.items())]

    async def find_token(self, digest: str) -> ApiToken | None:
        """The token whose secret has this digest, or None."""
        return next((t for d, t in self._tokens.values() if d == digest), None)

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` in order, atomically: on a conflict, undo what the batch did."""
        undo: list[Callable[[], None]] = []
        try:
            return self._apply(ops, undo)
        except ConcurrencyConflict:
            for step in reversed(undo):
                step()
            raise

    def _apply(self, ops: Sequence[Write], undo: list[Callable[[], None]]) -> dict[str, str]:
        conflicts: dict[str, str] = {}
        runs = self._runs
        self._check_registry(ops)
        for owner, run_ids in fenced_appends(ops).items():
            lost = [r for r in run_ids if r not in runs or runs[r].owner != owner]
            if lost:
                raise fence_conflict(owner, lost)
        for op in ops:
            if type(op) is Append:
                taken = self._positions.setdefault(op.run_id, set())
                if op.pos in taken:
                    raise ConcurrencyConflict(
                        f"history record {op.pos} of run {op.run_id!r} already exists: "
                        "another worker is executing this run"
                    )
                self._history.setdefault(op.run_id, []).append(op)
                taken.add(op.pos)
                undo.append(partial(self._unappend, op))
            elif type(op) is SetRun:
                row = runs.get(op.run_id)
                if op.owner is not None and (row is None or row.owner != op.owner):
                    raise ConcurrencyConflict(
                        f"run {op.run_id!r} is not owned by {op.owner!r} (owner: "
                        f"{None if row is None else row.owner!r}): another worker took it over"
                    )
                if row is not None:
                    undo.append(partial(self._restore, dataclasses.replace(row)))
                    row.status, row.output, row.error = op.status, op.output, op.error
                    row.error_pos = op.error_pos
                    row.updated_at, row.wake_at = op.updated_at, op.wake_at
                    if op.release:
                        row.owner = None
            elif type(op) is UpdateRun:
                row = runs.get(op.run_id)
                if row is None or not self._matches(row, op):
                    if op.required:
                        raise ConcurrencyConflict(
                            f"run {op.run_id!r} is not as the update expects "
                            f"({'unknown' if row is None else row.status}): it moved meanwhile"
                        )
                    continue
                undo.append(partial(self._restore, dataclasses.replace(row)))
                if op.status is not None:
                    row.status = op.status
                if op.wake_at is not KEEP:
                    row.wake_at = op.wake_at
                if op.cancel_requested is not None:
                    row.cancel_requested = op.cancel_requested
                    row.cancel_by = op.cancel_by
                if op.clear_error:
                    row.error = row.error_pos = None
                if op.updated_at is not None:
                    row.updated_at = op.updated_at
            elif type(op) is NewRun:
                existing = runs.get(op.run_id)
                if existing is not None:
                    conflicts[op.run_id] = existing.workflow
                else:
                    runs[op.run_id] = _Row(
                        op.run_id,
                        op.workflow,
                        op.status,
                        op.input,
                        None,
                        None,
                        op.created_at,
                        op.created_at,
                        op.deadline_at,
                        op.created_at,
                        op.owner,
                        parent_run_id=op.parent_run_id,
                        correlation_id=op.correlation_id,
                        traceparent=op.traceparent,
                    )
                    undo.append(partial(self._forget_run, op.run_id))
            elif type(op) is NewSignal:
                self._signal_ids += 1
                when = to_datetime(op.at)
                assert when is not None
                signals = self._signals.setdefault(op.run_id, [])
                signals.append(
                    Signal(self._signal_ids, op.run_id, op.name, _loads(op.payload), when)
                )
                undo.append(partial(_drop_last, signals))  # its id is not given again
            elif type(op) is NewTask:
                if op.task_id not in self._tasks:
                    self._tasks[op.task_id] = _TaskRow(
                        op.task_id,
                        op.run_id,
                        op.name,
                        op.data,
                        op.assignee,
                        op.form,
                        TaskStatus.OPEN.value,
                        None,
                        op.created_at,
                        op.due_at,
                    )
                    undo.append(partial(self._forget_task, op.task_id))
            elif type(op) is UpdateTask:
                task = self._tasks.get(op.task_id)
                if task is None or task.status != op.if_status or task.run_id != op.run_id:
                    raise ConcurrencyConflict(
                        f"task {op.task_id!r} is "
                        f"{'unknown' if task is None else task.status}, not {op.if_status}"
                    )
                undo.append(partial(self._restore_task, dataclasses.replace(task)))
                task.status, task.response, task.completed_at, task.completed_by = (
                    op.status,
                    op.response,
                    op.completed_at,
                    op.completed_by,
                )
            elif type(op) is CloseTasks:
                for task in self._tasks.values():
                    if (
                        task.run_id == op.run_id
                        and task.status == TaskStatus.OPEN.value
                        and (op.task_id is None or task.task_id == op.task_id)
                    ):
                        undo.append(partial(self._restore_task, dataclasses.replace(task)))
                        task.status, task.completed_at = op.status, op.at
            elif not self._apply_expectation(op, undo) and not self._apply_alert(op, undo):
                self._apply_bus(op, undo)
        return conflicts

    def _matches(self, row: _Row, op: UpdateRun) -> bool:
        return (
            (op.if_status is None or row.status in op.if_status)
            and (op.if_owner is None or row.owner == op.if_owner)
            and (not op.if_unowned or row.owner is None)
            and (op.if_cancel_requested is None or row.cancel_requested == op.if_cancel_requested)
            and (
                op.if_signal_after is None
                or any(sig.id > op.if_signal_after for sig in self._signals.get(row.run_id, ()))
            )
            and (op.if_wake_after is None or row.wake_at is None or row.wake_at > op.if_wake_after)
        )

    def _unappend(self, op: Append) -> None:
        self._history[op.run_id].remove(op)
        self._positions[op.run_id].discard(op.pos)

    def _restore(self, saved: _Row) -> None:
        self._runs[saved.run_id] = saved

    def _restore_task(self, saved: _TaskRow) -> None:
        self._tasks[saved.task_id] = saved

    def _forget_run(self, run_id: str) -> None:
        del self._runs[run_id]

    def _forget_task(self, task_id: str) -> None:
        del self._tasks[task_id]

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        row = self._runs.get(run_id)
        return None if row is None else _run(row, self._history.get(run_id))

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        payloads: bool = True,
        search: RunSearch | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered (without input and output if asked)."""
        found = search or RunSearch()
        if found.before is not None:  # the listed run's own time (see SqlStore.list_runs)
            listed = self._runs.get(found.before[1])
            if listed is not None:
                found = dataclasses.replace(found, before=(listed.created_at, listed.run_id))
        rows = [
            r
            for r in self._runs.values()
            if (status is None or r.status == status)
            and (workflow is None or r.workflow == workflow)
            and _found(r, found)
        ]
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        runs = [_run(r, self._history.get(r.run_id)) for r in rows[:limit]]
        if not payloads:
            runs = [dataclasses.replace(run, input=None, output=None) for run in runs]
        return runs

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order."""
        return [_event(op) for op in sorted(self._history.get(run_id, ()), key=lambda o: o.pos)]

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs at once."""
        return {rid: await self.history(rid) for rid in run_ids}

    async def last_pos(self, run_id: str) -> int:
        """The ``pos`` of the run's last history record (0 for none)."""
        return max(self._positions.get(run_id, ()), default=0)

    async def claim_runs(
        self, worker_id: str, now: float, limit: int, workflows: Sequence[str]
    ) -> list[Run]:
        """Take up to ``limit`` unfinished, unowned, due runs of ``workflows``, oldest first.

        Nothing for a worker without a row.
        """
        if worker_id not in self._workers:
            return []
        served = set(workflows)
        due = [
            r
            for r in self._runs.values()
            if r.owner is None
            and r.status not in _TERMINAL
            and r.workflow in served
            and r.wake_at is not None
            and r.wake_at <= now
        ]
        due.sort(key=lambda r: (r.wake_at or 0.0, r.created_at))
        for row in due[:limit]:
            row.owner = worker_id
        return [_run(r, self._history.get(r.run_id)) for r in due[:limit]]

    async def next_due(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``wake_at`` of unowned, unfinished runs of ``workflows``."""
        served = set(workflows)
        return min(
            (
                r.wake_at
                for r in self._runs.values()
                if r.owner is None
                and r.status not in _TERMINAL
                and r.workflow in served
                and r.wake_at is not None
            ),
            default=None,
        )

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Drop ownership of the runs ``worker_id`` owns (all, or just ``run_ids``)."""
        wanted = None if run_ids is None else set(run_ids)
        count = 0
        for row in self._runs.values():
            if row.owner == worker_id and (wanted is None or row.run_id in wanted):
                row.owner = None
                count += 1
        return count

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Unfinished runs owned by ``worker_id`` whose cancellation was requested."""
        return [
            r.run_id
            for r in self._runs.values()
            if r.owner == worker_id and r.cancel_requested and r.status not in _TERMINAL
        ]

    async def signals(self, run_id: str, after_id: int = 0) -> list[Signal]:
        """A run's signals with ids above ``after_id``, in delivery order."""
        return [sig for sig in self._signals.get(run_id, ()) if sig.id > after_id]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        row = self._tasks.get(task_id)
        return None if row is None else _task(row)

    async def claim_task(self, task_id: str, assignee: str) -> bool:
        """Assign an open task that has no assignee, or has this one (see ``Store``)."""
        row = self._tasks.get(task_id)
        if row is None or row.status != "open" or row.assignee not in (None, assignee):
            return False
        row.assignee = assignee
        return True

    async def list_tasks(
        self,
        *,
        status: str | None = "open",
        assignee: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, oldest first, filtered."""
        rows = [
            t
            for t in self._tasks.values()
            if (status is None or t.status == status)
            and (assignee is None or t.assignee == assignee)
            and (run_id is None or t.run_id == run_id)
        ]
        rows.sort(key=lambda t: (t.created_at, t.task_id))
        return [_task(t) for t in rows[:limit]]

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        at: float,
        workflows: Sequence[str] = (),
        lease_s: float | None = None,
    ) -> None:
        """Record a worker process and what it serves."""
        when = to_datetime(at)
        assert when is not None
        known = self._workers.get(worker_id)
        if known is None:
            lease = None if lease_s is None else timedelta(seconds=lease_s)
            self._workers[worker_id] = WorkerInfo(
                worker_id, host, pid, when, when, tuple(workflows), lease
            )
        else:  # registered again: only the heartbeat moves, as in SQL
            self._workers[worker_id] = dataclasses.replace(known, heartbeat_at=when)

    async def heartbeat(self, worker_id: str, at: float) -> bool:
        """Say that ``worker_id`` is alive; False if it has no row."""
        info = self._workers.get(worker_id)
        when = to_datetime(at)
        assert when is not None
        if info is None:
            return False
        self._workers[worker_id] = dataclasses.replace(info, heartbeat_at=when)
        return True

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        return list(self._workers.values())

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        """Forget these workers and release their runs."""
        count = 0
        for wid in worker_ids:
            self._workers.pop(wid, None)
            count += await self.release_runs(wid)
            await self.release_deliveries(wid)
        return count

    async def release_orphaned_runs(self) -> int:
        """Release unfinished runs (and deliveries) whose owner has no worker row."""
        self._release_orphaned_deliveries()
        count = 0
        for row in self._runs.values():
            if (
                row.owner is not None
                and row.owner not in self._workers
                and row.status not in _TERMINAL
            ):
                row.owner = None
                count += 1
        return count

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record workflow names."""
        self._workflows.update(names)

    async def list_workflows(self) -> list[str]:
        """Registered workflow names."""
        return sorted(self._workflows)


def _nothing() -> None:
    pass


def _datetime(at: float) -> datetime:
    when = to_datetime(at)
    assert when is not None
    return when


def _found(row: _Row, search: RunSearch) -> bool:
    """Whether ``row`` is one ``search`` asks for (see ``RunSearch``)."""
    at = row.created_at
    return (
        (search.created_after is None or at >= search.created_after)
        and (search.created_before is None or at < search.created_before)
        and (
            search.correlation_id is None
            or (row.correlation_id or row.run_id) == search.correlation_id
        )
        and (not search.run_id_prefix or row.run_id.startswith(search.run_id_prefix))
        and (search.before is None or (at, row.run_id) < search.before)
    )
