"""``SqliteStore``: runs and history in one SQLite file.

The queries live here; the connections, their threads and group commit live in
``_connections``. The engine's journal hands ``write`` batches of records, so while one
batch is being fsynced the next one fills up; every other write (signals, cancels, task
answers, claims) is grouped with whatever else is waiting for the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from legato.errors import ConcurrencyConflict
from legato.model import EventKind, HistoryEvent, Run, RunStatus, Signal, Task, TaskStatus
from legato.model.ids import RunId
from legato.model.runs import TERMINAL_STATUSES
from legato.model.waits import TASK_SIGNAL_PREFIX
from legato.storage.base import (
    Append,
    CloseTasks,
    NewRun,
    NewSignal,
    NewTask,
    SetRun,
    WorkerInfo,
    Write,
    to_datetime,
)
from legato.storage.sqlite._connections import SqliteConnections

# Word for word the WHERE of the partial index runs_unfinished in schema.sql: SQLite uses
# a partial index only when the query repeats its condition (tests/contract pins the plan).
_UNFINISHED = (
    "status NOT IN ('completed', 'failed', 'compensated', 'compensation_failed', "
    "'cancelled', 'blocked')"
)
assert {part.strip(" '()") for part in _UNFINISHED[14:].split(",")} == {
    s.value for s in TERMINAL_STATUSES
}
_RUN_COLUMNS = (
    "run_id, workflow, status, input, output, error, created_at, updated_at, "
    "deadline_at, wake_at, owner, cancel_requested, parent_run_id"
)
# The same columns, with NULL for the two that may be large.
_RUN_COLUMNS_NO_PAYLOADS = _RUN_COLUMNS.replace("input, output,", "NULL, NULL,", 1)
assert _RUN_COLUMNS_NO_PAYLOADS != _RUN_COLUMNS
_INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow, status, input, created_at, updated_at, deadline_at, "
    "wake_at, owner, parent_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_APPEND = (
    "INSERT INTO history (run_id, pos, kind, key, name, attempt, data, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_RUN = (
    "UPDATE runs SET status = ?, output = ?, error = ?, updated_at = ?, "
    # A signal newer than the watermark arrived while the owner decided to park: due now.
    "wake_at = CASE WHEN ? IS NOT NULL AND EXISTS (SELECT 1 FROM signals "
    "WHERE signals.run_id = runs.run_id AND signals.id > ?) THEN ? "
    # A cancel requested while the owner was letting go: due now, to be cancelled.
    "WHEN ? AND cancel_requested = 1 AND status NOT IN ('completed', 'failed', 'compensated', "
    "'compensation_failed', 'cancelled', 'blocked') THEN ? ELSE ? END, "
    "owner = CASE WHEN ? THEN NULL ELSE owner END WHERE run_id = ?"
)
# A guarded SetRun: only while the run is still the writer's (the WHERE sees the old owner).
_SET_OWNED_RUN = _SET_RUN + " AND owner = ?"
_INSERT_SIGNAL = "INSERT INTO signals (run_id, name, payload, sent_at) VALUES (?, ?, ?, ?)"
# Only a run parked waiting for an event, and not held by a worker, needs waking; an owner
# that parks later sees the signal through its watermark.
_WAKE = (
    "UPDATE runs SET wake_at = ? WHERE run_id = ? AND owner IS NULL AND status = 'waiting' "
    "AND (wake_at IS NULL OR wake_at > ?)"
)
_INSERT_TASK = (
    "INSERT INTO tasks (task_id, run_id, name, data, assignee, form, status, created_at, "
    "due_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?) ON CONFLICT (task_id) DO NOTHING"
)
_TASK_COLUMNS = (
    "task_id, run_id, name, data, assignee, form, status, response, created_at, due_at, "
    "completed_at"
)
_HISTORY_COLUMNS = "run_id, pos, kind, key, name, attempt, data, at"


def due_runs_sql(workflows: int) -> str:
    """The query for due runs (params: now, the workflow names, limit).

    Served by the partial index ``runs_unfinished``: a poll with nothing due costs a few
    microseconds however many runs are parked.
    """
    marks = ", ".join("?" * workflows)
    return (
        f"SELECT run_id FROM runs WHERE owner IS NULL AND {_UNFINISHED} AND wake_at <= ? "
        f"AND workflow IN ({marks}) ORDER BY wake_at LIMIT ?"
    )


# Through the partial index runs_unfinished (owner, wake_at): owned unfinished runs only,
# so a recovery pass, every few seconds, does not scan the finished ones.
RELEASE_ORPHANED_RUNS_SQL = (
    f"UPDATE runs SET owner = NULL WHERE owner IS NOT NULL AND {_UNFINISHED} "
    "AND owner NOT IN (SELECT worker_id FROM workers)"
)


def claim_runs_sql(workflows: int) -> str:
    """The claim (params: worker id, now, the workflow names, limit, worker id).

    The due runs come from ``due_runs_sql``, through the partial index; the EXISTS makes
    the claim take nothing, atomically, for a worker that has no row any more.
    """
    return (
        f"UPDATE runs SET owner = ? WHERE run_id IN ({due_runs_sql(workflows)}) "
        "AND EXISTS (SELECT 1 FROM workers WHERE worker_id = ?) "
        f"RETURNING {_RUN_COLUMNS}"
    )


def _loads(data: bytes | None) -> Any:
    return None if data is None else orjson.loads(data)


def _run(row: tuple[Any, ...]) -> Run:
    return Run(
        run_id=RunId(row[0]),
        workflow=row[1],
        status=RunStatus(row[2]),
        input=_loads(row[3]),
        output=_loads(row[4]),
        error=_loads(row[5]),
        created_at=to_datetime(row[6]),  # type: ignore[arg-type]  # NOT NULL column
        updated_at=to_datetime(row[7]),  # type: ignore[arg-type]  # NOT NULL column
        deadline_at=to_datetime(row[8]),
        wake_at=to_datetime(row[9]),
        owner=row[10],
        cancel_requested=bool(row[11]),
        parent_run_id=row[12],
    )


def _at(ts: float) -> datetime:
    """A NOT NULL time column as an aware datetime."""
    return datetime.fromtimestamp(ts, UTC)


def _task(row: tuple[Any, ...]) -> Task:
    return Task(
        task_id=row[0],
        run_id=row[1],
        name=row[2],
        data=_loads(row[3]),
        assignee=row[4],
        form=_loads(row[5]),
        status=TaskStatus(row[6]),
        response=_loads(row[7]),
        created_at=to_datetime(row[8]),  # type: ignore[arg-type]  # NOT NULL column
        due_at=to_datetime(row[9]),
        completed_at=to_datetime(row[10]),
    )


def _event(row: tuple[Any, ...]) -> HistoryEvent:
    return HistoryEvent(
        run_id=row[0],
        pos=row[1],
        kind=EventKind(row[2]),
        key=row[3],
        name=row[4],
        attempt=row[5],
        data=_loads(row[6]),
        at=to_datetime(row[7]),  # type: ignore[arg-type]  # NOT NULL column
    )


class SqliteStore(SqliteConnections):
    """A ``Store`` on one SQLite file.

    ``synchronous`` is SQLite's durability setting: ``"full"`` (the default) fsyncs every
    commit, so a committed record survives power loss; ``"normal"`` survives a process
    crash but not an OS crash.
    """

    # -- writes ----------------------------------------------------------------------

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` in one transaction (runs first, then history, then updates)."""
        return await self._transact(lambda conn: self._apply(conn, ops))

    @staticmethod
    def _apply(conn: sqlite3.Connection, ops: Sequence[Write]) -> dict[str, str]:
        conflicts: dict[str, str] = {}
        appends: list[tuple[Any, ...]] = []
        sets: list[tuple[Any, ...]] = []
        owned_sets: list[tuple[Any, ...]] = []
        new_runs: dict[str, NewRun] = {}
        others: list[Write] = []
        for op in ops:
            if type(op) is Append:
                appends.append(
                    (op.run_id, op.pos, op.kind, op.key, op.name, op.attempt, op.data, op.at)
                )
            elif type(op) is SetRun:
                row: tuple[Any, ...] = (
                    op.status,
                    op.output,
                    op.error,
                    op.updated_at,
                    op.signal_watermark,
                    op.signal_watermark,
                    op.updated_at,
                    op.release,
                    op.updated_at,
                    op.wake_at,
                    op.release,
                    op.run_id,
                )
                if op.owner is None:
                    sets.append(row)
                else:
                    owned_sets.append((*row, op.owner))
            elif type(op) is NewRun:
                if op.run_id in new_runs:
                    conflicts[op.run_id] = new_runs[op.run_id].workflow
                else:
                    new_runs[op.run_id] = op
            else:
                others.append(op)
        if new_runs:
            # One lookup for the whole batch, then one executemany: far cheaper than an
            # INSERT-and-check per run when thousands of runs start at once.
            ids = list(new_runs)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for run_id, workflow in conn.execute(
                    f"SELECT run_id, workflow FROM runs WHERE run_id IN ({marks})", chunk
                ):
                    conflicts[run_id] = workflow
                    del new_runs[run_id]
            conn.executemany(
                _INSERT_RUN,
                [
                    (
                        op.run_id,
                        op.workflow,
                        op.status,
                        op.input,
                        op.created_at,
                        op.created_at,
                        op.deadline_at,
                        op.created_at,
                        op.owner,
                        op.parent_run_id,
                    )
                    for op in new_runs.values()
                ],
            )
        if appends:
            try:
                conn.executemany(_APPEND, appends)
            except sqlite3.IntegrityError as exc:
                raise ConcurrencyConflict(
                    f"a history record already exists ({exc}): another worker is "
                    "executing one of these runs"
                ) from exc
        if sets:
            conn.executemany(_SET_RUN, sets)
        if owned_sets:
            # executemany's rowcount sums the rows each one changed: one per guarded write.
            changed = conn.executemany(_SET_OWNED_RUN, owned_sets).rowcount
            if changed != len(owned_sets):
                raise ConcurrencyConflict(
                    f"{len(owned_sets) - changed} of {len(owned_sets)} guarded run updates "
                    "found another owner: another worker took those runs over"
                )
        for op in others:
            if isinstance(op, NewSignal):
                conn.execute(_INSERT_SIGNAL, (op.run_id, op.name, op.payload, op.at))
                conn.execute(_WAKE, (op.at, op.run_id, op.at))
            elif isinstance(op, NewTask):
                conn.execute(
                    _INSERT_TASK,
                    (
                        op.task_id,
                        op.run_id,
                        op.name,
                        op.data,
                        op.assignee,
                        op.form,
                        op.created_at,
                        op.due_at,
                    ),
                )
            elif isinstance(op, CloseTasks):
                sql = (
                    "UPDATE tasks SET status = ?, completed_at = ? "
                    "WHERE run_id = ? AND status = 'open'"
                )
                params: tuple[Any, ...] = (op.status, op.at, op.run_id)
                if op.task_id is not None:
                    sql += " AND task_id = ?"
                    params += (op.task_id,)
                conn.execute(sql, params)
        return conflicts

    async def claim_runs(
        self, worker_id: str, now: float, limit: int, workflows: Sequence[str]
    ) -> list[Run]:
        """Take up to ``limit`` unfinished, unowned, due runs of ``workflows``, earliest due
        first."""
        if not workflows:
            return []
        sql = claim_runs_sql(len(workflows))
        params = (worker_id, now, *workflows, limit, worker_id)
        rows = await self._transact(lambda c: c.execute(sql, params).fetchall())
        return [_run(r) for r in rows]

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Drop ownership of the runs ``worker_id`` owns (all, or just ``run_ids``)."""
        if run_ids is None:
            return await self._transact(
                lambda c: (
                    c.execute("UPDATE runs SET owner = NULL WHERE owner = ?", (worker_id,)).rowcount
                ),
            )
        params = [(worker_id, rid) for rid in run_ids]
        return await self._transact(
            lambda c: (
                c.executemany(
                    "UPDATE runs SET owner = NULL WHERE owner = ? AND run_id = ?", params
                ).rowcount
            ),
        )

    async def request_cancel(self, run_id: str, at: float) -> Run | None:
        """Flag the run; cancel it outright if it is pending and unowned."""

        def body(c: sqlite3.Connection) -> Run | None:
            row = c.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            run = _run(row)
            if run.status.is_terminal and run.status is not RunStatus.BLOCKED:
                return run
            outright = run.owner is None and run.status == RunStatus.PENDING
            status = (
                RunStatus.CANCELLED
                if outright
                else (RunStatus.RUNNING if run.status is RunStatus.BLOCKED else run.status)
            )
            c.execute(
                "UPDATE runs SET cancel_requested = 1, status = ?, updated_at = ?, "
                "wake_at = CASE WHEN ? THEN NULL WHEN owner IS NULL THEN ? ELSE wake_at END "
                "WHERE run_id = ?",
                (status.value, at, outright, at, run_id),
            )
            if outright:
                # Nobody executes the run, so nobody else appends to its history. A run with
                # an owner gets only the flag: the owner records the cancel itself, in order.
                pos = c.execute(
                    "SELECT coalesce(max(pos), 0) FROM history WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
                for i, kind in enumerate((EventKind.CANCEL_REQUESTED, EventKind.RUN_CANCELLED), 1):
                    c.execute(_APPEND, (run_id, pos + i, kind.value, None, None, 0, None, at))
            return _run(
                c.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            )

        return await self._transact(body)

    async def send_signal(
        self, run_id: str, name: str, payload: bytes | None, at: float
    ) -> tuple[Run | None, int | None]:
        """Send a signal unless the run is unknown or finished; return (run, signal id)."""

        def body(c: sqlite3.Connection) -> tuple[Run | None, int | None]:
            row = c.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None, None
            run = _run(row)
            if run.status.is_terminal:
                return run, None
            signal_id = c.execute(_INSERT_SIGNAL, (run_id, name, payload, at)).lastrowid
            c.execute(_WAKE, (at, run_id, at))
            return run, signal_id

        return await self._transact(body)

    async def complete_task(
        self, task_id: str, response: bytes, at: float
    ) -> tuple[Task | None, bool]:
        """Complete an open task and signal its run, in one transaction."""

        def body(c: sqlite3.Connection) -> tuple[Task | None, bool]:
            changed = c.execute(
                "UPDATE tasks SET status = 'completed', response = ?, completed_at = ? "
                "WHERE task_id = ? AND status = 'open' RETURNING run_id",
                (response, at, task_id),
            ).fetchone()
            if changed is not None:
                c.execute(_INSERT_SIGNAL, (changed[0], TASK_SIGNAL_PREFIX + task_id, response, at))
                c.execute(_WAKE, (at, changed[0], at))
            row = c.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            return (None if row is None else _task(row)), changed is not None

        return await self._transact(body)

    async def resume_blocked(self, run_id: str, at: float) -> Run | None:
        """Make a blocked run due again, recording ``run_resumed``."""

        def body(c: sqlite3.Connection) -> Run | None:
            resumed = c.execute(
                "UPDATE runs SET status = 'running', error = NULL, updated_at = ?, wake_at = ? "
                "WHERE run_id = ? AND status = 'blocked'",
                (at, at, run_id),
            ).rowcount
            if resumed:
                pos = c.execute(
                    "SELECT coalesce(max(pos), 0) FROM history WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
                c.execute(
                    _APPEND, (run_id, pos + 1, EventKind.RUN_RESUMED.value, None, None, 0, None, at)
                )
            row = c.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            return None if row is None else _run(row)

        return await self._transact(body)

    async def register_worker(self, worker_id: str, host: str, pid: int, at: float) -> None:
        """Record a worker process."""
        await self._transact(
            lambda c: c.execute(
                "INSERT INTO workers VALUES (?, ?, ?, ?, ?) ON CONFLICT (worker_id) "
                "DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (worker_id, host, pid, at, at),
            ),
        )

    async def heartbeat(self, worker_id: str, at: float) -> bool:
        """Say that ``worker_id`` is alive; False if it has no row."""
        changed: int = await self._transact(
            lambda c: (
                c.execute(
                    "UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (at, worker_id)
                ).rowcount
            ),
        )
        return changed > 0

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        """Forget these workers and release their runs."""

        def body(c: sqlite3.Connection) -> int:
            released = 0
            for wid in worker_ids:
                c.execute("DELETE FROM workers WHERE worker_id = ?", (wid,))
                released += c.execute(
                    "UPDATE runs SET owner = NULL WHERE owner = ?", (wid,)
                ).rowcount
            return released

        return await self._transact(body)

    async def release_orphaned_runs(self) -> int:
        """Release unfinished runs whose owner has no worker row."""
        released: int = await self._transact(
            lambda c: c.execute(RELEASE_ORPHANED_RUNS_SQL).rowcount
        )
        return released

    async def register_workflows(self, names: Sequence[str], at: float) -> None:
        """Record workflow names."""
        await self._transact(
            lambda c: c.executemany(
                "INSERT INTO workflows VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                [(n, at) for n in names],
            ),
        )

    # -- reads -----------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._reader is not None
        return self._reader.execute(sql, params).fetchall()

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        rows = await self._read(
            self._fetch, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        )
        return _run(rows[0]) if rows else None

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        payloads: bool = True,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered (without input and output if asked)."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            self._fetch,
            f"SELECT {_RUN_COLUMNS if payloads else _RUN_COLUMNS_NO_PAYLOADS} FROM runs "
            f"{clause} ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_run(r) for r in rows]

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order."""
        rows = await self._read(
            self._fetch,
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE run_id = ? ORDER BY pos",
            (run_id,),
        )
        return [_event(r) for r in rows]

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs, fetched in chunks."""
        result: dict[str, list[HistoryEvent]] = {rid: [] for rid in run_ids}
        ids = list(run_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = await self._read(
                self._fetch,
                f"SELECT {_HISTORY_COLUMNS} FROM history WHERE run_id IN ({marks}) "
                "ORDER BY run_id, pos",
                chunk,
            )
            for row in rows:
                result[row[0]].append(_event(row))
        return result

    async def next_due(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``wake_at`` of unowned, unfinished runs of ``workflows``."""
        if not workflows:
            return None
        marks = ", ".join("?" * len(workflows))
        rows = await self._read(
            self._fetch,
            f"SELECT min(wake_at) FROM runs WHERE owner IS NULL AND {_UNFINISHED} "
            f"AND workflow IN ({marks})",
            list(workflows),
        )
        return rows[0][0] if rows else None

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Unfinished runs owned by ``worker_id`` whose cancellation was requested."""
        rows = await self._read(
            self._fetch,
            f"SELECT run_id FROM runs WHERE owner = ? AND {_UNFINISHED} AND cancel_requested = 1",
            (worker_id,),
        )
        return [r[0] for r in rows]

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        rows = await self._read(self._fetch, "SELECT * FROM workers")
        return [WorkerInfo(r[0], r[1], r[2], _at(r[3]), _at(r[4])) for r in rows]

    async def signals(self, run_id: str, after_id: int = 0) -> list[Signal]:
        """A run's signals with ids above ``after_id``, in delivery order."""
        rows = await self._read(
            self._fetch,
            "SELECT id, run_id, name, payload, sent_at FROM signals "
            "WHERE run_id = ? AND id > ? ORDER BY id",
            (run_id, after_id),
        )
        return [Signal(r[0], r[1], r[2], _loads(r[3]), to_datetime(r[4])) for r in rows]  # type: ignore[arg-type]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        rows = await self._read(
            self._fetch, f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
        )
        return _task(rows[0]) if rows else None

    async def list_tasks(
        self,
        *,
        status: str | None = "open",
        assignee: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, oldest first, filtered."""
        where, params = [], []
        for column, value in (("status", status), ("assignee", assignee), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            self._fetch,
            f"SELECT {_TASK_COLUMNS} FROM tasks {clause} ORDER BY created_at, task_id LIMIT ?",
            (*params, limit),
        )
        return [_task(r) for r in rows]

    async def list_workflows(self) -> list[str]:
        """Registered workflow names."""
        return [
            r[0] for r in await self._read(self._fetch, "SELECT name FROM workflows ORDER BY name")
        ]
