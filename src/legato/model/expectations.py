"""Expectations over choreographed flows: what an instance is, as the store keeps it.

An expectation (``app.expect``) says "after an event matching ``after``, events matching
``then`` must follow for the same key within ``within``, unless ``unless`` comes". Each
trigger event opens one *instance* for its key; the instance ends ``fulfilled``,
``violated`` (its deadline passed first), or ``cancelled``; a violated one becomes
``late_fulfilled`` when what it awaited arrives after all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

VIOLATED_TYPE = "legato.expectation.violated"
"""The type of the event an expectation instance publishes when it is violated."""


class ExpectationStatus(enum.StrEnum):
    """Where an expectation instance stands."""

    OPEN = "open"
    FULFILLED = "fulfilled"
    VIOLATED = "violated"
    CANCELLED = "cancelled"
    LATE_FULFILLED = "late_fulfilled"


@dataclass(frozen=True, slots=True)
class ExpectationInstance:
    """One instance of an expectation: opened by one trigger event for one key.

    ``instance`` is the trigger event's ``source`` and ``id`` (so a duplicate trigger opens
    nothing new); ``missing`` holds the indexes (into the expectation's ``then``) of the
    awaited events not seen yet; ``closed_by`` is the log position (``seq``) of the event
    that fulfilled or cancelled it; ``violation_id`` is the id of its
    ``legato.expectation.violated`` event.
    """

    expectation: str
    instance: str
    key: str
    status: ExpectationStatus
    missing: tuple[int, ...]
    trigger_seq: int
    correlation_id: str | None
    opened_at: datetime
    deadline: datetime
    closed_at: datetime | None = None
    closed_by: int | None = None
    violation_id: str | None = None
    awaited: tuple[str, ...] = ()
    """The expectation's ``then`` patterns as text when the instance opened (``"type
    enrollment.created"``): ``missing`` indexes into it."""

    @property
    def missing_patterns(self) -> list[str]:
        """What the instance still waits for, as text (``then[i]`` where unknown)."""
        return [self.awaited[i] if i < len(self.awaited) else f"then[{i}]" for i in self.missing]


@dataclass(frozen=True, slots=True)
class Arrival:
    """An awaited (or cancelling) event seen for a key before any instance wanted it:
    kept so that a trigger arriving later (out of order) counts it. ``role`` is
    ``"then:<index>"`` or ``"unless"``."""

    expectation: str
    key: str
    role: str
    seq: int
    at: float
