"""PostgreSQL's named queries: SQLite's statements in PostgreSQL's spelling.

The two dialects agree on almost every statement Legato runs (``INSERT ... ON CONFLICT``,
``RETURNING``, partial indexes, row values), so PostgreSQL's queries are SQLite's
(``legato.storage.sqlite.queries``, where each is written out in full) with two
mechanical changes: ``%s`` marks a parameter, and every table is qualified by Legato's
schema, so the application's own tables in the same database never meet ours, and a
connection pooler's ``search_path`` does not matter. Where the dialects differ the
statement is written out here: claims take rows ``FOR UPDATE SKIP LOCKED`` (many workers
claim at once, none waits for another's rows), a publish reads the registry ``FOR
SHARE``, ``GREATEST`` for SQLite's two-argument ``max``, and the schema version's table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from legato.storage import SCHEMA_NAME
from legato.storage.sqlite import queries as sqlite
from legato.storage.sqlrows import EXPECTATION_COLUMNS, RUN_COLUMNS
from legato.storage.sqlupdates import update_run_sql

TABLES = (
    "runs",
    "history",
    "workers",
    "workflows",
    "signals",
    "tasks",
    "events",
    "subscriptions",
    "registry",
    "deliveries",
    "expectations",
    "expectation_arrivals",
    "alerts",
    "api_tokens",
    "legato_version",
)
_TABLE = re.compile(r"\b(FROM|JOIN|INTO|UPDATE)\s+(" + "|".join(TABLES) + r")\b")


def translate(sql: str, schema: str) -> str:
    """SQLite's ``sql`` for PostgreSQL: ``%s`` parameters, tables in ``schema``."""
    if re.search("%(?!s)", sql):
        raise ValueError(f"a literal % in a shared statement would read as a parameter: {sql}")
    return _TABLE.sub(rf"\1 {schema}.\2", sql.replace("?", "%s"))


