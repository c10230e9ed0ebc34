"""Runs and their statuses."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from legato.model.ids import RunId


class RunStatus(enum.StrEnum):
    """Where a run is in its life.

    ``pending → running → (sleeping | waiting) → completed | failed | compensating →
    compensated | compensation_failed | cancelled | blocked``. ``blocked`` and
    ``compensation_failed`` wait for an operator: a blocked run can be resumed (running
    again) or cancelled (compensated from its history).
    """

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"

    @property
    def is_terminal(self) -> bool:
        """True when the run will not move again without an operator."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.COMPENSATED,
        RunStatus.COMPENSATION_FAILED,
        RunStatus.CANCELLED,
        RunStatus.BLOCKED,
    }
)


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a workflow as stored: its identity, status and outcome.

    ``input`` and ``output`` are JSON (``input`` is the list of positional arguments).
    ``error`` is ``{"type", "message", "step"}`` when the run failed or is blocked.
    """

    run_id: RunId
    workflow: str
    status: RunStatus
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime | None = None
    wake_at: datetime | None = None
    owner: str | None = None
    cancel_requested: bool = False
    parent_run_id: str | None = None
    correlation_id: str | None = None  # stored; see ``correlation``
    traceparent: str | None = None  # the trace context its spans continue (W3C)
    cancel_by: str | None = None  # who asked for the cancel (with ``cancel_requested``)

    @property
    def correlation(self) -> str:
        """The business transaction this run belongs to: the events it publishes carry it
        as ``correlationid``. A run started by an event has the event's; a child has its
        parent's; any other run is its own (its run id)."""
        return self.correlation_id or self.run_id


CONTINUED_AS_NEW = "__legato_continued_as_new__"
"""The output key of a run that ended by ``legato.continue_as_new``: the next run's id."""


def continued_as(output: Any) -> str | None:
    """The id of the run this one continued as, if its output says it continued."""
    if isinstance(output, dict) and len(output) == 1:
        value = output.get(CONTINUED_AS_NEW)
        if isinstance(value, str):
            return value
    return None


@dataclass(slots=True)
class Outcome:
    """How a run ended: what ``result()`` waiters receive, in process or by polling."""

    status: RunStatus
    output: Any
    error: dict[str, Any] | None

    @classmethod
    def of(cls, run: Run) -> Outcome | None:
        """The outcome of a run that has ended, else None."""
        if not run.status.is_terminal:
            return None
        return cls(run.status, run.output, run.error)
