"""What a run's history says about each call, indexed for replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from legato.model import EventKind, HistoryEvent


@dataclass(slots=True)
class CallRecord:
    """Everything history holds about one call key (a step call or a recorded value)."""

    kind: str  # "step", or the value kind: "now", "uuid", "random"
    name: str | None
    failed_attempts: int = 0
    retry_at: float | None = None
    completed_pos: int | None = None
    result: Any = None
    args: list[Any] | None = None  # recorded only for steps that have a compensation
    kwargs: dict[str, Any] | None = None
    final_error: dict[str, Any] | None = None
    value: Any = None
    # waits (timer, signal, task, child):
    wake_at: float | None = None  # timer due time, or wait timeout
    done: bool = False  # fired / received / timed out
    timed_out: bool = False
    payload: Any = None  # the signal's payload (task response, child outcome)
    target: str | None = None  # task id or child run id

    def describe(self) -> str:
        """How this call reads in a non-determinism message."""
        if self.kind == "step":
            return f"step {self.name!r}"
        if self.kind in ("signal", "task", "child"):
            what = {"signal": "wait_for_signal", "task": "human_task", "child": "child"}
            return f"legato.{what[self.kind]}({self.name!r})"
        return f"legato.{self.kind}()"


@dataclass(slots=True)
class CompensationRecord:
    """What history holds about the compensation of one step."""

    failed_attempts: int = 0
    retry_at: float | None = None
    completed: bool = False
    final_error: dict[str, Any] | None = None


@dataclass(slots=True)
class ReplayIndex:
    """A run's history, indexed by call key, plus the run-level facts replay needs."""

    calls: dict[str, CallRecord] = field(default_factory=dict)
    compensations: dict[str, CompensationRecord] = field(default_factory=dict)
    completed_order: list[str] = field(default_factory=list)  # step keys in completion order
    failure: dict[str, Any] | None = None  # RUN_FAILED data
    last_pos: int = 0
    consumed_signals: set[int] = field(default_factory=set)
    children: list[str] = field(default_factory=list)  # child run ids, started order
    cancel_requested: bool = False

    @classmethod
    def build(cls, history: list[HistoryEvent]) -> ReplayIndex:
        """Index ``history`` (in ``pos`` order)."""
        index = cls()
        calls = index.calls
        for event in history:
            index.last_pos = max(index.last_pos, event.pos)
            kind = event.kind
            key = event.key
            if (
                kind is EventKind.STEP_STARTED
                or kind is EventKind.STEP_FAILED
                or kind is EventKind.STEP_COMPLETED
            ):
                assert key is not None
                call = calls.get(key)
                if call is None:
                    call = calls[key] = CallRecord("step", event.name)
                if kind is EventKind.STEP_FAILED:
                    call.failed_attempts = max(call.failed_attempts, event.attempt)
                    call.retry_at = event.data.get("retry_at")
                    if event.data.get("final"):
                        call.final_error = event.data
                elif kind is EventKind.STEP_COMPLETED:
                    call.completed_pos = event.pos
                    call.result = event.data["result"]
                    call.args = event.data.get("args")
                    call.kwargs = event.data.get("kwargs")
                    index.completed_order.append(key)
            elif kind is EventKind.VALUE:
                assert key is not None
                calls[key] = CallRecord(event.name or "value", None, value=event.data["value"])
            elif kind is EventKind.TIMER_STARTED:
                assert key is not None
                calls[key] = CallRecord("timer", None, wake_at=event.data["wake_at"])
            elif kind is EventKind.WAIT_STARTED:
                assert key is not None
                calls[key] = CallRecord("signal", event.name, wake_at=event.data.get("timeout_at"))
            elif kind is EventKind.TASK_CREATED:
                assert key is not None
                calls[key] = CallRecord(
                    "task",
                    event.name,
                    wake_at=event.data.get("timeout_at"),
                    target=event.data["task_id"],
                )
            elif kind is EventKind.CHILD_STARTED:
                assert key is not None
                child = event.data["child_run_id"]
                calls[key] = CallRecord("child", event.name, target=child)
                index.children.append(child)
            elif kind in (
                EventKind.TIMER_FIRED,
                EventKind.SIGNAL_RECEIVED,
                EventKind.WAIT_TIMED_OUT,
            ):
                assert key is not None
                call = calls.get(key)
                if call is None:  # consumed at once, without waiting first
                    call = calls[key] = CallRecord("signal", event.name)
                call.done = True
                if kind is EventKind.SIGNAL_RECEIVED:
                    call.payload = event.data["payload"]
                    index.consumed_signals.add(event.data["signal_id"])
                elif kind is EventKind.WAIT_TIMED_OUT:
                    call.timed_out = True
            elif kind is EventKind.CANCEL_REQUESTED:
                index.cancel_requested = True
            elif kind is EventKind.RUN_FAILED:
                index.failure = event.data
            elif kind in (EventKind.COMPENSATION_FAILED, EventKind.COMPENSATION_COMPLETED):
                assert key is not None
                comp = index.compensations.setdefault(key, CompensationRecord())
                if kind is EventKind.COMPENSATION_COMPLETED:
                    comp.completed = True
                else:
                    comp.failed_attempts = max(comp.failed_attempts, event.attempt)
                    comp.retry_at = event.data.get("retry_at")
                    comp.final_error = event.data if event.data.get("final") else None
        return index
