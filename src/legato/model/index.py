"""One pass over a run's history: what it says about each call, for replay and describe.

``HistoryIndex.build`` reads the typed records (``legato.model.records``) once. Replay
asks it what each call key holds (a step's result, a recorded value, how a wait ended);
``describe()`` asks the same index where each step stands. Records of a kind this version
does not know are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from legato.model.history import HistoryEvent
from legato.model.records import (
    AttemptFailed,
    CancelRequested,
    ChildStarted,
    CompensationCompleted,
    CompensationFailed,
    CompensationResumed,
    CompensationStarted,
    EventPublished,
    RunFailed,
    RunRetried,
    SignalReceived,
    StepCompleted,
    StepFailed,
    StepStarted,
    TaskCreated,
    TimerFired,
    TimerStarted,
    Value,
    WaitStarted,
    WaitTimedOut,
    record_of,
)

_CALLS = {
    "signal": "wait_for_signal",
    "task": "human_task",
    "child": "child",
    "publish": "publish",
    "request": "request",
}
_WAITS = frozenset({"timer", "signal", "task", "child", "request"})


@dataclass(slots=True)
class CallRecord:
    """Everything history holds about one call key."""

    # "step", "timer", "signal", "task", "child", "publish", "request", or a recorded value:
    # "now", "uuid", "random"
    kind: str
    name: str | None
    # steps:
    failed_attempts: int = 0  # the highest failed attempt number recorded
    retry_at: float | None = None
    completed_pos: int | None = None
    result: Any = None
    args: list[Any] | None = None  # recorded only for steps that have a compensation
    kwargs: dict[str, Any] | None = None
    final_error: StepFailed | None = None
    state: str = "running"  # running | retrying | completed | failed
    executions: int = 0  # attempts begun, a crash's cut-short one included
    error: dict[str, Any] | None = None  # the last failed attempt's {type, message}
    open_start: bool = False
    # recorded values:
    value: Any = None
    # waits (timer, signal, task, child):
    wake_at: float | None = None  # timer due time, or wait timeout
    done: bool = False  # fired / received / timed out
    timed_out: bool = False
    payload: Any = None  # the signal's payload (task response, child outcome)
    target: str | None = None  # task id, child run id, or published event id
    published: EventPublished | None = None  # publish and request: the record

    def describe(self) -> str:
        """How this call reads in a non-determinism message."""
        if self.kind == "step":
            return f"step {self.name!r}"
        if self.kind in _CALLS:
            what = _CALLS
            return f"legato.{what[self.kind]}({self.name!r})"
        return f"legato.{self.kind}()"


@dataclass(slots=True)
class CompensationRecord:
    """What history holds about the compensation of one step."""

    failed_attempts: int = 0
    retry_at: float | None = None
    completed: bool = False
    final_error: CompensationFailed | None = None
    state: str = "running"  # running | retrying | completed | failed


@dataclass(slots=True)
class HistoryIndex:
    """A run's history, indexed by call key, plus the run-level facts replay needs."""

    calls: dict[str, CallRecord] = field(default_factory=dict)  # in order of first record
    compensations: dict[str, CompensationRecord] = field(default_factory=dict)
    completed_order: list[str] = field(default_factory=list)  # step keys in completion order
    failure: RunFailed | None = None
    failure_pos: int | None = None  # the position of the run_failed record
    last_pos: int = 0
    consumed_signals: set[int] = field(default_factory=set)
    children: list[str] = field(default_factory=list)  # child run ids, started order
    cancel_requested: bool = False  # history holds a cancel_requested record
    # The last failed attempt of a step or compensation, as describe() shows it.
    last_error: dict[str, Any] | None = None

    @classmethod
    def build(cls, history: list[HistoryEvent]) -> HistoryIndex:
        """Index ``history`` (in ``pos`` order)."""
        index = cls()
        for event in history:
            index.last_pos = max(index.last_pos, event.pos)
            index.add(record_of(event), event.pos)
        return index

    def add(self, record: object, pos: int) -> None:
        """Take one record into account (records arrive in ``pos`` order)."""
        calls = self.calls
        match record:
            case StepStarted(key=key, name=name):
                call = self._step(key, name)
                call.executions += 1
                call.open_start = True
                call.state = "running"
                call.retry_at = None
            case StepFailed(key=key, name=name, attempt=attempt):
                call = self._step(key, name)
                self._ended_attempt(call)
                call.failed_attempts = max(call.failed_attempts, attempt)
                call.retry_at = record.retry_at
                call.error = record.error
                call.state = "failed" if record.final else "retrying"
                if record.final:
                    call.final_error = record
                self._failed(record, compensation=False)
            case StepCompleted(key=key, name=name):
                call = self._step(key, name)
                self._ended_attempt(call)
                call.completed_pos = pos
                call.result = record.result
                call.args = record.args
                call.kwargs = record.kwargs
                call.state = "completed"
                call.retry_at = None
                self.completed_order.append(key)
            case Value(key=key, name=name, value=value):
                calls[key] = CallRecord(name, None, value=value)
            case TimerStarted(key=key, wake_at=wake_at):
                calls[key] = CallRecord("timer", None, wake_at=wake_at)
            case WaitStarted(key=key, name=name, timeout_at=timeout_at):
                calls[key] = CallRecord("signal", name, wake_at=timeout_at)
            case TaskCreated(key=key, name=name):
                calls[key] = CallRecord(
                    "task", name, wake_at=record.timeout_at, target=record.task_id
                )
            case ChildStarted(key=key, name=name, child_run_id=child):
                calls[key] = CallRecord("child", name, target=child)
                self.children.append(child)
            case EventPublished(key=key, name=name):
                is_request = record.reply is not None
                calls[key] = CallRecord(
                    "request" if is_request else "publish",
                    name,
                    wake_at=record.timeout_at,
                    done=not is_request,
                    target=record.event_id,
                    published=record,
                )
            case TimerFired(key=key) | WaitTimedOut(key=key) | SignalReceived(key=key):
                wait = calls.get(key)
                if wait is None:  # consumed at once, without waiting first
                    wait = calls[key] = CallRecord("signal", record.name)
                wait.done = True
                if isinstance(record, SignalReceived):
                    wait.payload = record.payload
                    self.consumed_signals.add(record.signal_id)
                elif isinstance(record, WaitTimedOut):
                    wait.timed_out = True
            case CompensationStarted(key=key):
                self.compensations.setdefault(key, CompensationRecord()).state = "running"
            case CompensationCompleted(key=key):
                comp = self.compensations.setdefault(key, CompensationRecord())
                comp.completed = True
                comp.state = "completed"
            case CompensationFailed(key=key, attempt=attempt):
                comp = self.compensations.setdefault(key, CompensationRecord())
                comp.failed_attempts = max(comp.failed_attempts, attempt)
                comp.retry_at = record.retry_at
                comp.final_error = record if record.final else None
                comp.state = "failed" if record.final else "retrying"
                self._failed(record, compensation=True)
            case CancelRequested():
                self.cancel_requested = True
            case RunFailed():
                self.failure = record
                self.failure_pos = pos
            case RunRetried(key=key):
                # The failure that ended the run, and the failed attempts of the step that
                # gave up, count for nothing from here: replay runs that step again.
                self.failure = self.failure_pos = self.last_error = None
                retried = calls.get(key) if key is not None else None
                if retried is not None and retried.kind == "step":
                    retried.failed_attempts = 0
                    retried.retry_at = None
                    retried.final_error = None
                    retried.error = None
                    retried.state = "running"
            case CompensationResumed():
                # The compensations that gave up start again from their first attempt.
                self.last_error = None
                for comp in self.compensations.values():
                    if comp.final_error is not None:
                        comp.failed_attempts = 0
                        comp.retry_at = None
                        comp.final_error = None
                        comp.state = "running"

    def _step(self, key: str, name: str) -> CallRecord:
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = CallRecord("step", name)
        return call

    @staticmethod
    def _ended_attempt(call: CallRecord) -> None:
        # Every execution is an attempt, including one a crash cut short (a start with no
        # end, then a new start). An end whose start record was dropped (it completed in
        # the same batch) is one attempt too.
        if call.open_start:
            call.open_start = False
        else:
            call.executions += 1

    def _failed(self, record: AttemptFailed, *, compensation: bool) -> None:
        self.last_error = {
            **record.error,
            "step": record.name,
            **({"compensation": True} if compensation else {}),
            "attempt": record.attempt,
        }

    def open_waits(self) -> list[CallRecord]:
        """The waits not yet over (a timer not fired, a wait not received nor timed out)."""
        return [call for call in self.calls.values() if call.kind in _WAITS and not call.done]
