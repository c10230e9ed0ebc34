"""The history records, typed: one definition per ``EventKind`` (docs/history.md).

A stored record is an envelope (``run_id``, ``pos``, ``kind``, ``key``, ``name``,
``attempt``, ``data``, ``at``: ``HistoryEvent``) whose ``data`` is JSON. The classes here
say, per kind, which envelope fields it uses and which ``data`` fields it carries, with
their types. Every writer builds one of them (``Record.stored()`` gives the columns), and
every reader turns an event back into one (``record_of``): replay, ``describe()``, the CLI.

The stored JSON is a public format, **version 1**. Fields marked *optional* below are left
out of ``data`` when unset (``None``, or ``False`` for a flag), as version 1 writes them;
readers ignore fields they do not know. A kind this version does not know (written by a
newer one) reads as ``UnknownRecord``: shown as it is, skipped by replay and describe.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Self, dataclass_transform

from legato.model.history import EventKind, HistoryEvent
from legato.model.payloads import dumps

_ENVELOPE = frozenset({"key", "name", "attempt"})


class Record:
    """Base of the typed records. ``key``, ``name`` and ``attempt`` are envelope fields:
    a kind that uses one declares it as a field; the rest default to null / 0."""

    __slots__ = ()

    KIND: ClassVar[EventKind]
    KIND_VALUE: ClassVar[str]  # KIND's string (an enum's .value is a property: hot path)
    DATA: ClassVar[tuple[str, ...]] = ()  # the data fields, in stored order
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()  # left out of data when unset
    NULL_WHEN_EMPTY: ClassVar[bool] = False  # data is null, not {}, with nothing set
    # Every field in order: (name, envelope?, required?, default when absent).
    FIELDS: ClassVar[tuple[tuple[str, bool, bool, Any], ...]] = ()

    # Declared only: a kind that has none of them gets a class attribute (None, 0).
    key: str | None
    name: str | None
    attempt: int

    def data(self) -> Any:
        """The record's ``data`` as JSON-able values (None for a kind without data)."""
        if not self.DATA:
            return None
        out: dict[str, Any] = {}
        optional = self.OPTIONAL
        for field in self.DATA:
            value = getattr(self, field)
            if field in optional and (value is None or value is False):
                continue
            out[field] = value
        if not out and self.NULL_WHEN_EMPTY:
            return None
        return out

    def stored(self) -> tuple[str, str | None, str | None, int, bytes | None]:
        """The history columns after ``run_id`` and ``pos``: kind, key, name, attempt, data."""
        data = self.data() if self.DATA else None
        empty = not self.DATA or (self.NULL_WHEN_EMPTY and data is None)
        return (
            self.KIND_VALUE,
            self.key,
            self.name,
            self.attempt,
            None if empty else dumps(data),
        )

    @classmethod
    def from_event(cls, event: HistoryEvent) -> Self:
        """The typed record of ``event`` (its kind must be this class's)."""
        data = event.data if isinstance(event.data, dict) else {}
        values: list[Any] = []  # positional, in field order: replay parses every record
        for name, envelope, required, default in cls.FIELDS:
            if envelope:
                values.append(getattr(event, name))
            elif name in data:
                values.append(data[name])
            elif required:
                raise ValueError(
                    f"history record {event.pos} of run {event.run_id!r} ({event.kind}) "
                    f"has no {name!r} field in its data: the database is damaged or was "
                    "not written by Legato"
                )
            else:
                values.append(default)
        return cls(*values)


RECORDS: dict[str, type[Record]] = {}
"""Every known kind's record class, by kind."""


@dataclass_transform(frozen_default=True)
def _kind(kind: EventKind, *, optional: tuple[str, ...] = (), null_when_empty: bool = False) -> Any:
    def wrap(cls: type[Record]) -> type[Record]:
        cls = dataclass(frozen=True, slots=True)(cls)
        cls.KIND = kind
        cls.KIND_VALUE = str(kind.value)
        every = fields(cls)  # type: ignore[arg-type]  # a dataclass now
        names = [f.name for f in every]
        cls.DATA = tuple(n for n in names if n not in _ENVELOPE)
        cls.OPTIONAL = frozenset(optional)
        cls.NULL_WHEN_EMPTY = null_when_empty
        cls.FIELDS = tuple(
            (
                f.name,
                f.name in _ENVELOPE,
                f.name not in optional,
                None if f.default is MISSING else f.default,
            )
            for f in every
        )
        for field, unset in (("key", None), ("name", None), ("attempt", 0)):
            if field not in names:
                setattr(cls, field, unset)
        RECORDS[kind.value] = cls
        return cls

    return wrap


