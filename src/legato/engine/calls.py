"""Step calls and recorded values: the workflow's calls that do or decide something."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from legato.errors import PayloadError, StepFailed, describe_exception
from legato.model import records
from legato.model.payloads import dumps, encode
from legato.model.records import Record
from legato.model.retry import Retry
from legato.observability import tracing

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution
    from legato.engine.registry import Step


@dataclass(slots=True)
class GaveUp(Exception):
    """An attempt loop ran out of attempts (or met a non-retryable error)."""

    failure: records.AttemptFailed  # the final failure, as recorded
    cause: BaseException


class Attempt:
    """What one attempt runs: a step (its result recorded) or a compensation.

    A plain object rather than a closure: every live run holds one per call in flight,
    and closures cost the garbage collector several cells each.
    """

    __slots__ = ("args", "fn", "is_async", "kwargs", "label", "record", "step_key", "timeout_s")

    def __init__(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        step_key: str,
        label: str,
        timeout_s: float | None,
        record: str | None,
    ) -> None:
        self.fn = fn
        self.is_async = is_async
        self.args = args
        self.kwargs = kwargs
        self.step_key = step_key
        self.label = label  # the name hooks and timeouts see
        self.timeout_s = timeout_s
        self.record = record  # None: nothing to record; "result"; "result+args"

    def completion(
        self, key: str, name: str, number: int, result: Any, started_at: float, limit: int
    ) -> tuple[Record, bytes]:
        """The record of attempt ``number`` returning ``result``, and its encoded data
        (at most ``limit`` bytes, else ``PayloadError``)."""
        if self.record is None:
            done: Record = records.CompensationCompleted(key, name, number, started_at)
            return done, dumps(done.data())
        if self.record == "result+args":
            step = records.StepCompleted(
                key, name, number, result, list(self.args), self.kwargs or None, started_at
            )
        else:
            step = records.StepCompleted(key, name, number, result, started_at=started_at)
        return step, encode(step.data(), f"the result of step {self.label!r}", limit)


def record_value(ex: RunExecution, kind: str) -> Any:
    """Return a recorded ``now``/``uuid``/``random`` value, or make and record one."""
    key = ex.next_key()
    record = ex.replayed(key, kind, None)
    if record is not None:
        return record.value
    value: Any
    if kind == "now":
        value = ex.engine.clock.time()
    elif kind == "uuid":
        value = str(uuid.uuid4())
    else:
        value = ex.engine.rng.random()
    # Not awaited here; but before a step can see the value, its record must be durable
    # (attempts() waits for it), or a crash would replay a new value under the same key.
    ex.engine.journal.submit_nowait(ex.record(records.Value(key, kind, value)))
    ex.values_unsaved = True
    return value


async def attempts(
    ex: RunExecution,
    *,
    key: str,
    name: str,
    policy: Retry,
    failures: int,
    retry_at: float | None,
    started: type[records.StepStarted | records.CompensationStarted],
    failed: type[records.StepFailed | records.CompensationFailed],
    plan: Attempt,
    interruptible: bool,
) -> tuple[Record, bytes]:
    """Try ``plan`` until it succeeds; record every failure with its next retry time.

    Returns the completion record and its encoded data; raises ``GaveUp`` when out of
    tries.
    A pending retry waits as a park, so a long backoff evicts the run. An
    ``interruptible`` loop (a step's, not a compensation's) stops between attempts when
    the run is cancelled.
    """
    engine = ex.engine
    while True:
        if retry_at is not None and retry_at > engine.clock.time():
            await ex.park(key, retry_at, waiting=False, retry=True)
        number = failures + 1
        start = ex.record(started(key, name, number))
        ticket = engine.journal.submit_nowait(start)
        if ex.values_unsaved:
            ex.values_unsaved = False
            await ex.commit()  # the batch holding the values (and this start) commits first
        ex.in_flight += 1
        ex.set_busy(False)  # the step's own work (a thread, a network call) is not ours
        try:
            fn, is_async = plan.fn, plan.is_async
            if engine.hooks:
                fn, is_async = override(ex, plan.label, number, fn, is_async)
            if engine.tracer is None:
                result = await _attempt(ex, plan, number, fn, is_async)
            else:
                with tracing.step_span(engine.tracer, ex.run_id, plan.label, number):
                    result = await _attempt(ex, plan, number, fn, is_async)
            done = plan.completion(key, name, number, result, start.at, engine.max_payload_bytes)
        except Exception as exc:
            for hook in engine.hooks:
                hook.after_step_attempt(ex.run_id, plan.label, number, exc)
            failures = number
            error = describe_exception(exc)
            retryable = policy.is_retryable(exc) and not isinstance(exc, PayloadError)
            again = retryable and number < policy.max_attempts
            if again:
                delay = policy.delay(number, engine.rng.random()).total_seconds()
                retry_at = engine.clock.time() + delay
            failure = failed(
                key,
                name,
                number,
                error["type"],
                error["message"],
                number,
                retry_at=retry_at if again else None,
                max_attempts=policy.max_attempts if again else None,
                final=not again,
            )
            await ex.commit(ex.record(failure))
            if not again:
                raise GaveUp(failure, exc) from exc
            if interruptible:
                ex.check_interrupt()
            continue
        finally:
            ex.in_flight -= 1
            ex.busy = True
            ex.recheck_eviction()
        for hook in engine.hooks:
            hook.after_step_attempt(ex.run_id, plan.label, number, None)
        # A fast attempt's start record never reaches the database: the completion,
        # carrying started_at, says it all.
        engine.journal.retract(ticket, start)
        return done


async def _attempt(
    ex: RunExecution, plan: Any, number: int, fn: Callable[..., Any], is_async: bool
) -> Any:
    """One attempt of the step ``plan`` describes, with ``fn``."""
    return await ex.engine.steps.run(
        fn,
        is_async,
        plan.args,
        plan.kwargs,
        plan.step_key,
        plan.label,
        number,
        plan.timeout_s,
    )


def override(
    ex: RunExecution, name: str, number: int, fn: Callable[..., Any], is_async: bool
) -> tuple[Callable[..., Any], bool]:
    """The function to run for this attempt: the step's, or one a hook put in its place."""
    for hook in ex.engine.hooks:
        replacement = hook.before_step_attempt(ex.run_id, name, number)
        if replacement is not None:
            return replacement, inspect.iscoroutinefunction(replacement)
    return fn, is_async


