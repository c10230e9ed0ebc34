"""What every SQL adapter shares: op dispatch, the reads, and rows turned into models.

A SQL adapter supplies two things: how to run a transaction and a read (``_transact``,
``_select``), and its dialect's named queries (a ``SqlQueries``). This base owns the
control flow: how a batch of ops becomes statements, which guards raise
``ConcurrencyConflict``, how rows become ``Run``, ``HistoryEvent`` and ``Task``. No rule
about what a status or a record means lives here (that is ``legato.lifecycle`` and the
engine); the queries are plain SQL, one readable string each, per dialect.

The connection a transaction body receives speaks DB-API: ``execute(sql, params)`` and
``executemany(sql, rows)`` returning a cursor with ``rowcount``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any, Protocol, TypeVar

from legato.errors import ConcurrencyConflict
from legato.model import HistoryEvent, Run, Signal, Task
from legato.storage.base import (
    Append,
    CloseTasks,
    NewArrival,
    NewEvent,
    NewExpectation,
    NewRun,
    NewSignal,
    NewTask,
    RaiseAlert,
    ReplayDelivery,
    ResolveAlert,
    RunSearch,
    SetRun,
    UpdateDelivery,
    UpdateExpectation,
    UpdateRun,
    UpdateTask,
    Write,
)
from legato.storage.fencing import fence_conflict, fenced_appends
from legato.storage.groupcommit import Joinable
from legato.storage.sqlalerts import SqlAlerts, apply_raise_alerts, apply_resolve_alerts
from legato.storage.sqlbus import (
    SqlBus,
    apply_delivery_updates,
    apply_new_events,
    apply_replays,
    check_registry,
)
from legato.storage.sqlexpect import (
    SqlExpectations,
    apply_arrivals,
    apply_expectation_updates,
    apply_new_expectations,
)
from legato.storage.sqlrows import (
    at_time,
    event_from_row,
    loads,
    run_from_row,
    task_from_row,
)
from legato.storage.sqltokens import SqlTokens
from legato.storage.sqlupdates import update_run_params, update_run_shape
from legato.storage.sqlworkers import SqlWorkers

T = TypeVar("T")

CHUNK = 500
"""Ids per ``IN (...)`` list: well under every dialect's limit on parameters."""


class Connection(Protocol):
    """The part of a DB-API connection the base uses."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...

    # Only where the dialect's queries return rows from executemany (PostgreSQL).
    def executemany_returning(self, sql: str, rows: Any, /) -> list[Any]: ...


class SqlQueries(Protocol):
    """A dialect's named queries. Names ending in ``_sql`` build a query for ``n`` values."""

    param: str
    """The parameter marker (``?`` for SQLite, ``%s`` for psycopg)."""
    insert_run: str
    insert_run_returns: bool
    """``insert_run`` skips existing ids and returns the ids it inserted (many writers)."""
    append: str
    set_run: str
    set_owned_run: str
    insert_signal: str
    insert_task: str
    update_task: str
    claim_task: str
    close_tasks: str
    close_task: str
    release_all: str
    release_one: str
    register_worker: str
    heartbeat: str
    delete_worker: str
    release_orphaned: str
    register_workflow: str
    get_run: str
    history: str
    last_pos: str
    cancel_requests: str
    list_workers: str
    signals: str
    get_task: str
    list_workflows: str
    # the event bus (storage/sqlbus.py)
    registry_version: str
    bump_registry: str
    subscription_rows: str
    upsert_subscription: str
    delete_subscription: str
    delete_subscription_deliveries: str
    insert_event: str
    insert_event_many: str
    last_event_seq: str
    events_after: str | None  # None: insert events one by one with RETURNING
    insert_delivery: str
    replay_delivery: str
    release_deliveries: str
    release_orphaned_deliveries: str
    get_event: str
    find_events: str
    deliveries_of: str
    prunable_events: str
    delete_event: str
    delete_deliveries: str

    def existing_runs_sql(self, n: int) -> str: ...
    def owned_runs_sql(self, n: int) -> str: ...
    def claim_runs_sql(self, n: int) -> str: ...
    def next_due_sql(self, n: int) -> str: ...
    def histories_sql(self, n: int) -> str: ...
    def list_runs_sql(self, where: Sequence[str], payloads: bool) -> str: ...
    def list_tasks_sql(self, where: Sequence[str]) -> str: ...

    insert_expectation: str
    update_expectation: str
    insert_arrival: str
    insert_alert: str
    raise_alert_again: str
    resolve_alert: str
    quiet_runs: str
    schema_version: str
    count_runs_by_status: str
    count_overdue_timers: str
    count_expectations: str
    count_deliveries: str
    count_raised_alerts: str

    def update_delivery_sql(self, if_owner: bool, if_status: bool, redrive: bool) -> str: ...
    def update_run_sql(self, shape: tuple[Any, ...]) -> str: ...
    def due_expectations_sql(self, n: int) -> str: ...
    def claim_due_expectations_sql(self, n: int) -> str: ...
    def expectations_of_keys_sql(self, n: int) -> str: ...
    def list_alerts_sql(self, where: Sequence[str]) -> str: ...
    def get_alerts_sql(self, n: int) -> str: ...
    def arrivals_of_keys_sql(self, n: int) -> str: ...
    def next_expectation_due_sql(self, n: int) -> str: ...
    def list_expectations_sql(self, where: Sequence[str]) -> str: ...
    def claim_deliveries_sql(self, n: int) -> str: ...
    def next_delivery_due_sql(self, n: int) -> str: ...
    def list_events_sql(self, where: Sequence[str]) -> str: ...
    def list_deliveries_sql(self, where: Sequence[str]) -> str: ...