# -- steps and recorded values -----------------------------------------------------------


@_kind(EventKind.STEP_STARTED)
class StepStarted(Record):
    """An attempt of step ``name`` at call ``key`` began (dropped when it ends in the same
    batch; its completion then carries ``started_at``)."""

    key: str
    name: str
    attempt: int


@_kind(EventKind.STEP_COMPLETED, optional=("args", "kwargs"))
class StepCompleted(Record):
    """Attempt ``attempt`` of step ``name`` returned ``result``. ``args`` (and ``kwargs``)
    are recorded only for a step that has a compensation, which is called with them."""

    key: str
    name: str
    attempt: int
    result: Any
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    started_at: float | None = None  # Unix seconds; always written, optional to read


@dataclass(frozen=True, slots=True)
class AttemptFailed(Record):
    """What a failed attempt records, for a step or a compensation. Exactly one of
    ``retry_at`` (with ``max_attempts``) and ``final`` is set."""

    key: str
    name: str
    attempt: int
    type: str
    message: str
    attempts: int
    retry_at: float | None = None
    max_attempts: int | None = None
    final: bool = False

    @property
    def error(self) -> dict[str, Any]:
        """``{type, message}``: the error, as describe() and the CLI show it."""
        return {"type": self.type, "message": self.message}


@_kind(EventKind.STEP_FAILED, optional=("retry_at", "max_attempts", "final"))
class StepFailed(AttemptFailed):
    """Attempt ``attempt`` of step ``name`` raised."""


@_kind(EventKind.VALUE)
class Value(Record):
    """``legato.now()``, ``uuid()`` or ``random()`` (``name``) returned ``value``."""

    key: str
    name: str
    value: Any


# -- how a run ends ------------------------------------------------------------------------


@_kind(EventKind.RUN_STARTED)
class RunStarted(Record):
    """Reserved: version 1 never writes it."""


@_kind(EventKind.RUN_COMPLETED)
class RunCompleted(Record):
    """The workflow returned ``output``; stored as ``data`` itself, not wrapped."""

    output: Any = None

    def data(self) -> Any:
        return self.output

    @classmethod
    def from_event(cls, event: HistoryEvent) -> Self:
        return cls(event.data)


@_kind(EventKind.RUN_FAILED, optional=("step", "attempts", "cancelled"))
class RunFailed(Record):
    """A failure escaped the workflow; also the run's ``error`` while it compensates and
    after. ``step``/``attempts`` when a step gave up; ``cancelled`` for a cancel."""

    type: str
    message: str
    step: str | None = None
    attempts: int | None = None
    cancelled: bool = False


@_kind(EventKind.CANCEL_REQUESTED, optional=("by",), null_when_empty=True)
class CancelRequested(Record):
    """The run was cancelled; its failure (``run_failed``, cancelled) follows. ``by``:
    who asked (an API token's name, the CLI's user), when known."""

    by: str | None = None


@_kind(EventKind.RUN_CANCELLED)
class RunCancelled(Record):
    """The last record of a cancelled run."""


@_kind(EventKind.RUN_COMPENSATED)
class RunCompensated(Record):
    """Every completed step was compensated after a failure."""


@_kind(EventKind.RUN_BLOCKED)
class RunBlocked(Record):
    """Replay met a different call at ``seq`` than history holds; the run waits for an
    operator."""

    type: str
    message: str
    seq: str
    recorded: str
    requested: str


@_kind(EventKind.RUN_RESUMED, optional=("by",), null_when_empty=True)
class RunResumed(Record):
    """An operator resumed a blocked run (``by``: who, when known)."""

    by: str | None = None


@_kind(EventKind.RUN_RETRIED, optional=("step", "by"))
class RunRetried(Record):
    """An operator retried a ``failed`` run: the failure that ended it, and every failed
    attempt of the step at ``key`` (the step that gave up, ``step`` its name; null when
    the workflow's own code raised), count for nothing from here; replay runs that step
    again from its first attempt. ``failure``: the error the run had ended with."""

    key: str | None
    failure: dict[str, Any]
    step: str | None = None
    by: str | None = None


