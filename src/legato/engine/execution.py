"""``RunExecution``: one run, live in this process — replay, parking, outcome.

A run advances in one asyncio task (the driver). The workflow function runs inline in
it; every call it makes gets a key in call order. A call whose outcome history holds
returns that outcome at once; any other call executes, and the run does not move past it
until its record is committed (write before you move on).

A run that has nothing to do but wait (a timer, a signal, a retry's backoff) is
*evicted*: its task ends, its row says when it is next due, and whoever claims it then
resumes it by replay. Short timers keep the run in memory instead ("hot").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from legato.engine import calls, endings, saga
from legato.engine.context import ContinueAsNew, current_branch
from legato.errors import (
    HistoryTooLong,
    NonDeterminismError,
    PayloadError,
    RunCancelled,
    StepFailed,
    WorkflowTimeout,
)
from legato.lifecycle import after_release, request_cancel, signal_ops
from legato.model import RunStatus, records
from legato.model.index import CallRecord, HistoryIndex
from legato.model.payloads import dumps, encode
from legato.model.records import Record
from legato.model.runs import Outcome
from legato.model.waits import CHILD_SIGNAL_PREFIX
from legato.observability import tracing
from legato.storage.base import Append, CloseTasks, SetRun, Write

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


@dataclass(slots=True)
class Completed:
    """A completed step that has a compensation: the saga's stack entry."""

    pos: int
    key: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any


@dataclass(slots=True)
class _Park:
    """One call waiting for time or an event."""

    wake_at: float | None
    waiting: bool  # for an event (signal, task, child), not only for time
    future: asyncio.Future[None]
    retry: bool = False  # a retry's backoff: the run is between attempts, still running


