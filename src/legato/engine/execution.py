"""``RunExecution``: one run, live in this process — replay, steps, saga, outcome.

A run advances in one asyncio task (the driver). The workflow function runs inline in
it; every call it makes gets a key in call order. A call whose outcome history holds
returns that outcome at once; any other call executes, and the run does not move past it
until its record is committed (write before you move on).
"""

from __future__ import annotations

import asyncio
import logging
import uuid as _uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from legato.engine.context import current_branch
from legato.engine.payloads import dumps, encode
from legato.engine.replay import CallRecord, CompensationRecord, ReplayIndex
from legato.errors import (
    NonDeterminismError,
    PayloadError,
    RunCancelled,
    StepFailed,
    WorkflowTimeout,
    describe_exception,
)
from legato.model import EventKind, RunStatus
from legato.storage.base import Append, SetRun, Write

if TYPE_CHECKING:
    from legato.engine.registry import Step, Workflow
    from legato.engine.worker import Engine

log = logging.getLogger(__name__)


class Interrupt(BaseException):
    """Engine control flow: stop the workflow at its next call (cancel, timeout)."""


class Abandon(BaseException):
    """Engine control flow: stop executing here; the durable state is left as it is."""


class Blocked(BaseException):
    """Engine control flow: replay diverged from history; the run must not go on."""

    def __init__(self, error: NonDeterminismError) -> None:
        super().__init__(str(error))
        self.error = error


# Plain strings for the hot path: reading ``EventKind.X.value`` goes through a property.
_KIND = {kind: str(kind.value) for kind in EventKind}


@dataclass(slots=True)
class Outcome:
    """How a run ended, for in-process waiters."""

    status: RunStatus
    output: Any
    error: dict[str, Any] | None


@dataclass(slots=True)
class _Completed:
    """A completed step that has a compensation: the saga's stack entry."""

    pos: int
    key: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any


class _Branch:
    """Call numbering for one task of the workflow (``asyncio.gather`` makes several)."""

    __slots__ = ("counter", "prefix", "task")

    def __init__(self, prefix: str, task: asyncio.Task[Any] | None) -> None:
        self.prefix = prefix
        self.counter = 0
        self.task = task


