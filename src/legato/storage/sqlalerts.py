"""Alerts on every SQL adapter, and the ``quiet_runs`` read that finds stuck runs.

``SqlStore`` mixes this in. Which conditions are alerts, and when they clear, is decided
in ``legato.bus.alerts`` and written as these ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from legato.errors import ConcurrencyConflict
from legato.model.alerts import Alert
from legato.storage.base import QuietRun, RaiseAlert, ResolveAlert, StoreCounts
from legato.storage.sqlrows import alert_from_row

_CHUNK = 500  # ids per query: well under every SQL dialect's parameter limit


def apply_raise_alerts(conn: Any, queries: Any, ops: Sequence[RaiseAlert]) -> None:
    """Raise alerts: a new one is inserted, a resolved one raised again; one raised by
    someone else meanwhile makes the batch raise."""
    for op in ops:
        if op.times == 1:
            cursor = conn.execute(
                queries.insert_alert,
                (op.alert_id, op.kind, op.subject, op.summary, op.details, op.at, op.event_id),
            )
        else:
            cursor = conn.execute(
                queries.raise_alert_again,
                (op.summary, op.details, op.at, op.times, op.event_id, op.alert_id, op.times - 1),
            )
        if cursor.rowcount != 1:
            raise ConcurrencyConflict(f"alert {op.alert_id!r} was raised meanwhile")


def apply_resolve_alerts(conn: Any, queries: Any, ops: Sequence[ResolveAlert]) -> None:
    """Resolve alerts still raised as the ops expect; any other makes the batch raise."""
    for op in ops:
        cursor = conn.execute(queries.resolve_alert, (op.at, op.event_id, op.alert_id, op.times))
        if cursor.rowcount != 1:
            raise ConcurrencyConflict(f"alert {op.alert_id!r} was resolved meanwhile")


class SqlAlerts:
    """The alert reads of every SQL adapter (mixed into ``SqlStore``)."""

    queries: Any

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def list_alerts(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, latest raised first, filtered."""
        mark = self.queries.param
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = {mark}")
                params.append(value)
        rows = await self._select(self.queries.list_alerts_sql(where), (*params, limit))
        return [alert_from_row(r) for r in rows]

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[Alert]:
        """The alerts with these ids (those that exist)."""
        unique = list(dict.fromkeys(alert_ids))
        found: list[Alert] = []
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = await self._select(self.queries.get_alerts_sql(len(chunk)), tuple(chunk))
            found += [alert_from_row(r) for r in rows]
        return found

    async def schema_version(self) -> int:
        """The schema version recorded in the database (one read)."""
        [(version,)] = await self._select(self.queries.schema_version)
        return int(version)

    async def counts(self, now: float) -> StoreCounts:
        """The gauges of ``/metrics``."""
        q = self.queries
        runs = {status: n for status, n in await self._select(q.count_runs_by_status)}
        [(overdue,)] = await self._select(q.count_overdue_timers, (now,))
        expectations = {(e, s): n for e, s, n in await self._select(q.count_expectations)}
        deliveries = {(d, s): n for d, s, n in await self._select(q.count_deliveries)}
        raised = {kind: n for kind, n in await self._select(q.count_raised_alerts)}
        return StoreCounts(runs, expectations, overdue, deliveries, raised)

    async def quiet_runs(self, before: float, limit: int) -> list[QuietRun]:
        """Unfinished runs that should have moved and made no progress since ``before``."""
        rows = await self._select(self.queries.quiet_runs, (before, before, before, limit))
        return [QuietRun(*r) for r in rows]
