"""In-memory ``Store``: the same contract as SQLite, for tests, docs and quick starts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import orjson

from legato.errors import ConcurrencyConflict
from legato.model import EventKind, HistoryEvent, Run, RunStatus
from legato.model.ids import RunId
from legato.model.runs import TERMINAL_STATUSES
from legato.storage.base import Append, NewRun, SetRun, WorkerInfo, Write, to_datetime

_TERMINAL = {s.value for s in TERMINAL_STATUSES}


def _loads(data: bytes | None) -> object:
    return None if data is None else orjson.loads(data)


class MemoryStore:
    """Keeps everything in dicts; lost when the process ends."""

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        self._history: dict[str, list[HistoryEvent]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._workflows: set[str] = set()
        # Writes are applied synchronously, but the port is async: yield once per batch
        # so callers see the same interleavings as with a real database.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` atomically: validate everything first, then mutate."""
        async with self._lock:
            conflicts: dict[str, str] = {}
            new_runs: dict[str, NewRun] = {}
            seen_pos: set[tuple[str, int]] = set()
            for op in ops:
                if isinstance(op, NewRun):
                    existing = self._runs.get(op.run_id)
                    if existing is not None:
                        conflicts[op.run_id] = existing.workflow
                    elif op.run_id in new_runs:
                        conflicts[op.run_id] = new_runs[op.run_id].workflow
                    else:
                        new_runs[op.run_id] = op
                elif isinstance(op, Append):
                    records = self._history.get(op.run_id, ())
                    if any(r.pos == op.pos for r in records) or (op.run_id, op.pos) in seen_pos:
                        raise ConcurrencyConflict(
                            f"history record {op.pos} of run {op.run_id!r} already exists: "
                            "another worker is executing this run"
                        )
                    seen_pos.add((op.run_id, op.pos))
            for op in ops:
                if isinstance(op, NewRun):
                    if new_runs.get(op.run_id) is op:
                        self._insert(op)
                elif isinstance(op, Append):
                    self._history.setdefault(op.run_id, []).append(
                        HistoryEvent(
                            run_id=op.run_id, pos=op.pos, kind=EventKind(op.kind), key=op.key,
                            name=op.name, attempt=op.attempt, data=_loads(op.data),
                            at=to_datetime(op.at),  # type: ignore[arg-type]  # never None here
                        )
                    )
                elif isinstance(op, SetRun):
                    run = self._runs.get(op.run_id)
                    if run is not None:
                        self._runs[op.run_id] = replace(
                            run, status=RunStatus(op.status), output=_loads(op.output),
                            error=_loads(op.error),  # type: ignore[arg-type]  # a JSON object
                            updated_at=to_datetime(op.updated_at),  # type: ignore[arg-type]
                            wake_at=to_datetime(op.wake_at),
                        )
            return conflicts

    def _insert(self, op: NewRun) -> None:
        at = to_datetime(op.created_at)
        assert at is not None
        self._runs[op.run_id] = Run(
            run_id=RunId(op.run_id), workflow=op.workflow, status=RunStatus(op.status),
            input=orjson.loads(op.input), output=None, error=None, created_at=at,
            updated_at=at, deadline_at=to_datetime(op.deadline_at), owner=op.owner,
        )

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        return self._runs.get(run_id)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs, newest first, optionally filtered."""
        runs = [
            r for r in self._runs.values()
            if (status is None or r.status == status) and (workflow is None or r.workflow == workflow)
        ]
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return runs[:limit]

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order."""
        return list(self._history.get(run_id, ()))

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs at once."""
        return {rid: list(self._history.get(rid, ())) for rid in run_ids}

    async def claim_runs(self, worker_id: str, now: float, limit: int,
                         workflows: Sequence[str]) -> list[Run]:
        """Take up to ``limit`` unfinished, unowned, due runs of ``workflows``."""
        claimed: list[Run] = []
        served = set(workflows)
        for run in sorted(self._runs.values(), key=lambda r: r.created_at):
            if len(claimed) >= limit:
                break
            if run.owner is not None or run.status in _TERMINAL or run.workflow not in served:
                continue
            if run.wake_at is not None and run.wake_at.timestamp() > now:
                continue
            run = replace(run, owner=worker_id)
            self._runs[run.run_id] = run
            claimed.append(run)
        return claimed

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Drop ownership of the runs ``worker_id`` owns (all, or just ``run_ids``)."""
        count = 0
        wanted = None if run_ids is None else set(run_ids)
        for run in list(self._runs.values()):
            if run.owner == worker_id and (wanted is None or run.run_id in wanted):
                self._runs[run.run_id] = replace(run, owner=None)
                count += 1
        return count

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Unfinished runs owned by ``worker_id`` whose cancellation was requested."""
        return [
            r.run_id for r in self._runs.values()
            if r.owner == worker_id and r.cancel_requested and r.status not in _TERMINAL
        ]

    async def request_cancel(self, run_id: str, at: float) -> Run | None:
        """Flag the run; cancel it outright if it is pending and unowned."""
        async with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.status in _TERMINAL:
                return run
            when = to_datetime(at)
            assert when is not None
            if run.owner is None and run.status == RunStatus.PENDING:
                run = replace(run, status=RunStatus.CANCELLED, cancel_requested=True,
                              updated_at=when)
            else:
                run = replace(run, cancel_requested=True)
            self._runs[run_id] = run
            if run.status == RunStatus.CANCELLED:
                # Only an unowned run's history is appended here; an owner records it itself.
                records = self._history.setdefault(run_id, [])
                for kind in (EventKind.CANCEL_REQUESTED, EventKind.RUN_CANCELLED):
                    records.append(HistoryEvent(run_id, len(records) + 1, kind, None, None, 0,
                                                None, when))
            return run

    async def register_worker(self, worker_id: str, host: str, pid: int, at: float) -> None:
        """Record a worker process."""
        when = to_datetime(at)
        assert when is not None
        self._workers[worker_id] = WorkerInfo(worker_id, host, pid, when, when)

    async def heartbeat(self, worker_id: str, at: float) -> None:
        """Say that ``worker_id`` is alive."""
        info = self._workers.get(worker_id)
        if info is not None:
            self._workers[worker_id] = replace(info, heartbeat_at=to_datetime(at))  # type: ignore[arg-type]

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        return list(self._workers.values())

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        """Forget these workers and release their runs."""
        count = 0
        for wid in worker_ids:
            self._workers.pop(wid, None)
            count += await self.release_runs(wid)
        return count

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record workflow names."""
        self._workflows.update(names)

    async def list_workflows(self) -> list[str]:
        """Registered workflow names."""
        return sorted(self._workflows)