class _Branch:
    """Call numbering for one task of the workflow (``asyncio.gather`` makes several)."""

    __slots__ = ("counter", "prefix", "task")

    def __init__(self, prefix: str, task: asyncio.Task[Any] | None) -> None:
        self.prefix = prefix
        self.counter = 0
        self.task = task


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RunExecution:
    """Drives one run from its recorded history to its end (or its next wait)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        workflow: Workflow[..., Any],
        args: list[Any],
        deadline_at: float | None,
        index: HistoryIndex,
        parent_run_id: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.engine = engine
        self.traceparent = traceparent  # the trace its spans continue (OpenTelemetry)
        self.run_id = run_id
        # The worker id this run was launched under: every run update is guarded by it,
        # so an execution that goes on after its worker was presumed dead (and registered
        # again under a new id) has its writes refused instead of moving a run it lost.
        self.owner_id = engine.worker_id
        self.workflow = workflow
        self.args = args
        self.deadline_at = deadline_at
        self.index = index
        self.parent_run_id = parent_run_id
        self.correlation_id = correlation_id or run_id
        self.pos = index.last_pos
        self.visited: set[str] = set()
        self.completed: list[Completed] = []
        self.cancel_reason: BaseException | None = None
        self.in_flight = 0  # step or compensation attempts running
        self.values_unsaved = False  # legato.now()/uuid()/random() records not yet durable
        self.committing = 0  # awaited commits under way
        self.compensating = index.failure is not None
        self.done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.parked: dict[str, _Park] = {}
        self.signal_watermark = max(index.consumed_signals, default=0)
        self.has_tasks = (
            any(c.kind == "task" for c in index.calls.values()) if index.calls else False
        )
        self.suspending = False
        self.abandoned = False  # stopped here for good: no more writes (see abandon)
        # Busy from being woken until it parks, starts a step attempt, or ends: the test
        # clock waits for every run to be quiet before it moves time.
        self.busy = True
        self._evict_to: tuple[RunStatus, float | None, bool] | None = None
        self._eviction_check_pending = False
        self._started = False
        self._main = _Branch("", None)
        self._branches: list[_Branch] = []

    # -- records -----------------------------------------------------------------------

    def record(self, record: Record, data: bytes | None = None) -> Append:
        """The write of ``record`` to this run's history, at the next position.

        ``data``, when given, is ``record.data()`` already encoded (and size-checked).
        """
        self.pos += 1
        if data is None:
            kind, key, name, attempt, data = record.stored()
        else:
            kind, key, name, attempt = record.KIND_VALUE, record.key, record.name, record.attempt
        return Append(
            self.run_id,
            self.pos,
            kind,
            key,
            name,
            attempt,
            data,
            self.engine.clock.time(),
            self.owner_id,
        )

    async def commit(self, *ops: Write) -> None:
        """Write ``ops`` in the next batch and wait for it (or abandon the run)."""
        self.committing += 1
        try:
            await self.engine.journal.commit(ops, self.run_id)
        except Exception as exc:
            raise Abandon(f"could not record progress of run {self.run_id!r}: {exc}") from exc
        finally:
            self.committing -= 1
            self.recheck_eviction()

    def set_run(
        self,
        status: RunStatus,
        *,
        output: bytes | None = None,
        error: dict[str, Any] | None = None,
        error_pos: int | None = None,
    ) -> SetRun:
        """Overwrite the run's row; an active run is due now, a finished one never.

        The run's error is ``error_pos`` (the position of the record whose data it is:
        stored once), else ``error`` itself.
        """
        now = self.engine.clock.time()
        return SetRun(
            self.run_id,
            str(status.value),
            output,
            None if error is None or error_pos is not None else dumps(error),
            now,
            None if status.is_terminal else now,
            owner=self.owner_id,
            error_pos=error_pos,
        )

    # -- call numbering and replay ---------------------------------------------------------

    def next_key(self) -> str:
        """The key of the workflow's next call (``"3"``, or ``"3.1"`` in a branch).

        Raises ``HistoryTooLong`` once the run's history is past the engine's limit: the
        workflow's next call fails, so a loop that never ends cannot grow one history
        (and its replay) without bound.
        """
        if self.pos >= self.engine.max_history:
            raise HistoryTooLong(self.run_id, self.pos, self.engine.max_history)
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

    def replayed(self, key: str, kind: str, name: str | None) -> CallRecord | None:
        """What history holds for ``key``, checked against what the code asks for."""
        calls_ = self.index.calls
        if not calls_:
            return None
        record = calls_.get(key)
        if record is None:
            return None
        self.visited.add(key)
        if record.kind != kind or record.name != name:
            requested = CallRecord(kind, name).describe()
            raise Blocked(NonDeterminismError(self.run_id, key, record.describe(), requested))
        return record

    def check_interrupt(self) -> None:
        """Stop here if the run was cancelled or timed out."""
        if self.cancel_reason is not None:
            raise Interrupt()

    # -- what workflow code calls ----------------------------------------------------------

    def record_value(self, kind: str, _: None) -> Any:
        """``legato.now()`` / ``uuid()`` / ``random()``: recorded values."""
        return calls.record_value(self, kind)

    async def call_step(
        self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Execute a step call durably (or return its recorded outcome)."""
        return await calls.call_step(self, step, args, kwargs)

    # -- waiting ---------------------------------------------------------------------------

    async def park(
        self, key: str, wake_at: float | None, *, waiting: bool, retry: bool = False
    ) -> None:
        """Wait until ``wake_at`` or an event; evict the run if nothing else is going on."""
        park = _Park(wake_at, waiting, asyncio.get_running_loop().create_future(), retry)
        if not self.parked:
            self.engine.parked_runs += 1
        self.parked[key] = park
        if waiting:
            self.engine.waiting_for_events.add(self)
        timer = None
        if wake_at is not None:
            timer = self.engine.clock.call_at(wake_at, lambda: _wake(park.future))
        self._schedule_eviction_check()
        self.set_busy(False)
        try:
            await park.future
        finally:
            self.busy = True
            del self.parked[key]
            if not self.parked:
                self.engine.parked_runs -= 1
            if not self.is_waiting_for_event:
                self.engine.waiting_for_events.discard(self)
            if timer is not None:
                timer.cancel()

    def set_busy(self, busy: bool) -> None:
        """Say whether the run is working (not parked, not in a step attempt)."""
        self.busy = busy
        if not busy:
            self.engine.note_quiet()

    def wake_waiting(self) -> None:
        """Something arrived (a signal): let every call waiting for an event look again."""
        for park in self.parked.values():
            if park.waiting:
                _wake(park.future)

    @property
    def is_waiting_for_event(self) -> bool:
        """True if some call waits for a signal, task or child."""
        return any(p.waiting for p in self.parked.values())

    def recheck_eviction(self) -> None:
        """Work just ended (a commit, a step attempt): if some call is parked, maybe evict."""
        if self.parked:
            self._schedule_eviction_check()

    def _can_evict(self) -> bool:
        return (
            bool(self.parked)
            and self.in_flight == 0
            and self.committing == 0
            and not self.suspending
            and self.cancel_reason is None
            and self.task is not None
            and self.engine.running
        )

    def _schedule_eviction_check(self) -> None:
        if not self._eviction_check_pending:
            self._eviction_check_pending = True
            # Two loop turns later: the other branches, woken by the same events, have
            # had their turn to start steps (which keep the run here).
            asyncio.get_running_loop().call_soon(self._check_eviction, 2)

    def _check_eviction(self, turns: int) -> None:
        if not self._can_evict():
            self._eviction_check_pending = False
            return
        if turns > 1:
            asyncio.get_running_loop().call_soon(self._check_eviction, turns - 1)
            return
        self._eviction_check_pending = False
        wakes = [p.wake_at for p in self.parked.values() if p.wake_at is not None]
        wake_at = min(wakes) if wakes else None
        waiting = self.is_waiting_for_event
        if not waiting and wake_at is not None and self.engine.may_stay_hot(wake_at):
            return  # a short timer: stay in memory, the clock wakes us
        if self.deadline_at is not None and not self.compensating:
            wake_at = self.deadline_at if wake_at is None else min(wake_at, self.deadline_at)
        if self.compensating:
            status = RunStatus.COMPENSATING
        elif waiting:
            status = RunStatus.WAITING
        elif all(p.retry for p in self.parked.values()):
            status = RunStatus.RUNNING  # between a step's attempts
        else:
            status = RunStatus.SLEEPING
        self._evict_to = (status, wake_at, waiting)
        self.suspending = True
        self._interrupt_task()

    async def _suspend(self) -> None:
        """Write where the run waits, and let go of it."""
        assert self._evict_to is not None
        status, wake_at, waiting = self._evict_to
        now = self.engine.clock.time()
        await self.commit(
            SetRun(
                self.run_id,
                status.value,
                None,
                None,
                now,
                wake_at,
                release=True,
                owner=self.owner_id,
                # While compensating, the run's error is its run_failed record.
                error_pos=self.index.failure_pos if self.compensating else None,
            ),
            # Due at once if a cancel came meanwhile, or (only for a run waiting for an
            # event) a signal newer than the last one it saw.
            *after_release(self.run_id, now, self.signal_watermark if waiting else None),
        )

    # -- cancelling ----------------------------------------------------------------------------

    def cancel(self, by: str | None = None) -> None:
        """Cancel the run: interrupt it (a step in flight too), then compensate. ``by``:
        who asked, for the ``cancel_requested`` record."""
        if self.compensating or self.cancel_reason is not None or self.abandoned:
            return
        self.cancel_reason = RunCancelled(self.run_id)
        self.suspending = False
        if not self.index.cancel_requested:  # once: a recovered run may hold it already
            self.index.cancel_requested = True
            self.engine.journal.submit_nowait(self.record(records.CancelRequested(by=by)))
        # A step in flight is interrupted too (CancelledError at its await; a sync step's
        # thread is abandoned): it never completed, so it is not compensated. Before the
        # driver starts, cancelling its task would kill it before its first line; drive()
        # sees cancel_reason instead and goes straight to compensating.
        if self._started:
            self._interrupt_task()

    def _expire(self) -> None:
        if self.compensating or self.cancel_reason is not None:
            return
        assert self.workflow.timeout_s is not None
        self.cancel_reason = WorkflowTimeout(self.run_id, self.workflow.timeout_s)
        self.suspending = False
        self._interrupt_task()

    def abandon(self) -> None:
        """Stop executing this run here (storage failed, or another worker owns it).

        Not a cancel, even if one was requested too: whoever executes the run next
        carries the cancel out; nothing more is written from here.
        """
        self.abandoned = True
        self.suspending = False
        self._interrupt_task()

    def _interrupt_task(self) -> None:
        # Once: a second cancel() before the first is handled would be delivered again
        # later, in the middle of compensating. The flags say what the first one means.
        task = self.task
        if task is not None and not task.done() and task.cancelling() == 0:
            task.cancel()

    # -- driving -------------------------------------------------------------------------------

    async def drive(self) -> None:
        """Run the workflow to its end or its next wait; the task's body (a span of its
        trace when the application traces)."""
        tracer = self.engine.tracer
        if tracer is None:
            await self._drive()
            return
        with tracing.run_span(tracer, self.run_id, self.workflow.name, self.traceparent):
            await self._drive()

    async def _drive(self) -> None:
        self._started = True
        self._main.task = asyncio.current_task()
        current_branch.set(self._main)
        if self.index.last_pos == 0:
            log.info("run %s (%s) started", self.run_id, self.workflow.name)
        else:  # woken from a wait or recovered: routine, and 100k parked runs wake often
            log.debug("run %s (%s) resumed by replay", self.run_id, self.workflow.name)
        try:
            if not self.compensating:
                if self.cancel_reason is not None:
                    failure: BaseException | None = self.cancel_reason
                else:
                    failure = await self._run_workflow()
                if failure is None or not await endings.fail(self, failure):
                    return
            await saga.compensate(self)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.suspending and task is not None and self.engine.running:
                task.uncancel()
                await self._suspend()
                if self.cancel_reason is not None:
                    # Cancelled while letting go: the row must say so, or the run would
                    # sleep until its wake time and then go on as if nothing happened.
                    await request_cancel(self.engine.store, self.run_id, self.engine.clock.time())
                    self.engine.poke()
                return
            self._stopped("CancelledError")
        except Abandon:
            self._stopped("Abandon")
        finally:
            self.engine.forget(self)

    def release_tasks(self) -> None:
        """Drop references to this run's tasks (its driver is ending)."""
        self.task = None
        self._main.task = None
        self._branches.clear()

    def _stopped(self, why: str) -> None:
        # Shutdown or a storage failure: leave the run as recorded; whoever claims it
        # next resumes it by replay.
        log.info("run %s stopped here (%s); it resumes on recovery", self.run_id, why)
        if not self.done.done():
            self.done.cancel()

    async def _run_workflow(self) -> BaseException | None:
        """Run the workflow function; return the failure to compensate, or None if done."""
        timer = None
        if self.deadline_at is not None:
            timer = self.engine.clock.call_at(self.deadline_at, self._expire)
        try:
            output = await self.workflow.fn(*self.workflow.call_arguments(self.args))
        except Blocked as blocked:
            await endings.block(self, blocked.error)
            return None
        except Interrupt:
            assert self.cancel_reason is not None
            return self.cancel_reason
        except ContinueAsNew as cont:
            return await endings.continue_as_new(self, cont.args_)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.cancel_reason is None or self.abandoned or task is None:
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
            await endings.block(
                self,
                NonDeterminismError(
                    self.run_id, unvisited[0], first.describe(), "the workflow to return"
                ),
            )
            return None
        try:
            data = encode(
                output,
                f"the result of workflow {self.workflow.name!r}",
                self.engine.max_payload_bytes,
            )
        except PayloadError as exc:
            return exc
        await self.end(RunStatus.COMPLETED, records.RunCompleted(output), data=data, output=data)
        return None

    async def end(
        self,
        status: RunStatus,
        record: Record | None,
        *,
        data: bytes | None = None,
        output: bytes | None = None,
        error: dict[str, Any] | None = None,
        error_pos: int | None = None,
        first: Write | None = None,
    ) -> None:
        """Commit the run's end (with what it owes others), then tell in-process waiters.

        ``error`` is the run's error; ``error_pos``, when given, the record that holds it.
        """
        ops: list[Write] = [] if first is None else [first]
        if record is not None:
            ops.append(self.record(record, data))
        end = self.set_run(status, output=output, error=error, error_pos=error_pos)
        end.release = True  # nobody executes an ended run; an operator action may revive it
        ops.append(end)
        now = self.engine.clock.time()
        if self.has_tasks:
            ops.append(CloseTasks(self.run_id, None, "cancelled", now))
        if self.parent_run_id is not None:
            outcome = {
                "status": status.value,
                "error": error,
                "output": None if output is None else "__output__",
            }
            payload = dumps(outcome)
            if output is not None:  # splice the already-encoded output in, not re-encode it
                payload = payload.replace(b'"__output__"', output, 1)
            ops += signal_ops(self.parent_run_id, CHILD_SIGNAL_PREFIX + self.run_id, payload, now)
        await self.commit(*ops)
        if self.parent_run_id is not None:
            self.engine.signal_arrived(self.parent_run_id)
        decoded = None if output is None else orjson.loads(output)
        self.finish(status, decoded, error)
        if log.isEnabledFor(logging.INFO):  # every run ends here: build nothing when off
            cause = "" if error is None else f": {error.get('type')}"
            if error is not None and error.get("step"):
                cause += f" in step {error['step']!r}"
            log.info("run %s (%s) %s%s", self.run_id, self.workflow.name, status, cause)

    def finish(self, status: RunStatus, output: Any, error: dict[str, Any] | None) -> None:
        """Resolve in-process waiters with the run's outcome."""
        outcome = Outcome(status, output, error)
        if not self.done.done():
            self.done.set_result(outcome)
        self.engine.finished(self.run_id, outcome)