class RunExecution:
    """Drives one run from its recorded history to its end."""

    def __init__(self, engine: Engine, run_id: str, workflow: Workflow[..., Any],
                 args: list[Any], deadline_at: float | None, index: ReplayIndex) -> None:
        self.engine = engine
        self.run_id = run_id
        self.workflow = workflow
        self.args = args
        self.deadline_at = deadline_at
        self.index = index
        self.pos = index.last_pos
        self.visited: set[str] = set()
        self.completed: list[_Completed] = []
        self.cancel_reason: BaseException | None = None
        self.in_flight = 0
        self.compensating = index.failure is not None
        self.done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self._started = False
        self._main = _Branch("", None)
        self._branches: list[_Branch] = []

    # -- records -----------------------------------------------------------------------

    def _record(self, kind: EventKind, key: str | None, name: str | None, attempt: int,
                data: bytes | None) -> Append:
        self.pos += 1
        return Append(self.run_id, self.pos, _KIND[kind], key, name, attempt, data,
                      self.engine.clock.time())

    async def _commit(self, *ops: Write) -> None:
        try:
            await self.engine.journal.commit(ops, self.run_id)
        except Exception as exc:
            raise Abandon(f"could not record progress of run {self.run_id!r}: {exc}") from exc

    def _set_run(self, status: RunStatus, *, output: bytes | None = None,
                 error: dict[str, Any] | None = None) -> SetRun:
        now = self.engine.clock.time()
        # An active run is due now (if its worker dies, the next one claims it at once); a
        # finished one is never due again.
        return SetRun(self.run_id, str(status.value), output,
                      None if error is None else dumps(error), now,
                      None if status.is_terminal else now)

    # -- call numbering ----------------------------------------------------------------

    def _next_key(self) -> str:
        task = asyncio.current_task()
        branch = current_branch.get() or self._main
        if branch.task is not task:
            # First call from a task the workflow spawned (a gather branch): it gets its
            # own numbering under a key taken from the branch that spawned it. Sibling
            # tasks start in creation order, so the keys are the same on replay.
            branch.counter += 1
            child = _Branch(f"{branch.prefix}{branch.counter}.", task)
            self._branches.append(child)
            current_branch.set(child)
            branch = child
        branch.counter += 1
        return f"{branch.prefix}{branch.counter}"

    def _replayed(self, key: str, kind: str, name: str | None) -> CallRecord | None:
        calls = self.index.calls
        if not calls:
            return None
        record = calls.get(key)
        if record is None:
            return None
        self.visited.add(key)
        if record.kind != kind or record.name != name:
            requested = f"step {name!r}" if kind == "step" else f"legato.{kind}()"
            raise Blocked(NonDeterminismError(self.run_id, key, record.describe(), requested))
        return record

    def _check_interrupt(self) -> None:
        if self.cancel_reason is not None:
            raise Interrupt()

    # -- what workflow code calls ----------------------------------------------------------

    def record_value(self, kind: str, _: None) -> Any:
        """Return a recorded ``now``/``uuid``/``random`` value, or make and record one."""
        key = self._next_key()
        record = self._replayed(key, kind, None)
        if record is not None:
            return record.value
        value: Any
        if kind == "now":
            value = self.engine.clock.time()
        elif kind == "uuid":
            value = str(_uuid.uuid4())
        else:
            value = self.engine.rng.random()
        # Not awaited: nothing outside the run depends on the value until a later record
        # commits, and the journal commits in order.
        self.engine.journal.submit_nowait(
            self._record(EventKind.VALUE, key, kind, 0, dumps({"value": value})))
        return value

    async def call_step(self, step: Step[..., Any], args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        """Execute a step call durably (or return its recorded outcome)."""
        self._check_interrupt()
        key = self._next_key()
        name = step.name
        record = self._replayed(key, "step", name)
        attempts, retry_at = 0, None
        if record is not None:
            if record.completed_pos is not None:
                if step.compensation is not None:
                    self.completed.append(_Completed(record.completed_pos, key, name,
                                                     list(args), kwargs, record.result))
                return record.result
            if record.final_error is not None:
                raise StepFailed(name, record.final_error["type"], record.final_error["message"],
                                 record.failed_attempts, run_id=self.run_id)
            attempts, retry_at = record.failed_attempts, record.retry_at

        policy = step.retry
        engine = self.engine
        step_key = f"{self.run_id}:{key}"
        while True:
            if retry_at is not None:
                await engine.clock.sleep_until(retry_at)
            attempt = attempts + 1
            started = self._record(EventKind.STEP_STARTED, key, name, attempt, None)
            ticket = engine.journal.submit_nowait(started)
            self.in_flight += 1
            try:
                try:
                    result = await engine.steps.run(step.fn, step.is_async, args, kwargs,
                                                    step_key, name, attempt, step.timeout_s)
                    entry: dict[str, Any] = {"result": result, "started_at": started.at}
                    if step.compensation is not None:
                        entry["args"] = args
                        if kwargs:
                            entry["kwargs"] = kwargs
                    data = encode(entry, f"the result of step {name!r}")
                except Exception as exc:
                    attempts = attempt
                    error = describe_exception(exc)
                    retryable = policy.is_retryable(exc) and not isinstance(exc, PayloadError)
                    if retryable and attempt < policy.max_attempts:
                        delay = policy.delay(attempt, self.engine.rng.random()).total_seconds()
                        retry_at = engine.clock.time() + delay
                        error["retry_at"] = retry_at
                        error["max_attempts"] = policy.max_attempts
                        await self._commit(self._record(EventKind.STEP_FAILED, key, name, attempt,
                                                        dumps(error)))
                        self._check_interrupt()
                        continue
                    error["final"] = True
                    await self._commit(self._record(EventKind.STEP_FAILED, key, name, attempt,
                                                    dumps(error)))
                    self._check_interrupt()
                    raise StepFailed(name, error["type"], error["message"], attempt,
                                     run_id=self.run_id) from exc
                engine.journal.retract(ticket, started)
                op = self._record(EventKind.STEP_COMPLETED, key, name, attempt, data)
                decoded = orjson.loads(data)  # the workflow sees exactly what replay will
                if step.compensation is not None:
                    # On the stack before the commit is awaited: if the run is cancelled
                    # while waiting, the record still commits and must be compensated.
                    self.completed.append(_Completed(op.pos, key, name, decoded["args"],
                                                     decoded.get("kwargs", {}),
                                                     decoded["result"]))
                await self._commit(op)
            finally:
                self.in_flight -= 1
            self._check_interrupt()
            return decoded["result"]

    # -- driving -------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the run: interrupt it at its next call, then compensate."""
        if self.compensating or self.cancel_reason is not None:
            return
        self.cancel_reason = RunCancelled(self.run_id)
        self.engine.journal.submit_nowait(
            self._record(EventKind.CANCEL_REQUESTED, None, None, 0, None))
        # Before the driver starts, cancelling its task would kill it before its first
        # line; drive() sees cancel_reason instead and goes straight to compensating.
        if self.in_flight == 0 and self.task is not None and self._started:
            self.task.cancel()

    def _expire(self) -> None:
        if self.compensating or self.cancel_reason is not None:
            return
        assert self.workflow.timeout_s is not None
        self.cancel_reason = WorkflowTimeout(self.run_id, self.workflow.timeout_s)
        if self.task is not None:
            self.task.cancel()

    def abandon(self) -> None:
        """Stop executing this run here (storage failed, or another worker owns it)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def drive(self) -> None:
        """Run the workflow to its end, compensating on failure; the task's body."""
        self._started = True
        self._main.task = asyncio.current_task()
        current_branch.set(self._main)
        try:
            if not self.compensating:
                if self.cancel_reason is not None:
                    failure: BaseException | None = self.cancel_reason
                else:
                    failure = await self._run_workflow()
                if failure is None or not await self._fail(failure):
                    return
            await self._compensate()
        except (Abandon, asyncio.CancelledError) as exc:
            # Shutdown or a storage failure: leave the run as recorded; whoever claims it
            # next resumes it by replay.
            log.info("run %s stopped here (%s); it resumes on recovery", self.run_id,
                     type(exc).__name__)
            if not self.done.done():
                self.done.cancel()
        finally:
            self.engine.forget(self)

    async def _run_workflow(self) -> BaseException | None:
        """Run the workflow function; return the failure to compensate, or None if done."""
        timer = None
        if self.deadline_at is not None:
            timer = self.engine.clock.call_at(self.deadline_at, self._expire)
        try:
            output = await self.workflow.fn(*self.args)
        except Blocked as blocked:
            await self._block(blocked.error)
            return None
        except Interrupt:
            assert self.cancel_reason is not None
            return self.cancel_reason
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.cancel_reason is None or task is None:
                raise
            task.uncancel()
            return self.cancel_reason
        except Exception as exc:
            if self.cancel_reason is not None and isinstance(exc, StepFailed):
                return self.cancel_reason
            return exc
        finally:
            if timer is not None:
                timer.cancel()
            for branch in self._branches:
                if branch.task is not None and not branch.task.done():
                    branch.task.cancel()
        unvisited = sorted(set(self.index.calls) - self.visited)
        if unvisited:
            first = self.index.calls[unvisited[0]]
            await self._block(NonDeterminismError(self.run_id, unvisited[0], first.describe(),
                                                  "the workflow to return"))
            return None
        try:
            data = encode(output, f"the result of workflow {self.workflow.name!r}")
        except PayloadError as exc:
            return exc
        await self._commit(self._record(EventKind.RUN_COMPLETED, None, None, 0, data),
                           self._set_run(RunStatus.COMPLETED, output=data))
        self._finish(RunStatus.COMPLETED, orjson.loads(data), None)
        return None

    async def _block(self, error: NonDeterminismError) -> None:
        details = describe_exception(error) | {"seq": error.seq, "recorded": error.recorded,
                                               "requested": error.requested}
        await self._commit(self._record(EventKind.RUN_BLOCKED, None, None, 0,
                                        dumps(details)),
                           self._set_run(RunStatus.BLOCKED, error=details))
        log.error("%s", error)
        self._finish(RunStatus.BLOCKED, None, details)

    async def _fail(self, failure: BaseException) -> bool:
        """Record the failure; True if completed steps must now be compensated."""
        error = describe_exception(failure)
        if isinstance(failure, StepFailed):
            error |= {"type": failure.error_type, "message": failure.error_message,
                      "step": failure.step_name, "attempts": failure.attempts}
        cancelled = isinstance(failure, RunCancelled)
        if cancelled:
            error["cancelled"] = True
        self.index.failure = error
        self.compensating = True
        ops: list[Write] = [self._record(EventKind.RUN_FAILED, None, None, 0, dumps(error))]
        if not self._compensation_stack():
            final = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
            if cancelled:
                ops.append(self._record(EventKind.RUN_CANCELLED, None, None, 0, None))
            ops.append(self._set_run(final, error=error))
            await self._commit(*ops)
            self._finish(final, None, error)
            return False
        ops.append(self._set_run(RunStatus.COMPENSATING, error=error))
        # Not awaited: the failure is already durable in the records that caused it (a
        # final step_failed, a cancel flag, a deadline), so replay reaches it again; these
        # commit with the first compensation's record.
        for op in ops:
            self.engine.journal.submit_nowait(op)
        return True

    def _compensation_stack(self) -> list[_Completed]:
        if self.completed:
            return sorted(self.completed, key=lambda c: c.pos, reverse=True)
        # Resumed after a crash while compensating: rebuild the stack from history.
        stack = []
        for key in self.index.completed_order:
            call = self.index.calls[key]
            if call.args is not None:
                assert call.completed_pos is not None and call.name is not None
                stack.append(_Completed(call.completed_pos, key, call.name, call.args,
                                        call.kwargs or {}, call.result))
        return sorted(stack, key=lambda c: c.pos, reverse=True)

    async def _compensate(self) -> None:
        failure = self.index.failure
        assert failure is not None
        for entry in self._compensation_stack():
            record = self.index.compensations.get(entry.key) or CompensationRecord()
            if record.completed:
                continue
            error = await self._run_compensation(entry, record)
            if error is not None:
                details = {"type": error["type"], "message": error["message"],
                           "step": entry.name, "compensation": True,
                           "attempts": error.get("attempts"), "cause": failure}
                await self._commit(self._set_run(RunStatus.COMPENSATION_FAILED, error=details))
                self._finish(RunStatus.COMPENSATION_FAILED, None, details)
                return
        cancelled = bool(failure.get("cancelled"))
        final = RunStatus.CANCELLED if cancelled else RunStatus.COMPENSATED
        kind = EventKind.RUN_CANCELLED if cancelled else EventKind.RUN_COMPENSATED
        await self._commit(self._record(kind, None, None, 0, None),
                           self._set_run(final, error=failure))
        self._finish(final, None, failure)

    async def _run_compensation(self, entry: _Completed,
                                record: CompensationRecord) -> dict[str, Any] | None:
        """Run one compensation with its retries; return the final error, or None."""
        step = self.engine.registry.steps.get(entry.name)
        compensation = step.compensation if step is not None else None
        if compensation is None:
            error = {"type": "legato.errors.DefinitionError", "attempts": 0, "final": True,
                     "message": f"step {entry.name!r} has no compensation registered in this "
                                "app any more; deploy it, then retry the compensation"}
            await self._commit(self._record(EventKind.COMPENSATION_FAILED, entry.key,
                                            entry.name, 0, dumps(error)))
            return error
        engine = self.engine
        attempts, retry_at = record.failed_attempts, record.retry_at
        step_key = f"{self.run_id}:{entry.key}:compensate"
        while True:
            if retry_at is not None:
                await engine.clock.sleep_until(retry_at)
            attempt = attempts + 1
            started = self._record(EventKind.COMPENSATION_STARTED, entry.key, entry.name,
                                   attempt, None)
            ticket = engine.journal.submit_nowait(started)
            try:
                await engine.steps.run(compensation.fn, compensation.is_async,
                                       (*entry.args, entry.result), entry.kwargs, step_key,
                                       compensation.name, attempt, compensation.timeout_s)
            except Exception as exc:
                attempts = attempt
                error = describe_exception(exc) | {"attempts": attempt}
                policy = compensation.retry
                if policy.is_retryable(exc) and attempt < policy.max_attempts:
                    delay = policy.delay(attempt, self.engine.rng.random()).total_seconds()
                    retry_at = engine.clock.time() + delay
                    error["retry_at"] = retry_at
                    await self._commit(self._record(EventKind.COMPENSATION_FAILED, entry.key,
                                                    entry.name, attempt, dumps(error)))
                    continue
                error["final"] = True
                await self._commit(self._record(EventKind.COMPENSATION_FAILED, entry.key,
                                                entry.name, attempt, dumps(error)))
                return error
            engine.journal.retract(ticket, started)
            done = dumps({"started_at": started.at})
            await self._commit(self._record(EventKind.COMPENSATION_COMPLETED, entry.key,
                                            entry.name, attempt, done))
            return None

    def _finish(self, status: RunStatus, output: Any, error: dict[str, Any] | None) -> None:
        if not self.done.done():
            self.done.set_result(Outcome(status, output, error))
