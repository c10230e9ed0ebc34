"""SQLite's named queries: every statement ``SqliteStore`` runs, as plain SQL."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from legato.model.runs import TERMINAL_STATUSES
from legato.storage.sqlrows import (
    ALERT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    EXPECTATION_COLUMNS,
    HISTORY_COLUMNS,
    RUN_COLUMNS,
    RUN_COLUMNS_NO_PAYLOADS,
    TASK_COLUMNS,
)
from legato.storage.sqlupdates import update_run_sql

# Word for word the WHERE of the partial index runs_unfinished in schema.sql: SQLite uses
# a partial index only when the query repeats its condition (tests/contract pins the plan).
UNFINISHED = (
    "status NOT IN ('completed', 'failed', 'compensated', 'compensation_failed', "
    "'cancelled', 'blocked')"
)
assert {part.strip(" '()") for part in UNFINISHED[14:].split(",")} == {
    s.value for s in TERMINAL_STATUSES
}


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def due_runs_sql(workflows: int) -> str:
    """The query for due runs (params: now, the workflow names, limit).

    Served by the partial index ``runs_unfinished``: a poll with nothing due costs a few
    microseconds however many runs are parked.
    """
    return (
        f"SELECT run_id FROM runs WHERE owner IS NULL AND {UNFINISHED} AND wake_at <= ? "
        f"AND workflow IN ({_marks(workflows)}) ORDER BY wake_at LIMIT ?"
    )


def claim_runs_sql(workflows: int) -> str:
    """The claim (params: worker id, now, the workflow names, limit, worker id).

    The due runs come from ``due_runs_sql``, through the partial index; the EXISTS makes
    the claim take nothing, atomically, for a worker that has no row any more.
    """
    return (
        f"UPDATE runs SET owner = ? WHERE run_id IN ({due_runs_sql(workflows)}) "
        "AND EXISTS (SELECT 1 FROM workers WHERE worker_id = ?) "
        f"RETURNING {RUN_COLUMNS}"
    )


# Through the partial index runs_unfinished (owner, wake_at): owned unfinished runs only,
# so a recovery pass, every few seconds, does not scan the finished ones.
RELEASE_ORPHANED_RUNS_SQL = (
    f"UPDATE runs SET owner = NULL WHERE owner IS NOT NULL AND {UNFINISHED} "
    "AND owner NOT IN (SELECT worker_id FROM workers)"
)


# A delivery that may go now as far as its key goes: unordered, or the oldest pending
# delivery of its key (of ``deliveries d``), served by the index deliveries_by_key.
HEAD_OF_KEY = (
    "d.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE "
    "e.subscription = d.subscription AND e.ordering_key = d.ordering_key AND "
    "e.status = 'pending' AND e.ordering_key IS NOT NULL AND e.seq < d.seq)"
)


class SqliteQueries:
    """The ``SqlQueries`` of SQLite."""

    param = "?"
    insert_run_returns = False  # one writer: the lookup before the insert is enough
    insert_run = (
        "INSERT INTO runs (run_id, workflow, status, input, created_at, updated_at, "
        "deadline_at, wake_at, owner, parent_run_id, correlation_id, traceparent) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    append = (
        "INSERT INTO history (run_id, pos, kind, key, name, attempt, data, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    set_run = (
        "UPDATE runs SET status = ?, output = ?, error = ?, error_pos = ?, updated_at = ?, "
        "wake_at = ?, "
        "owner = CASE WHEN ? THEN NULL ELSE owner END WHERE run_id = ?"
    )
    # A guarded SetRun: only while the run is still the writer's (the WHERE sees the old owner).
    set_owned_run = set_run + " AND owner = ?"
    insert_signal = "INSERT INTO signals (run_id, name, payload, sent_at) VALUES (?, ?, ?, ?)"
    insert_task = (
        "INSERT INTO tasks (task_id, run_id, name, data, assignee, form, status, created_at, "
        "due_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?) ON CONFLICT (task_id) DO NOTHING"
    )
    update_task = (
        "UPDATE tasks SET status = ?, response = ?, completed_at = ?, completed_by = ? "
        "WHERE task_id = ? AND run_id = ? AND status = ?"
    )
    claim_task = (
        "UPDATE tasks SET assignee = ? "
        "WHERE task_id = ? AND status = 'open' AND (assignee IS NULL OR assignee = ?)"
    )
    close_tasks = (
        "UPDATE tasks SET status = ?, completed_at = ? WHERE run_id = ? AND status = 'open'"
    )
    close_task = close_tasks + " AND task_id = ?"
    release_all = "UPDATE runs SET owner = NULL WHERE owner = ?"
    release_one = "UPDATE runs SET owner = NULL WHERE owner = ? AND run_id = ?"
    register_worker = (
        "INSERT INTO workers (worker_id, host, pid, started_at, heartbeat_at, workflows, "
        "lease_s) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) "
        "DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
    )
    heartbeat = "UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?"
    delete_worker = "DELETE FROM workers WHERE worker_id = ?"
    release_orphaned = RELEASE_ORPHANED_RUNS_SQL
    register_workflow = "INSERT INTO workflows VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    get_run = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"
    history = f"SELECT {HISTORY_COLUMNS} FROM history WHERE run_id = ? ORDER BY pos"
    last_pos = "SELECT coalesce(max(pos), 0) FROM history WHERE run_id = ?"
    cancel_requests = (
        f"SELECT run_id FROM runs WHERE owner = ? AND {UNFINISHED} AND cancel_requested = 1"
    )
    list_workers = (
        "SELECT worker_id, host, pid, started_at, heartbeat_at, workflows, lease_s FROM workers "
        "ORDER BY started_at"
    )
    signals = (
        "SELECT id, run_id, name, payload, sent_at FROM signals "
        "WHERE run_id = ? AND id > ? ORDER BY id"
    )
    get_task = f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?"
    list_workflows = "SELECT name FROM workflows ORDER BY name"

    # -- the event bus -------------------------------------------------------------------
    registry_version = "SELECT version FROM registry WHERE id = 1"
    bump_registry = "UPDATE registry SET version = version + 1 WHERE id = 1"
    delete_subscription = "DELETE FROM subscriptions WHERE name = ?"
    delete_subscription_deliveries = "DELETE FROM deliveries WHERE subscription = ?"
    subscription_rows = (
        "SELECT name, kind, pattern, ordered_by, registered_at FROM subscriptions ORDER BY name"
    )
    upsert_subscription = (
        "INSERT INTO subscriptions (name, kind, pattern, ordered_by, registered_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
        "pattern = excluded.pattern, ordered_by = excluded.ordered_by, "
        "registered_at = excluded.registered_at"
    )
    insert_event = (
        "INSERT INTO events (source, event_id, type, subject, correlation_id, causation_id, "
        "run_id, call_key, reply_types, routed, recorded_at, event) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id, source) DO NOTHING RETURNING seq"
    )
    insert_event_many = insert_event.removesuffix(" RETURNING seq")
    # The writer is alone in its transaction: every seq above the last one before the
    # batch is the batch's.
    last_event_seq = "SELECT max(seq) FROM events"
    events_after: str | None = "SELECT seq, event_id, source FROM events WHERE seq > ?"
    insert_delivery = (
        "INSERT INTO deliveries (subscription, seq, status, attempts, due_at, ordering_key, "
        "owner, updated_at) VALUES (?, ?, 'pending', 0, ?, ?, ?, ?)"
    )
    replay_delivery = (
        "INSERT INTO deliveries (subscription, seq, status, attempts, due_at, ordering_key, "
        "replay, updated_at) VALUES (?, ?, 'pending', 0, ?, ?, 1, ?) "
        "ON CONFLICT (subscription, seq) DO UPDATE SET status = 'pending', attempts = 0, "
        "due_at = excluded.due_at, owner = NULL, error = NULL, replay = 1, "
        "updated_at = excluded.updated_at WHERE deliveries.status != 'pending'"
    )
    # Through the partial index deliveries_owned (its WHERE repeated word for word).
    release_deliveries = (
        "UPDATE deliveries SET owner = NULL "
        "WHERE status = 'pending' AND owner IS NOT NULL AND owner = ?"
    )
    release_orphaned_deliveries = (
        "UPDATE deliveries SET owner = NULL WHERE status = 'pending' AND owner IS NOT NULL "
        "AND owner NOT IN (SELECT worker_id FROM workers)"
    )
    get_event = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?"
    find_events = f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ? ORDER BY seq"
    deliveries_of = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE seq = ? ORDER BY subscription"
    # Events older than the cutoff with nothing left to deliver, oldest first.
    prunable_events = (
        "SELECT seq FROM events WHERE recorded_at < ? AND NOT EXISTS (SELECT 1 FROM "
        "deliveries d WHERE d.seq = events.seq AND d.status = 'pending') "
        "ORDER BY recorded_at LIMIT ?"
    )
    delete_event = "DELETE FROM events WHERE seq = ?"
    delete_deliveries = "DELETE FROM deliveries WHERE seq = ?"

    # -- expectations ---------------------------------------------------------------------
    insert_expectation = (
        "INSERT INTO expectations (expectation, instance, key, status, missing, trigger_seq, "
        "correlation_id, opened_at, deadline_at, closed_at, closed_by, awaited) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    update_expectation = (
        "UPDATE expectations SET status = ?, missing = ?, closed_at = coalesce(?, closed_at), "
        "closed_by = coalesce(?, closed_by), violation_id = coalesce(?, violation_id) "
        "WHERE expectation = ? AND instance = ? AND status = ?"
    )
    insert_arrival = (
        "INSERT INTO expectation_arrivals (expectation, key, role, seq, at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    # -- alerts -----------------------------------------------------------------------------
    insert_alert = (
        "INSERT INTO alerts (alert_id, kind, subject, status, summary, details, raised_at, "
        "times, event_id) VALUES (?, ?, ?, 'raised', ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING"
    )
    raise_alert_again = (
        "UPDATE alerts SET status = 'raised', summary = ?, details = ?, raised_at = ?, "
        "resolved_at = NULL, times = ?, event_id = ? "
        "WHERE alert_id = ? AND status = 'resolved' AND times = ?"
    )
    resolve_alert = (
        "UPDATE alerts SET status = 'resolved', resolved_at = ?, event_id = ? "
        "WHERE alert_id = ? AND status = 'raised' AND times = ?"
    )
    # Unfinished runs that should have moved (the WHERE of runs_unfinished repeated, so
    # only unfinished rows are read), with the time of their last history record.
    quiet_runs = (
        "SELECT run_id, workflow, status, progress, wake_at FROM ("
        "SELECT r.run_id, r.workflow, r.status, r.wake_at, max(r.updated_at, coalesce(("
        "SELECT h.at FROM history h WHERE h.run_id = r.run_id ORDER BY h.pos DESC LIMIT 1"
        "), r.updated_at)) AS progress FROM runs r "
        f"WHERE {UNFINISHED} AND r.updated_at < ? "
        "AND (r.status IN ('pending', 'running', 'compensating') OR r.wake_at < ?)"
        ") WHERE progress < ? ORDER BY progress LIMIT ?"
    )

    # The gauges of /metrics, each through an index (runs_by_status, the partial indexes
    # of runs_unfinished, expectations_due, deliveries_due / deliveries_dead).
    schema_version = "PRAGMA user_version"
    count_runs_by_status = "SELECT status, count(*) FROM runs GROUP BY status"
    count_overdue_timers = (
        f"SELECT count(*) FROM runs WHERE owner IS NULL AND {UNFINISHED} AND wake_at < ? "
        "AND status IN ('sleeping', 'waiting')"
    )
    count_expectations = (
        "SELECT expectation, status, count(*) FROM expectations "
        "WHERE status IN ('open', 'violated') GROUP BY expectation, status"
    )
    count_deliveries = (
        "SELECT subscription, status, count(*) FROM deliveries "
        "WHERE status IN ('pending', 'dead') GROUP BY subscription, status"
    )
    count_raised_alerts = "SELECT kind, count(*) FROM alerts WHERE status = 'raised' GROUP BY kind"

    # -- API tokens ---------------------------------------------------------------------------
    insert_token = (
        "INSERT INTO api_tokens (name, digest, scope, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING"
    )
    revoke_token = "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"
    list_tokens = "SELECT name, scope, created_at, revoked_at FROM api_tokens ORDER BY name"
    find_token = "SELECT name, scope, created_at, revoked_at FROM api_tokens WHERE digest = ?"

    def get_alerts_sql(self, n: int) -> str:
        return f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id IN ({_marks(n)})"

    def list_alerts_sql(self, where: Sequence[str]) -> str:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return (
            f"SELECT {ALERT_COLUMNS} FROM alerts{clause} "
            "ORDER BY raised_at DESC, alert_id DESC LIMIT ?"
        )

    def expectations_of_keys_sql(self, n: int) -> str:
        """Instances of one expectation for ``n`` keys (params: the name, the keys)."""
        return (
            f"SELECT {EXPECTATION_COLUMNS} FROM expectations WHERE expectation = ? "
            f"AND key IN ({_marks(n)})"
        )

    def arrivals_of_keys_sql(self, n: int) -> str:
        """Arrivals of one expectation since a time for ``n`` keys (params: the name, the
        time, the keys)."""
        return (
            "SELECT expectation, key, role, seq, at FROM expectation_arrivals "
            f"WHERE expectation = ? AND at >= ? AND key IN ({_marks(n)})"
        )

    def due_expectations_sql(self, n: int) -> str:
        """Open instances past their deadline (params: the names, now, limit), through the
        partial index ``expectations_due`` (its WHERE repeated)."""
        return (
            f"SELECT {EXPECTATION_COLUMNS} FROM expectations WHERE status = 'open' "
            f"AND expectation IN ({_marks(n)}) AND deadline_at <= ? ORDER BY deadline_at LIMIT ?"
        )

    def claim_due_expectations_sql(self, n: int) -> str:
        """Hold open instances past their deadline that no worker holds (params: hold
        until, the names, now, now, limit), through ``expectations_due``."""
        return (
            "UPDATE expectations SET claimed_until = ? WHERE (expectation, instance) IN ("
            "SELECT expectation, instance FROM expectations WHERE status = 'open' "
            f"AND expectation IN ({_marks(n)}) AND deadline_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY deadline_at LIMIT ?) "
            f"RETURNING {EXPECTATION_COLUMNS}"
        )

    def next_expectation_due_sql(self, n: int) -> str:
        return (
            "SELECT min(deadline_at) FROM expectations WHERE status = 'open' "
            f"AND expectation IN ({_marks(n)})"
        )

    def list_expectations_sql(self, where: Sequence[str]) -> str:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return (
            f"SELECT {EXPECTATION_COLUMNS} FROM expectations{clause} "
            "ORDER BY opened_at DESC, instance DESC LIMIT ?"
        )

    @functools.cache  # noqa: B019 (one instance per process: nothing leaks)
    def update_run_sql(self, shape: tuple[Any, ...]) -> str:
        return update_run_sql(shape, "?")

    def update_delivery_sql(self, if_owner: bool, if_status: bool, redrive: bool) -> str:
        sql = (
            "UPDATE deliveries SET status = ?, attempts = ?, due_at = ?, "
            "error = coalesce(?, error), updated_at = ?, owner = NULL"
            + (", redriven_at = ?, redriven_by = ? " if redrive else " ")
            + "WHERE subscription = ? AND seq = ?"
        )
        if if_owner:
            sql += " AND owner = ?"
        if if_status:
            sql += " AND status = ?"
        return sql

    def claim_deliveries_sql(self, n: int) -> str:
        # The due, free deliveries through the partial index deliveries_due (its WHERE
        # repeated word for word); of an ordered key only the oldest pending one, so a
        # key's events go one at a time, in order, while other keys go at once.
        return (
            "UPDATE deliveries SET owner = ? WHERE (subscription, seq) IN ("
            "SELECT subscription, seq FROM deliveries d WHERE status = 'pending' AND "
            "owner IS NULL AND due_at <= ? "
            f"AND subscription IN ({_marks(n)}) AND ({HEAD_OF_KEY}) ORDER BY due_at LIMIT ?) "
            "AND EXISTS (SELECT 1 FROM workers WHERE worker_id = ?) "
            "RETURNING subscription, seq, attempts, replay, "
            "(SELECT event FROM events WHERE events.seq = deliveries.seq)"
        )

    def next_delivery_due_sql(self, n: int) -> str:
        return (
            "SELECT min(due_at) FROM deliveries d WHERE status = 'pending' AND owner IS NULL "
            f"AND subscription IN ({_marks(n)}) AND ({HEAD_OF_KEY})"
        )

    def list_events_sql(self, where: Sequence[str]) -> str:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return f"SELECT {EVENT_COLUMNS} FROM events {clause}ORDER BY seq LIMIT ?"

    def list_deliveries_sql(self, where: Sequence[str]) -> str:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return (
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries {clause}ORDER BY seq, subscription LIMIT ?"
        )

    def owned_runs_sql(self, n: int) -> str:
        """Which of ``n`` runs the owner holds (params: the owner, the run ids)."""
        return f"SELECT run_id FROM runs WHERE owner = ? AND run_id IN ({_marks(n)})"

    def existing_runs_sql(self, n: int) -> str:
        return f"SELECT run_id, workflow FROM runs WHERE run_id IN ({_marks(n)})"

    def claim_runs_sql(self, n: int) -> str:
        return claim_runs_sql(n)

    def next_due_sql(self, n: int) -> str:
        return (
            f"SELECT min(wake_at) FROM runs WHERE owner IS NULL AND {UNFINISHED} "
            f"AND workflow IN ({_marks(n)})"
        )

    def histories_sql(self, n: int) -> str:
        return (
            f"SELECT {HISTORY_COLUMNS} FROM history WHERE run_id IN ({_marks(n)}) "
            "ORDER BY run_id, pos"
        )

    def list_runs_sql(self, where: Sequence[str], payloads: bool) -> str:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        columns = RUN_COLUMNS if payloads else RUN_COLUMNS_NO_PAYLOADS
        return f"SELECT {columns} FROM runs {clause}ORDER BY created_at DESC, run_id DESC LIMIT ?"

    def list_tasks_sql(self, where: Sequence[str]) -> str:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return f"SELECT {TASK_COLUMNS} FROM tasks {clause}ORDER BY created_at, task_id LIMIT ?"


QUERIES = SqliteQueries()
"""The one instance (PostgreSQL's queries are built from its statements)."""
