"""Alerts: what is stuck or broken, raised once, resolved when the cause clears.

Each alert is about one *subject* of one *kind* (a run, a delivery, an expectation
instance, an event type, a worker) and has a deterministic id, ``<kind>:<subject>``: however
many workers look, it is raised once per occurrence. It is also published, as
``legato.alert.raised`` and ``legato.alert.resolved`` CloudEvents, for any subscriber.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class AlertKind(enum.StrEnum):
    """What an alert is about."""

    STUCK_RUN = "stuck_run"
    """A run with no progress for longer than its workflow's ``stuck_after``."""
    RUN_NEEDS_OPERATOR = "run_needs_operator"
    """A run in ``compensation_failed`` or ``blocked``: only an operator moves it on."""
    EXPECTATION_VIOLATED = "expectation_violated"
    """An expectation instance whose deadline passed (resolved by a late fulfilment)."""
    DEAD_LETTER = "dead_letter"
    """A delivery that ran out of attempts (resolved once redriven and delivered)."""
    UNROUTED_EVENT = "unrouted_event"
    """Events of a type that no subscription matched (resolved once one does)."""
    DEAD_WORKER = "dead_worker"
    """A worker presumed dead while it held runs (resolved once they are taken over)."""


class AlertStatus(enum.StrEnum):
    """Raised, or resolved (its cause cleared)."""

    RAISED = "raised"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as stored. ``times`` counts how often it was raised (a cause may come
    back after it cleared); ``event_id`` is the id of its latest alert event."""

    alert_id: str
    kind: AlertKind
    subject: str
    status: AlertStatus
    summary: str
    raised_at: datetime
    resolved_at: datetime | None = None
    times: int = 1
    event_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