_SMALL_BATCH = 8
"""Ops in a batch below which waves cost more than they save: applied one by one."""
(
    _NEW_RUN,
    _SET_RUN,
    _UPDATE_RUN,
    _NEW_SIGNAL,
    _NEW_TASK,
    _UPDATE_TASK,
    _CLOSE_TASKS,
    _NEW_EVENT,
    _UPDATE_DELIVERY,
    _REPLAY_DELIVERY,
    _NEW_EXPECTATION,
    _UPDATE_EXPECTATION,
    _NEW_ARRIVAL,
    _RAISE_ALERT,
    _RESOLVE_ALERT,
) = range(15)
_KINDS = {
    NewRun: _NEW_RUN,
    SetRun: _SET_RUN,
    UpdateRun: _UPDATE_RUN,
    NewSignal: _NEW_SIGNAL,
    NewTask: _NEW_TASK,
    UpdateTask: _UPDATE_TASK,
    CloseTasks: _CLOSE_TASKS,
    NewEvent: _NEW_EVENT,
    UpdateDelivery: _UPDATE_DELIVERY,
    ReplayDelivery: _REPLAY_DELIVERY,
    NewExpectation: _NEW_EXPECTATION,
    UpdateExpectation: _UPDATE_EXPECTATION,
    NewArrival: _NEW_ARRIVAL,
    RaiseAlert: _RAISE_ALERT,
    ResolveAlert: _RESOLVE_ALERT,
}


def _wave_order(op: Write) -> tuple[int, Any]:
    """How ops of one wave are grouped: by kind, then (``UpdateRun``) by shape."""
    kind = _KINDS.get(type(op))
    if kind is None:
        raise TypeError(f"not a write op: {op!r}")
    if kind == _UPDATE_RUN:
        return kind, update_run_shape(op)  # type: ignore[arg-type]
    if kind == _SET_RUN:
        return kind, op.owner is not None  # type: ignore[union-attr]
    if kind == _UPDATE_DELIVERY:
        return kind, (
            op.if_owner is not None,  # type: ignore[union-attr]
            op.if_status is not None,  # type: ignore[union-attr]
            op.required,  # type: ignore[union-attr]
            op.redrive,  # type: ignore[union-attr]
        )
    return kind, None


def _order_key(op: Write) -> Any:
    """Which ops must keep their order: a run's, a task's, a delivery's, an event's."""
    kind = type(op)
    if kind is UpdateDelivery or kind is ReplayDelivery:
        return ("delivery", op.subscription, op.seq)  # type: ignore[union-attr]
    if kind is NewEvent:
        return ("event", op.source, op.event_id)  # type: ignore[union-attr]
    if kind is RaiseAlert or kind is ResolveAlert:
        return ("alert", op.alert_id)  # type: ignore[union-attr]
    if kind is NewExpectation or kind is UpdateExpectation:
        return ("expectation", op.expectation, op.instance)  # type: ignore[union-attr]
    return op.run_id