class PostgresQueries:
    """The ``SqlQueries`` of PostgreSQL, for the tables of one schema."""

    param = "%s"
    insert_run_returns = True  # many writers: two may insert one run id at once
    events_after: str | None = None  # concurrent writers: each insert RETURNING its seq

    def __init__(self, schema: str) -> None:
        if not SCHEMA_NAME.match(schema):
            raise ValueError(
                f"schema {schema!r} is not a plain lower-case SQL name (letters, digits, _)"
            )
        self.schema = schema
        shared = sqlite.SqliteQueries
        for name in dir(shared):
            value = getattr(shared, name)
            if name.startswith("_") or name in self._OWN:
                continue
            if isinstance(value, str) and name != "param":
                setattr(self, name, translate(value, schema))
            elif callable(value) and name.endswith("_sql"):
                setattr(self, name, self._translated(getattr(sqlite.QUERIES, name)))
        s = schema
        unfinished = sqlite.UNFINISHED
        self.insert_run = (
            translate(sqlite.SqliteQueries.insert_run, s)
            + " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
        )
        # A publish routes by the registry it reads; FOR SHARE makes a change of the
        # subscriptions wait for the publishes in flight, and a publish for the change.
        self.registry_version = f"SELECT version FROM {s}.registry WHERE id = 1 FOR SHARE"
        self.schema_version = f"SELECT version FROM {s}.legato_version WHERE id = 1"
        self.quiet_runs = (
            "SELECT run_id, workflow, status, progress, wake_at FROM ("
            "SELECT r.run_id, r.workflow, r.status, r.wake_at, GREATEST(r.updated_at, coalesce(("
            f"SELECT h.at FROM {s}.history h WHERE h.run_id = r.run_id ORDER BY h.pos DESC "
            f"LIMIT 1), r.updated_at)) AS progress FROM {s}.runs r "
            f"WHERE {unfinished} AND r.updated_at < %s "
            "AND (r.status IN ('pending', 'running', 'compensating') OR r.wake_at < %s)"
            ") AS quiet WHERE progress < %s ORDER BY progress LIMIT %s"
        )

    _OWN = frozenset(
        {
            "registry_version",
            "insert_run",
            "schema_version",
            "quiet_runs",
            "events_after",
            "claim_runs_sql",
            "claim_deliveries_sql",
            "update_run_sql",
            "owned_runs_sql",
            "claim_due_expectations_sql",
        }
    )

    def _translated(self, build: Callable[..., str]) -> Callable[..., str]:
        schema = self.schema

        @functools.wraps(build)
        def built(*args: Any) -> str:
            return translate(build(*args), schema)

        return functools.cache(built) if _cacheable(build) else built

    @functools.cache  # noqa: B019 (a few instances per process: nothing leaks)
    def update_run_sql(self, shape: tuple[Any, ...]) -> str:
        return translate(update_run_sql(shape, "?"), self.schema)

    @functools.cache  # noqa: B019
    def owned_runs_sql(self, n: int) -> str:
        """Which of ``n`` runs the owner holds, locked ``FOR SHARE`` until the batch
        commits: a worker presuming this one dead waits to release them, so no record
        lands on a run after it changed hands."""
        marks = ", ".join(["%s"] * n)
        return (
            f"SELECT run_id FROM {self.schema}.runs WHERE owner = %s AND run_id IN ({marks}) "
            "FOR SHARE"
        )

    @functools.cache  # noqa: B019
    def claim_due_expectations_sql(self, n: int) -> str:
        """SQLite's claim of due deadlines, the instances locked ``SKIP LOCKED``."""
        s = self.schema
        marks = ", ".join(["%s"] * n)
        return (
            f"UPDATE {s}.expectations SET claimed_until = %s WHERE (expectation, instance) IN ("
            f"SELECT expectation, instance FROM {s}.expectations WHERE status = 'open' "
            f"AND expectation IN ({marks}) AND deadline_at <= %s "
            "AND (claimed_until IS NULL OR claimed_until < %s) ORDER BY deadline_at LIMIT %s "
            f"FOR UPDATE SKIP LOCKED) RETURNING {EXPECTATION_COLUMNS}"
        )

    @functools.cache  # noqa: B019
    def claim_runs_sql(self, n: int) -> str:
        """The claim (params: worker id, now, the workflow names, limit, worker id).

        The due runs are locked ``SKIP LOCKED``: workers claiming at the same moment take
        different runs instead of queueing on each other's; a row another claim took and
        committed meanwhile is re-checked (``owner IS NULL``) and left out.
        """
        s = self.schema
        marks = ", ".join(["%s"] * n)
        return (
            f"UPDATE {s}.runs SET owner = %s WHERE run_id IN ("
            f"SELECT run_id FROM {s}.runs WHERE owner IS NULL AND {sqlite.UNFINISHED} "
            f"AND wake_at <= %s AND workflow IN ({marks}) ORDER BY wake_at LIMIT %s "
            "FOR UPDATE SKIP LOCKED) "
            f"AND EXISTS (SELECT 1 FROM {s}.workers WHERE worker_id = %s) "
            f"RETURNING {translate(RUN_COLUMNS, s)}"
        )

    @functools.cache  # noqa: B019
    def claim_deliveries_sql(self, n: int) -> str:
        """Due, free deliveries (params: worker id, now, the subscriptions, limit, worker
        id), locked ``SKIP LOCKED``; of an ordered key only the oldest pending one."""
        s = self.schema
        marks = ", ".join(["%s"] * n)
        head_of_key = translate(sqlite.HEAD_OF_KEY, s)
        return (
            f"UPDATE {s}.deliveries SET owner = %s WHERE (subscription, seq) IN ("
            f"SELECT subscription, seq FROM {s}.deliveries d WHERE status = 'pending' AND "
            f"owner IS NULL AND due_at <= %s AND subscription IN ({marks}) AND ({head_of_key}) "
            "ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"AND EXISTS (SELECT 1 FROM {s}.workers WHERE worker_id = %s) "
            "RETURNING subscription, seq, attempts, replay, "
            f"(SELECT event FROM {s}.events WHERE events.seq = deliveries.seq)"
        )


def _cacheable(build: Callable[..., str]) -> bool:
    """Builders of ``n`` values are cached; those taking WHERE clauses are not."""
    return build.__name__ not in _BY_CLAUSES


_BY_CLAUSES = frozenset(
    {
        "list_runs_sql",
        "list_tasks_sql",
        "list_events_sql",
        "list_deliveries_sql",
        "list_alerts_sql",
        "list_expectations_sql",
    }
)