@_kind(EventKind.COMPENSATION_RESUMED, optional=("by",))
class CompensationResumed(Record):
    """An operator resumed the compensation of a run in ``compensation_failed``: the
    compensations that had given up start again from their first attempt, then the rest
    go on, newest first. ``failure``: the error the run had ended with."""

    failure: dict[str, Any]
    by: str | None = None


@_kind(EventKind.RUN_RESTARTED, optional=("by",))
class RunRestarted(Record):
    """An operator started run ``run_id``, of the same workflow with the same input, as
    a fresh run (nothing of this one is replayed there); this run is left as it was."""

    run_id: str
    by: str | None = None


@_kind(EventKind.RUN_CONTINUED)
class RunContinued(Record):
    """``legato.continue_as_new``: the run ended and run ``run_id`` carries on."""

    run_id: str


# -- compensations -----------------------------------------------------------------------


@_kind(EventKind.COMPENSATION_STARTED)
class CompensationStarted(Record):
    """An attempt of the compensation of step ``name`` (call ``key``) began."""

    key: str
    name: str
    attempt: int


@_kind(EventKind.COMPENSATION_COMPLETED, optional=("started_at",))
class CompensationCompleted(Record):
    """The compensation of step ``name`` returned."""

    key: str
    name: str
    attempt: int
    started_at: float | None = None


@_kind(EventKind.COMPENSATION_FAILED, optional=("retry_at", "max_attempts", "final"))
class CompensationFailed(AttemptFailed):
    """An attempt of the compensation of step ``name`` raised (attempt 0: it is no longer
    registered)."""


# -- waits ---------------------------------------------------------------------------------


@_kind(EventKind.TIMER_STARTED)
class TimerStarted(Record):
    """``legato.sleep``/``sleep_until``: the run sleeps until ``wake_at`` (Unix seconds)."""

    key: str
    wake_at: float


@_kind(EventKind.TIMER_FIRED)
class TimerFired(Record):
    """The timer at ``key`` reached its ``wake_at``."""

    key: str


@_kind(EventKind.WAIT_STARTED)
class WaitStarted(Record):
    """``legato.wait_for_signal(name)``: waiting, until ``timeout_at`` if not None."""

    key: str
    name: str
    timeout_at: float | None


@_kind(EventKind.SIGNAL_RECEIVED)
class SignalReceived(Record):
    """The wait at ``key`` consumed signal ``signal_id`` (a signal, a task's response or a
    child's outcome) with ``payload``."""

    key: str
    name: str
    signal_id: int
    payload: Any


@_kind(EventKind.WAIT_TIMED_OUT)
class WaitTimedOut(Record):
    """The signal wait or human task at ``key`` reached its timeout."""

    key: str
    name: str


@_kind(EventKind.TASK_CREATED)
class TaskCreated(Record):
    """``legato.human_task(name)``: task ``task_id`` is in the inbox until ``timeout_at``."""

    key: str
    name: str
    task_id: str
    timeout_at: float | None


@_kind(EventKind.CHILD_STARTED)
class ChildStarted(Record):
    """``legato.child``: run ``child_run_id`` of workflow ``name`` started."""

    key: str
    name: str
    child_run_id: str


# -- events --------------------------------------------------------------------------------


@_kind(EventKind.EVENT_PUBLISHED, optional=("reply", "timeout_at"))
class EventPublished(Record):
    """``legato.publish``: event ``event_id`` of type ``name`` from ``source`` was written to
    the log at ``time`` (Unix seconds), with the run's other writes. For ``legato.request``
    ``reply`` holds the reply types awaited, until ``timeout_at`` if not None; the reply
    then arrives as ``signal_received`` (or the wait ends ``wait_timed_out``) at ``key``."""

    key: str
    name: str
    event_id: str
    source: str
    time: float
    reply: list[str] | None = None
    timeout_at: float | None = None


@dataclass(frozen=True, slots=True)
class UnknownRecord(Record):
    """A record of a kind this version does not know (a newer one wrote it)."""

    kind: str
    key: str | None
    name: str | None
    attempt: int
    raw: Any

    def data(self) -> Any:
        return self.raw

    def stored(self) -> tuple[str, str | None, str | None, int, bytes | None]:
        return (self.kind, self.key, self.name, self.attempt, dumps(self.raw))


def record_of(event: HistoryEvent) -> Record:
    """The typed record of a history event (``UnknownRecord`` for an unknown kind)."""
    cls = RECORDS.get(event.kind)
    if cls is None:
        return UnknownRecord(str(event.kind), event.key, event.name, event.attempt, event.data)
    return cls.from_event(event)