class _NewRuns(Joinable):
    """A write of new runs only (what a start writes): the group commit joins the ones
    queued together into one insert (``Joinable``); each gets back the conflicts of its
    own run ids."""

    __slots__ = ("keys", "ops", "store")

    def __init__(self, store: SqlStore, ops: Sequence[Write]) -> None:
        self.store, self.ops = store, ops
        self.keys = frozenset(op.run_id for op in ops)

    def __call__(self, conn: Connection) -> dict[str, str]:
        return self.store._apply(conn, self.ops)

    @classmethod
    def joined(cls, bodies: list[Any]) -> Callable[[Any], list[Any]]:
        def run(conn: Connection) -> list[dict[str, str]]:
            conflicts = bodies[0].store._apply(conn, [op for b in bodies for op in b.ops])
            return [{k: v for k, v in conflicts.items() if k in b.keys} for b in bodies]

        return run


class SqlStore(SqlWorkers, SqlBus, SqlExpectations, SqlAlerts, SqlTokens):
    """The ``Store`` methods of every SQL adapter, over ``_transact`` and ``_select``."""

    queries: SqlQueries

    # -- what the adapter supplies ---------------------------------------------------

    async def _transact(self, body: Callable[[Any], T]) -> T:
        """Run ``body(connection)`` in a write transaction; commit unless it raises."""
        raise NotImplementedError

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        raise NotImplementedError

    def _is_duplicate(self, exc: BaseException) -> bool:
        """True if ``exc`` is the dialect's unique-key violation."""
        raise NotImplementedError

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """No wake-ups between processes by default (SQLite): the engine polls."""
        return _nothing

    # -- writes ----------------------------------------------------------------------

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        """Apply ``ops`` in one transaction, in order for each run (see ``BATCH_ORDER``).

        Every ``Append`` goes first. The other ops are applied in waves: wave ``k`` holds
        each run's ``k``-th op (an op on a task also comes after the earlier ops on that
        task id), so each run's ops keep their order; within a wave, ops of
        one kind (and, for ``UpdateRun``, one shape) go to the database as one
        ``executemany``: a thousand runs parking in one batch cost a handful of statements.
        """
        if ops and all(type(op) is NewRun for op in ops):  # a start: joined with others
            return await self._transact(_NewRuns(self, ops))
        return await self._transact(lambda conn: self._apply(conn, ops))

    def _apply(self, conn: Connection, ops: Sequence[Write]) -> dict[str, str]:
        conflicts: dict[str, str] = {}
        check_registry(conn, self.queries, ops)
        for owner, run_ids in fenced_appends(ops).items():
            held: set[str] = set()
            for start in range(0, len(run_ids), CHUNK):
                chunk = run_ids[start : start + CHUNK]
                sql = self.queries.owned_runs_sql(len(chunk))
                held.update(r[0] for r in conn.execute(sql, (owner, *chunk)).fetchall())
            if len(held) != len(run_ids):
                raise fence_conflict(owner, [r for r in run_ids if r not in held])
        appends = [
            (op.run_id, op.pos, op.kind, op.key, op.name, op.attempt, op.data, op.at)
            for op in ops
            if type(op) is Append
        ]
        if appends:
            try:
                conn.executemany(self.queries.append, appends)
            except Exception as exc:
                if not self._is_duplicate(exc):
                    raise
                raise ConcurrencyConflict(
                    f"a history record already exists ({exc}): another worker is "
                    "executing one of these runs"
                ) from exc
        if len(ops) <= _SMALL_BATCH:  # a signal, a cancel, an answer: just in order
            for op in ops:
                if type(op) is not Append:
                    self._apply_group(conn, _KINDS[type(op)], [op], conflicts)
            return conflicts
        waves: list[list[Write]] = []
        depth: dict[Any, int] = {}  # run id (or task id): the wave its next op goes in
        for op in ops:
            if type(op) is Append:
                continue
            key = _order_key(op)
            k = depth.get(key, 0)
            if type(op) is NewTask or type(op) is UpdateTask:
                task = ("task", op.task_id)  # one row, whichever run names it
                k = max(k, depth.get(task, 0))
                depth[task] = k + 1
            depth[key] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(op)
        for wave in waves:
            wave.sort(key=_wave_order)  # stable: ops of one kind keep their order
            for (kind, _), grouped in groupby(wave, _wave_order):
                self._apply_group(conn, kind, list(grouped), conflicts)
        return conflicts

    def _apply_group(
        self, conn: Connection, kind: int, group: list[Any], conflicts: dict[str, str]
    ) -> None:
        """Apply ``group``: consecutive ops of one kind (``_KINDS``) and one shape."""
        q = self.queries
        if kind == _SET_RUN:
            self._set_runs(conn, group)
        elif kind == _NEW_RUN:
            self._new_runs(conn, group, conflicts)
        elif kind == _UPDATE_RUN:
            self._update_runs(conn, group)
        elif kind == _NEW_SIGNAL:
            conn.executemany(
                q.insert_signal, [(op.run_id, op.name, op.payload, op.at) for op in group]
            )
        elif kind == _NEW_TASK:
            conn.executemany(
                q.insert_task,
                [
                    (
                        op.task_id,
                        op.run_id,
                        op.name,
                        op.data,
                        op.assignee,
                        op.form,
                        op.created_at,
                        op.due_at,
                    )
                    for op in group
                ],
            )
        elif kind == _UPDATE_TASK:
            for op in group:
                self._update_task(conn, op)
        elif kind == _NEW_EVENT:
            apply_new_events(conn, q, group)
        elif kind == _UPDATE_DELIVERY:
            apply_delivery_updates(conn, q, group)
        elif kind == _REPLAY_DELIVERY:
            apply_replays(conn, q, group)
        elif kind == _NEW_EXPECTATION:
            apply_new_expectations(conn, q, group)
        elif kind == _UPDATE_EXPECTATION:
            apply_expectation_updates(conn, q, group)
        elif kind == _NEW_ARRIVAL:
            apply_arrivals(conn, q, group)
        elif kind == _RAISE_ALERT:
            apply_raise_alerts(conn, q, group)
        elif kind == _RESOLVE_ALERT:
            apply_resolve_alerts(conn, q, group)
        else:
            for op in group:
                self._close_tasks(conn, op)

    def _new_runs(self, conn: Connection, ops: list[NewRun], conflicts: dict[str, str]) -> None:
        new_runs: dict[str, NewRun] = {}
        for op in ops:
            if op.run_id in new_runs:
                conflicts[op.run_id] = new_runs[op.run_id].workflow
            else:
                new_runs[op.run_id] = op
        # One lookup for the group, then one executemany: far cheaper than an
        # INSERT-and-check per run when thousands of runs start at once. A dialect whose
        # insert skips existing ids and says which it inserted needs no lookup first.
        ids = [] if self.queries.insert_run_returns else list(new_runs)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for run_id, workflow in conn.execute(self.queries.existing_runs_sql(len(chunk)), chunk):
                conflicts[run_id] = workflow
                del new_runs[run_id]
        rows = [
            (
                op.run_id,
                op.workflow,
                op.status,
                op.input,
                op.created_at,
                op.created_at,  # updated_at
                op.deadline_at,
                op.created_at,  # wake_at: a new run is due at once
                op.owner,
                op.parent_run_id,
                op.correlation_id,
                op.traceparent,
            )
            for op in new_runs.values()
        ]
        if not self.queries.insert_run_returns:
            conn.executemany(self.queries.insert_run, rows)
            return
        # Concurrent writers (PostgreSQL): a run another transaction inserted since the
        # lookup is skipped by ON CONFLICT, and reported with its workflow like the rest.
        inserted = set(conn.executemany_returning(self.queries.insert_run, rows))
        lost = [run_id for run_id in new_runs if run_id not in inserted]
        for start in range(0, len(lost), CHUNK):
            chunk = lost[start : start + CHUNK]
            for run_id, workflow in conn.execute(self.queries.existing_runs_sql(len(chunk)), chunk):
                conflicts[run_id] = workflow

    def _set_runs(self, conn: Connection, ops: list[SetRun]) -> None:
        q = self.queries
        for guarded, group in groupby(ops, lambda op: op.owner is not None):
            rows = [
                (
                    op.status,
                    op.output,
                    op.error,
                    op.error_pos,
                    op.updated_at,
                    op.wake_at,
                    op.release,
                    op.run_id,
                )
                + ((op.owner,) if guarded else ())
                for op in group
            ]
            if not guarded:
                conn.executemany(q.set_run, rows)
                continue
            # executemany's rowcount sums the rows each one changed: one per guarded write.
            changed = conn.executemany(q.set_owned_run, rows).rowcount
            if changed != len(rows):
                raise ConcurrencyConflict(
                    f"{len(rows) - changed} of {len(rows)} guarded run updates found "
                    "another owner: another worker took those runs over"
                )

    def _update_runs(self, conn: Connection, ops: list[UpdateRun]) -> None:
        sql = self.queries.update_run_sql(update_run_shape(ops[0]))
        changed = conn.executemany(sql, [update_run_params(op) for op in ops]).rowcount
        # executemany's rowcount sums the rows each one changed: one per matching run.
        if ops[0].required and changed != len(ops):
            raise ConcurrencyConflict(
                f"{len(ops) - changed} of {len(ops)} run updates found their run otherwise "
                "than they ask (unknown, or its status, owner or flags moved meanwhile)"
            )

    def _update_task(self, conn: Connection, op: UpdateTask) -> None:
        params = (
            op.status,
            op.response,
            op.completed_at,
            op.completed_by,
            op.task_id,
            op.run_id,
            op.if_status,
        )
        if conn.execute(self.queries.update_task, params).rowcount == 0:
            raise ConcurrencyConflict(f"task {op.task_id!r} is unknown or not {op.if_status}")

    def _close_tasks(self, conn: Connection, op: CloseTasks) -> None:
        if op.task_id is None:
            conn.execute(self.queries.close_tasks, (op.status, op.at, op.run_id))
        else:
            conn.execute(self.queries.close_task, (op.status, op.at, op.run_id, op.task_id))

    # -- reads -----------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        rows = await self._select(self.queries.get_run, (run_id,))
        return run_from_row(rows[0]) if rows else None

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
        p = self.queries.param
        where, params = [], []
        for column, value in (("status", status), ("workflow", workflow)):
            if value is not None:
                where.append(f"{column} = {p}")
                params.append(value)
        if search is not None:
            where_search, params_search = _search_clauses(search, p)
            where += where_search
            params += params_search
        sql = self.queries.list_runs_sql(where, payloads)
        return [run_from_row(r) for r in await self._select(sql, (*params, limit))]

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """A run's history in ``pos`` order."""
        return [event_from_row(r) for r in await self._select(self.queries.history, (run_id,))]

    async def histories(self, run_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Histories of many runs, fetched in chunks."""
        result: dict[str, list[HistoryEvent]] = {rid: [] for rid in run_ids}
        ids = list(run_ids)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for row in await self._select(self.queries.histories_sql(len(chunk)), chunk):
                result[row[0]].append(event_from_row(row))
        return result

    async def last_pos(self, run_id: str) -> int:
        """The ``pos`` of the run's last history record (0 for none)."""
        rows = await self._select(self.queries.last_pos, (run_id,))
        return int(rows[0][0]) if rows else 0

    async def signals(self, run_id: str, after_id: int = 0) -> list[Signal]:
        """A run's signals with ids above ``after_id``, in delivery order."""
        rows = await self._select(self.queries.signals, (run_id, after_id))
        return [Signal(r[0], r[1], r[2], loads(r[3]), at_time(r[4])) for r in rows]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        rows = await self._select(self.queries.get_task, (task_id,))
        return task_from_row(rows[0]) if rows else None

    async def claim_task(self, task_id: str, assignee: str) -> bool:
        """Assign an open task that has no assignee, or has this one (see ``Store``)."""
        params = (assignee, task_id, assignee)
        changed: int = await self._transact(
            lambda c: c.execute(self.queries.claim_task, params).rowcount
        )
        return changed == 1

    async def list_tasks(
        self,
        *,
        status: str | None = "open",
        assignee: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Tasks, oldest first, filtered."""
        p = self.queries.param
        where, params = [], []
        for column, value in (("status", status), ("assignee", assignee), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = {p}")
                params.append(value)
        sql = self.queries.list_tasks_sql(where)
        return [task_from_row(r) for r in await self._select(sql, (*params, limit))]


def _nothing() -> None:
    pass


def _search_clauses(search: RunSearch, p: str) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and parameters of ``search`` (``p``: the parameter marker)."""
    where: list[str] = []
    params: list[Any] = []
    if search.created_after is not None:
        where.append(f"created_at >= {p}")
        params.append(search.created_after)
    if search.created_before is not None:
        where.append(f"created_at < {p}")
        params.append(search.created_before)
    if search.correlation_id is not None:
        where.append(f"(correlation_id = {p} OR (correlation_id IS NULL AND run_id = {p}))")
        params += [search.correlation_id, search.correlation_id]
    if search.run_id_prefix:
        # Not LIKE: SQLite's is case-insensitive, and a prefix may hold % or _.
        where.append(f"substr(run_id, 1, length({p})) = {p}")
        params += [search.run_id_prefix, search.run_id_prefix]
    if search.before is not None:
        # The listed run's own created_at, read here: a float that went through a datetime
        # (microseconds) is not always the one stored. The cursor's is for a run gone since.
        at = f"COALESCE((SELECT b.created_at FROM runs b WHERE b.run_id = {p}), {p})"
        where.append(f"(created_at < {at} OR (created_at = {at} AND run_id < {p}))")
        approx, run_id = search.before
        params += [run_id, approx, run_id, approx, run_id]
    return where, params