async def call_step(
    ex: RunExecution, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Execute a step call durably (or return its recorded outcome)."""
    from legato.engine.execution import Completed

    ex.check_interrupt()
    key = ex.next_key()
    name = step.name
    record = ex.replayed(key, "step", name)
    failures, retry_at = 0, None
    if record is not None:
        if record.completed_pos is not None:
            if step.compensation is not None:
                ex.completed.append(
                    Completed(record.completed_pos, key, name, list(args), kwargs, record.result)
                )
            return record.result
        if record.final_error is not None:
            raise StepFailed(
                name,
                record.final_error.type,
                record.final_error.message,
                record.failed_attempts,
                run_id=ex.run_id,
            )
        failures, retry_at = record.failed_attempts, record.retry_at

    compensable = step.compensation is not None
    plan = Attempt(
        step.fn,
        step.is_async,
        args,
        kwargs,
        f"{ex.run_id}:{key}",
        name,
        step.timeout_s,
        "result+args" if compensable else "result",
    )
    try:
        done, data = await attempts(
            ex,
            key=key,
            name=name,
            policy=step.retry,
            failures=failures,
            retry_at=retry_at,
            started=records.StepStarted,
            failed=records.StepFailed,
            plan=plan,
            interruptible=True,
        )
    except GaveUp as gave_up:
        ex.check_interrupt()
        failure = gave_up.failure
        raise StepFailed(
            name, failure.type, failure.message, failure.attempts, run_id=ex.run_id
        ) from gave_up.cause
    op = ex.record(done, data)
    decoded = orjson.loads(data)  # the workflow sees exactly what replay will
    if compensable:
        # On the stack before the commit is awaited: if the run is cancelled while
        # waiting, the record still commits and must be compensated.
        ex.completed.append(
            Completed(
                op.pos, key, name, decoded["args"], decoded.get("kwargs", {}), decoded["result"]
            )
        )
    ex.in_flight += 1  # until committed, a cancel waits for this call's boundary
    try:
        await ex.commit(op)
    finally:
        ex.in_flight -= 1
    ex.check_interrupt()
    return decoded["result"]
