"""History: the append-only record of everything a run did."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legato.model.records import Record


class EventKind(enum.StrEnum):
    """What a history record says happened. Each kind's fields: ``legato.model.records``
    and docs/history.md."""

    RUN_STARTED = "run_started"  # reserved: never written
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"  # one attempt failed; data.retry_at set if it retries
    VALUE = "value"  # legato.now/uuid/random recorded for replay
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"  # the failure that escaped the workflow
    CANCEL_REQUESTED = "cancel_requested"
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_COMPLETED = "compensation_completed"
    COMPENSATION_FAILED = "compensation_failed"  # one attempt; final when data.final
    RUN_COMPENSATED = "run_compensated"
    RUN_CANCELLED = "run_cancelled"
    RUN_BLOCKED = "run_blocked"
    RUN_RESUMED = "run_resumed"  # an operator resumed a blocked run
    RUN_RETRIED = "run_retried"  # an operator retried a failed run from its failed step
    COMPENSATION_RESUMED = "compensation_resumed"  # an operator retried the compensation
    RUN_RESTARTED = "run_restarted"  # an operator started data.run_id with this run's input
    TIMER_STARTED = "timer_started"  # data.wake_at
    TIMER_FIRED = "timer_fired"
    WAIT_STARTED = "wait_started"  # name: the signal; data.timeout_at
    SIGNAL_RECEIVED = "signal_received"  # data.signal_id, data.payload
    WAIT_TIMED_OUT = "wait_timed_out"
    TASK_CREATED = "task_created"  # data.task_id (then waits like a signal)
    CHILD_STARTED = "child_started"  # data.child_run_id (then waits for its outcome)
    RUN_CONTINUED = "run_continued"  # data.run_id: legato.continue_as_new started it
    EVENT_PUBLISHED = "event_published"  # name: the type; legato.publish / legato.request


def kind_of(value: str) -> EventKind | str:
    """A stored kind as an ``EventKind``, or the string itself if this version does not
    know it: readers must not fail on a newer version's records."""
    try:
        return EventKind(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One history record.

    ``pos`` orders records within a run; it increases but may skip numbers (the
    ``step_started`` record of a step that finished before its batch committed is dropped,
    since the completion carries ``started_at``). ``key`` is the call's sequence
    number in workflow call order (``"3"``; ``"3.1"`` for the first call of a branch
    opened at call 3), shared by all records about the same call.

    ``kind`` is a plain string, not an ``EventKind``, for a kind this version does not
    know (a newer Legato wrote it); ``record`` is then an ``UnknownRecord``.
    """

    run_id: str
    pos: int
    kind: EventKind | str
    key: str | None
    name: str | None
    attempt: int
    data: Any
    at: datetime

    @property
    def record(self) -> Record:
        """This event as its kind's typed record (``legato.model.records``)."""
        from legato.model.records import record_of  # records builds on this module

        return record_of(self)
