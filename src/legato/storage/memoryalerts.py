"""Alerts of the in-memory ``Store``, and its ``quiet_runs`` read: the same contract as SQL.

Mixed into ``MemoryStore``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from legato.errors import ConcurrencyConflict
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.runs import TERMINAL_STATUSES
from legato.storage.base import (
    SCHEMA_VERSION,
    QuietRun,
    RaiseAlert,
    ResolveAlert,
    StoreCounts,
    Write,
    to_datetime,
)

_MOVING = frozenset({"pending", "running", "compensating"})
_TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)


@dataclass(slots=True)
class _AlertRow:
    op: RaiseAlert
    status: str
    raised_at: float
    resolved_at: float | None
    times: int
    event_id: str


def _alert(row: _AlertRow) -> Alert:
    raised = to_datetime(row.raised_at)
    assert raised is not None
    return Alert(
        row.op.alert_id,
        AlertKind(row.op.kind),
        row.op.subject,
        AlertStatus(row.status),
        row.op.summary,
        raised,
        to_datetime(row.resolved_at),
        row.times,
        row.event_id,
        orjson.loads(row.op.details),
    )


class MemoryAlerts:
    """Alerts keyed by id."""

    _runs: dict[str, Any]
    _history: dict[str, list[Any]]

    def _init_alerts(self) -> None:
        self._alerts: dict[str, _AlertRow] = {}

    def _apply_alert(self, op: Write, undo: list[Callable[[], None]]) -> bool:
        """Apply ``op`` if it is an alert op; False if it is not one."""
        if type(op) is RaiseAlert:
            row = self._alerts.get(op.alert_id)
            if row is None and op.times == 1:
                self._alerts[op.alert_id] = _AlertRow(op, "raised", op.at, None, 1, op.event_id)
                undo.append(partial(self._drop_alert, op.alert_id))
            elif row is not None and row.status == "resolved" and row.times == op.times - 1:
                undo.append(partial(self._restore_alert, dataclasses.replace(row)))
                row.op, row.status, row.raised_at, row.resolved_at = op, "raised", op.at, None
                row.times, row.event_id = op.times, op.event_id
            else:
                raise ConcurrencyConflict(f"alert {op.alert_id!r} was raised meanwhile")
        elif type(op) is ResolveAlert:
            row = self._alerts.get(op.alert_id)
            if row is None or row.status != "raised" or row.times != op.times:
                raise ConcurrencyConflict(f"alert {op.alert_id!r} was resolved meanwhile")
            undo.append(partial(self._restore_alert, dataclasses.replace(row)))
            row.status, row.resolved_at, row.event_id = "resolved", op.at, op.event_id
        else:
            return False
        return True

    def _drop_alert(self, alert_id: str) -> None:
        del self._alerts[alert_id]

    def _restore_alert(self, saved: _AlertRow) -> None:
        self._alerts[saved.op.alert_id] = saved

    async def list_alerts(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, latest raised first, filtered."""
        rows = [
            r
            for r in self._alerts.values()
            if (status is None or r.status == status) and (kind is None or r.op.kind == kind)
        ]
        rows.sort(key=lambda r: (r.raised_at, r.op.alert_id), reverse=True)
        return [_alert(r) for r in rows[:limit]]

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[Alert]:
        """The alerts with these ids (those that exist)."""
        return [_alert(self._alerts[i]) for i in dict.fromkeys(alert_ids) if i in self._alerts]

    async def schema_version(self) -> int:
        """Always the current one: nothing to migrate in memory."""
        return SCHEMA_VERSION

    async def counts(self, now: float) -> StoreCounts:
        """The gauges of ``/metrics``."""
        runs: dict[str, int] = {}
        overdue = 0
        for row in self._runs.values():
            runs[row.status] = runs.get(row.status, 0) + 1
            if (
                row.status in ("sleeping", "waiting")
                and row.owner is None
                and row.wake_at is not None
                and row.wake_at < now
            ):
                overdue += 1
        expectations: dict[tuple[str, str], int] = {}
        for inst in self._instances.values():  # type: ignore[attr-defined]
            if inst.status in ("open", "violated"):
                key = (inst.op.expectation, inst.status)
                expectations[key] = expectations.get(key, 0) + 1
        deliveries: dict[tuple[str, str], int] = {}
        for d in self._deliveries.values():  # type: ignore[attr-defined]
            if d.status in ("pending", "dead"):
                key = (d.subscription, d.status)
                deliveries[key] = deliveries.get(key, 0) + 1
        raised: dict[str, int] = {}
        for alert in self._alerts.values():
            if alert.status == "raised":
                raised[alert.op.kind] = raised.get(alert.op.kind, 0) + 1
        return StoreCounts(runs, expectations, overdue, deliveries, raised)

    async def quiet_runs(self, before: float, limit: int) -> list[QuietRun]:
        """Unfinished runs that should have moved and made no progress since ``before``."""
        found = []
        for row in self._runs.values():
            if row.status in _TERMINAL:
                continue
            history = self._history.get(row.run_id)
            progress = max(row.updated_at, history[-1].at if history else row.updated_at)
            due = row.status in _MOVING or (row.wake_at is not None and row.wake_at < before)
            if progress < before and due:
                found.append(QuietRun(row.run_id, row.workflow, row.status, progress, row.wake_at))
        found.sort(key=lambda q: q.progress_at)
        return found[:limit]
