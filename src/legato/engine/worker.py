"""``Engine``: executes runs in this process — starts, claims, recovers, heartbeats.

Ownership works by worker: each run row names the worker executing it, and each worker
heartbeats its own row. A worker whose heartbeat is older than the lease, or whose
process is gone from this host, is dead: its runs are released and claimed by the
living, who resume them by replay.

A worker presumed dead may only have stalled (a step that blocked the event loop, a
SIGSTOP) and come back. Its heartbeat then finds no row: it stops the runs it held
without writing for them, and registers again under a new id before it claims anything.
Until then the store refuses it claims, and every ``SetRun`` it writes is guarded by the
id it executed the run under, so it cannot move a run that was taken from it. Runs that
still name an id with no row (written by such a worker before it noticed) are released
by the next recovery pass of any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import orjson

from legato import collector
from legato.bus import alerts, expectations
from legato.bus.consumer import Consumer
from legato.bus.publishing import Router
from legato.engine import liveness
from legato.engine.clock import Clock, SystemClock
from legato.engine.context import current_execution
from legato.engine.execution import RunExecution
from legato.engine.journal import Journal
from legato.engine.liveness import new_worker_id, reap_dead_workers
from legato.engine.registry import Registry, Workflow
from legato.engine.steps import StepRunner
from legato.errors import DatabaseMoved, RunAlreadyExists, StorageError, UnknownWorkflow
from legato.lifecycle import request_cancel
from legato.model import HistoryEvent, Run, RunStatus
from legato.model.events import stored_arguments
from legato.model.ids import new_run_id
from legato.model.index import HistoryIndex
from legato.model.payloads import DEFAULT_MAX_PAYLOAD_BYTES, encode
from legato.model.runs import Outcome
from legato.observability import logs, tracing
from legato.observability.hooks import Hooks
from legato.storage.base import NewRun, SetRun, Store, Write

log = logging.getLogger(__name__)


_MAX_UPKEEP_BACKOFF_S = 5.0
"""The longest wait between upkeep passes while the database keeps failing."""
_REAP_EVERY_S = 1.0
"""How often at most a worker looks for dead workers (a list of workers, one release)."""

SETTLE_THREAD_GRACE_S = 1.0
"""How long (real seconds) ``FakeClock.settle`` waits for a def step or handler on a thread."""

DEFAULT_MAX_HISTORY = 20_000
"""History records a run may hold before its next call raises ``HistoryTooLong``."""


class Engine:
    """Runs workflows of one ``Registry`` against one ``Store``."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        clock: Clock | None = None,
        poll_interval: timedelta = timedelta(milliseconds=200),
        alert_interval: timedelta = alerts.DEFAULT_ALERT_INTERVAL,
        lease: timedelta = timedelta(seconds=15),
        max_concurrent_runs: int = 10_000,
        step_threads: int = 32,
        tune_gc: bool = True,
        hot_window: timedelta = timedelta(seconds=2),
        max_hot_runs: int = 1000,
        hooks: Sequence[Hooks] = (),
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_history: int = DEFAULT_MAX_HISTORY,
        name: str = "legato",
        tracer_provider: Any = None,
    ) -> None:
        self.name = name  # the app's: the source of the events its runs publish
        self.registry = registry
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.worker_id = new_worker_id()
        self.poll_interval_s = poll_interval.total_seconds()
        self.lease_s = lease.total_seconds()
        self.max_concurrent_runs = max_concurrent_runs
        self.live: dict[str, RunExecution] = {}
        # Executions stopped because this worker was presumed dead, until their tasks end:
        # their runs belong to others now, so they are neither released nor resumed here.
        self._lost: dict[str, RunExecution] = {}
        self.hooks = list(hooks)
        self.max_payload_bytes = max_payload_bytes
        self.max_history = max_history
        self.parked_runs = 0  # live runs with at least one call waiting
        self.waiting_for_events: set[RunExecution] = set()  # checked for signals each poll
        self.max_hot_runs = max_hot_runs
        self.hot_window_s = hot_window.total_seconds()
        self._outcomes: dict[str, asyncio.Future[Outcome]] = {}
        # One generator for jitter and legato.random(): seeding one per run costs ~20 µs.
        self.rng = random.Random()
        self._step_threads = step_threads
        self.journal: Journal
        self.steps: StepRunner
        self.router = Router()
        self.consumer = Consumer(self, registry.subscriptions)
        self._maintainer: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] = _nothing
        self._poke = asyncio.Event()
        self._pass_done = asyncio.Event()
        self._quiet = asyncio.Event()
        self.alert_interval_s = alert_interval.total_seconds()
        self._alerts_at: float | None = None  # clock time of the last look for alerts
        self.presumed_dead: dict[str, int] = {}  # workers reaped holding runs: alert them
        self.unrouted_seen = alerts.UnroutedSeen()
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, once started
        self.last_pass_at = time.monotonic()  # when the upkeep pass last ended (/healthz)
        self._tracer_provider = tracer_provider
        self.tracer: Any = None  # OpenTelemetry's, when traced (decided at start)
        self.engine_io = 0  # the engine's own store I/O in flight: direct publishes, expectations
        self._pass_done.set()
        self._last_heartbeat = 0.0
        self._last_reap = 0.0
        self._to_release: list[str] = []
        # Due runs were left for later for want of room (max_concurrent_runs): claim them
        # as soon as enough live runs here end or park, not at the next poll.
        self._room_wanted = False
        self.tune_gc = tune_gc
        self._saved_gc: tuple[int, ...] | None = None
        self.running = False
        # Set when the engine cannot go on (its database file was deleted or replaced):
        # whoever runs the engine (App.run_worker) stops and raises ``fatal_error``.
        self.fatal = asyncio.Event()
        self.fatal_error: StorageError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, register, recover unfinished runs, and start serving."""
        if self.tune_gc:
            self._saved_gc = collector.busy()
        self.registry.check_expectations()
        logs.install()  # log records say which run, step and event they are about
        # Traced with the provider given, or the global one if the application set it
        # before the engine started: one look here, not one per step.
        self.tracer = tracing.tracer(self._tracer_provider)
        self.loop = asyncio.get_running_loop()
        for hook in self.hooks:
            hook.attach(self)
        await self.store.open()
        self._unwatch = self.store.watch(self.poke)  # other processes' work wakes us
        self.journal = Journal(
            self.store,
            self._on_write_failed,
            self._after_commit if self.hooks else None,
            self._before_commit if self.hooks else None,
        )
        self.steps = StepRunner(self.clock, self._step_threads)
        self.journal.start()
        now = time.time()
        await liveness.register(self, now)
        await self.store.register_workflows(list(self.registry.workflows), now)
        subscriptions = [s.stored for s in self.registry.subscriptions.values()]
        if subscriptions:
            await self.store.register_subscriptions(subscriptions, now)
        await self.router.refresh(self.store)
        self.consumer.start()
        self._last_heartbeat = now
        self._alerts_at = self.clock.time()  # the first look one interval after the start
        self.running = True
        self.presumed_dead.update(await reap_dead_workers(self.store, self.worker_id, self.lease_s))
        while await self._claim():
            pass
        while await self.consumer.claim():
            pass
        self._maintainer = asyncio.get_running_loop().create_task(
            self._maintain(), name="legato-maintainer"
        )
        watch = getattr(self.clock, "watch", None)  # a FakeClock settles on our work too
        if watch is not None:
            watch(self)

    async def stop(self) -> None:
        """Stop executing: runs in flight stay as recorded and are released for recovery."""
        if not self.running:
            return
        self.running = False
        self._unwatch()
        unwatch = getattr(self.clock, "unwatch", None)
        if unwatch is not None:
            unwatch(self)
        if self._maintainer is not None:
            self._maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintainer
        executions = [*self.live.values(), *self._lost.values()]
        tasks = [e.task for e in executions if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.consumer.stop()
        await self.journal.stop()
        self.steps.shutdown()
        try:
            await self.store.remove_workers([self.worker_id])
        finally:
            await self.store.close()
            collector.restore(self._saved_gc)
            self._saved_gc = None

    # -- starting and launching runs ---------------------------------------------------------------

    async def start_run(
        self,
        workflow: Workflow[..., Any],
        args: tuple[Any, ...],
        run_id: str | None,
        correlation_id: str | None = None,
    ) -> str:
        """Create a run and execute it here; an existing id returns the existing run."""
        workflow.check_arguments(args)
        payload = encode(
            stored_arguments(args),
            f"the arguments of workflow {workflow.name!r}",
            self.max_payload_bytes,
        )
        if run_id is None:
            run_id = new_run_id()
        elif not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        live = self.live.get(run_id)
        if live is not None:
            if live.workflow.name != workflow.name:
                raise RunAlreadyExists(run_id, live.workflow.name, workflow.name)
            return run_id
        now = self.clock.time()
        deadline = None if workflow.timeout_s is None else now + workflow.timeout_s
        # Past max_concurrent_runs a new run is not launched here but created pending, for
        # this worker (or another) to claim when it has room: live runs, and the memory
        # they hold, stay bounded however fast runs are started.
        full = len(self.live) >= self.max_concurrent_runs
        traceparent = None if self.tracer is None else tracing.new_run(self.tracer, workflow.name)
        outcome = await self.journal.commit(
            [
                NewRun(
                    run_id,
                    workflow.name,
                    (RunStatus.PENDING if full else RunStatus.RUNNING).value,
                    payload,
                    now,
                    deadline,
                    None if full else self.worker_id,
                    correlation_id=correlation_id,
                    traceparent=traceparent,
                )
            ],
            run_id,
        )
        existing = outcome.conflicts.get(run_id)
        if existing is not None:
            if existing != workflow.name:
                raise RunAlreadyExists(run_id, existing, workflow.name)
            return run_id
        if full:
            self._room_wanted = True
            return run_id
        # The workflow sees its arguments as replay will: through JSON.
        self._launch(
            run_id,
            workflow,
            orjson.loads(payload),
            deadline,
            HistoryIndex(),
            correlation_id=correlation_id,
            traceparent=traceparent,
        )
        return run_id

    def _launch(
        self,
        run_id: str,
        workflow: Workflow[..., Any],
        args: list[Any],
        deadline_at: float | None,
        index: HistoryIndex,
        parent_run_id: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> RunExecution:
        execution = RunExecution(
            self,
            run_id,
            workflow,
            args,
            deadline_at,
            index,
            parent_run_id,
            correlation_id,
            traceparent,
        )
        self.live[run_id] = execution
        # The task runs in a copy of this context: each run's calls find their own execution.
        context = contextvars.copy_context()
        context.run(current_execution.set, execution)
        execution.task = asyncio.get_running_loop().create_task(
            execution.drive(), name=f"legato-run-{run_id}", context=context
        )
        return execution

    def _resume(self, run: Run, history: list[HistoryEvent]) -> None:
        workflow = self.registry.workflows[run.workflow]  # claims only take our workflows
        index = HistoryIndex.build(history)
        if run.deadline_at is not None:
            deadline: float | None = run.deadline_at.timestamp()
        elif workflow.timeout_s is not None:
            # Started by a client, which does not know the workflow's timeout: it counts
            # from when the run was requested, the same on every replay.
            deadline = run.created_at.timestamp() + workflow.timeout_s
        else:
            deadline = None
        if run.status is RunStatus.PENDING:
            now = self.clock.time()
            self.journal.submit_nowait(
                SetRun(
                    run.run_id, RunStatus.RUNNING.value, None, None, now, now, owner=self.worker_id
                )
            )
        execution = self._launch(
            run.run_id,
            workflow,
            list(run.input),
            deadline,
            index,
            run.parent_run_id,
            run.correlation_id,
            run.traceparent,
        )
        if run.cancel_requested or index.cancel_requested:
            execution.cancel(run.cancel_by)

    def _before_commit(self, writes: list[Write]) -> None:
        for hook in self.hooks:
            hook.before_commit(writes)

    def _after_commit(self, writes: list[Write]) -> None:
        for hook in self.hooks:
            hook.after_commit(writes)

    def forget(self, execution: RunExecution) -> None:
        """Called by an execution when its task ends."""
        if self._lost.get(execution.run_id) is execution:
            # Stopped when this worker was presumed dead: its run was released by the
            # worker that presumed it, and may be someone else's now. Nothing to hand back.
            del self._lost[execution.run_id]
            execution.release_tasks()
            self.note_quiet()
            return
        if self.live.get(execution.run_id) is execution:
            del self.live[execution.run_id]
            if self._room_wanted and len(self.live) <= self.max_concurrent_runs * 0.9:
                self._room_wanted = False  # a tenth of the room is free: claim what waits
                self.poke()
        # Break execution -> task -> context -> execution now: left to the (tuned) cyclic
        # collector, 100k evicted runs kept ~85 MB of garbage alive.
        execution.release_tasks()
        self.note_quiet()
        if self.running and execution.done.cancelled():
            # Stopped before its end (a write failed): hand it back so it is claimed
            # again and resumed from what was committed.
            self._to_release.append(execution.run_id)
            self.poke()

    def _on_write_failed(self, failed: dict[str, BaseException]) -> None:
        # One line per distinct error, not per run: a full disk fails every run in flight.
        by_error: dict[str, list[str]] = {}
        for run_id, error in failed.items():
            execution = self.live.get(run_id)
            if execution is None:
                # A publish, a settle, a run being created (a start, a trigger, a
                # violation's): whoever submitted it hears of it and decides.
                continue
            by_error.setdefault(str(error), []).append(run_id)
            execution.abandon()
        for message, run_ids in by_error.items():
            shown = ", ".join(run_ids[:5]) + (
                f" and {len(run_ids) - 5} more" if len(run_ids) > 5 else ""
            )
            log.error(
                "%s: records could not be written (%s); stopping %s here, to resume "
                "from what was committed",
                f"run {shown}" if len(run_ids) == 1 else f"{len(run_ids)} runs ({shown})",
                message,
                "it" if len(run_ids) == 1 else "them",
            )

    # -- outcomes, waits and signals ---------------------------------------------------------------

    def outcome_future(self, run_id: str) -> asyncio.Future[Outcome]:
        """Resolves when the run ends in this engine (it may be claimed here later)."""
        future = self._outcomes.get(run_id)
        if future is None:
            future = self._outcomes[run_id] = asyncio.get_running_loop().create_future()
        return future

    def finished(self, run_id: str, outcome: Outcome) -> None:
        """Called by an execution when its run has ended."""
        future = self._outcomes.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def may_stay_hot(self, wake_at: float) -> bool:
        """Whether a run whose next wake is ``wake_at`` may wait in memory, not evicted."""
        return (
            wake_at - self.clock.time() <= self.hot_window_s
            and self.parked_runs <= self.max_hot_runs
        )

    def signal_arrived(self, run_id: str) -> None:
        """A signal was committed for ``run_id``: wake it if it waits here, else claim it."""
        execution = self.live.get(run_id)
        if execution is not None:
            execution.wake_waiting()
        else:
            self.poke()  # parked in the database: due now, so claim it without a poll

    async def cancel_children(self, child_run_ids: list[str]) -> None:
        """Request cancellation of child runs (their owners compensate them)."""
        if not child_run_ids:
            return  # most failing runs have none: no poke of the upkeep loop for nothing
        now = self.clock.time()
        for child_id in child_run_ids:
            if not self.cancel_live(child_id):
                await request_cancel(self.store, child_id, now)
        self.poke()

    def cancel_live(self, run_id: str, by: str | None = None) -> bool:
        """Cancel a run executing here (``by``: who asked); False if it is not live here."""
        execution = self.live.get(run_id)
        if execution is None:
            return False
        execution.cancel(by)
        return True

    async def _cancel_requested(self, run_id: str) -> bool:
        """Carry out a cancel asked of a run executing here (False if it is not live here),
        recorded as asked by whoever the run's ``cancel_by`` names."""
        if run_id not in self.live:
            return False
        run = await self.store.get_run(run_id)
        return self.cancel_live(run_id, None if run is None else run.cancel_by)

    def workflow(self, name: str) -> Workflow[..., Any]:
        """The registered workflow of that name."""
        try:
            return self.registry.workflows[name]
        except KeyError:
            raise UnknownWorkflow(name, list(self.registry.workflows)) from None

    # -- background upkeep --------------------------------------------------------------------

    def poke(self) -> None:
        """Look for new work now rather than at the next poll."""
        self._poke.set()
        self._pass_done.clear()

    def is_idle(self) -> bool:
        """Nothing to commit, no upkeep pending, no sync step or handler awaited on a
        thread, every live run parked or awaiting a step.

        Used by ``FakeClock.settle`` (tests); it looks at every live run.
        """
        return (
            self.journal.is_idle
            and self._pass_done.is_set()
            and self.consumer.is_idle
            and not self.engine_io
            and not self.steps.threads.recent(SETTLE_THREAD_GRACE_S)
            and not any(ex.busy for ex in self.live.values())
        )

    def note_quiet(self) -> None:
        """A run just parked, started a step attempt, or ended; or a publish finished."""
        self._quiet.set()

    async def next_wake(self) -> float | None:
        """When the earliest parked run, pending delivery or expectation deadline is due
        (used by FakeClock)."""
        runs = await self.store.next_due(list(self.registry.workflows))
        deliveries = await self.consumer.next_due()
        deadlines = await self.store.next_expectation_due(list(self.registry.expectations))
        due = [t for t in (runs, deliveries, deadlines) if t is not None]
        return min(due) if due else None

    async def wait_idle(self) -> None:
        """Wait for the upkeep pass and the journal, and a little for a busy run to quiet."""
        await self._pass_done.wait()
        await self.journal.wait_idle()
        jobs = self.steps.threads.recent(SETTLE_THREAD_GRACE_S)
        if jobs:
            # A def step or handler runs on a thread: its result comes back to the loop.
            await asyncio.wait(jobs, timeout=0.05)
        if self.engine_io or any(ex.busy for ex in self.live.values()):
            # Runs and publishes wait on real I/O (database reads): wait for one to quiet,
            # briefly.
            self._quiet.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), 0.05)

    async def _maintain(self) -> None:
        wait_s = self.poll_interval_s
        outage_since: float | None = None
        while self.running:
            self.last_pass_at = time.monotonic()
            self._pass_done.set()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # arrives as the poke does, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._poke.wait()
            self._poke.clear()
            self._pass_done.clear()
            try:
                await self.store.check_location()
                now = time.time()
                if now - self._last_heartbeat >= self.lease_s / 3:
                    if await self.store.heartbeat(self.worker_id, now):
                        self._last_heartbeat = now
                    else:
                        await liveness.register_again(self)
                    # Now and then, not every pass: a publish routed by an old registry is
                    # refused by its guard and routed again with the new one anyway.
                    await self.router.refresh(self.store)
                if now - self._last_reap >= min(self.lease_s / 3, _REAP_EVERY_S):
                    # More often than the heartbeat: a worker on this host whose process
                    # is gone is dead at once, and its runs should not wait 5 s for us.
                    self._last_reap = now
                    self.presumed_dead.update(
                        await reap_dead_workers(self.store, self.worker_id, self.lease_s)
                    )
                if self._to_release:
                    await self.journal.flush()
                    released = list(self._to_release)
                    await self.store.release_runs(self.worker_id, released)
                    del self._to_release[: len(released)]  # only once the release is durable
                while await self._claim():
                    pass
                while await self.consumer.claim():
                    pass
                if await expectations.fire_due(self) >= expectations.DUE_BATCH:
                    self.poke()  # more may be due: the next pass at once
                await self._check_alerts()
                for run_id in await self.store.cancel_requests(self.worker_id):
                    if not await self._cancel_requested(run_id) and run_id not in self._to_release:
                        self._to_release.append(run_id)  # ours but idle: let it be claimed
                        self.poke()
                await self._check_signals()
                await self._check_outcomes()
            except DatabaseMoved as exc:
                # Going on would finish runs into a file nobody will read: stop.
                log.critical("%s; this worker stops", exc)
                self.fatal_error = exc
                self.fatal.set()
                return
            except Exception as exc:
                # The database may be unavailable for a while (a full disk, a lock held
                # too long): say so once, back off, and go on when it answers again.
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.error(
                        "worker upkeep failed: %s; retrying with backoff until it succeeds",
                        exc,
                        exc_info=True,
                    )
                wait_s = min(max(wait_s * 2, self.poll_interval_s), _MAX_UPKEEP_BACKOFF_S)
            else:
                if outage_since is not None:
                    log.warning(
                        "worker upkeep works again after %.1fs of failures",
                        time.monotonic() - outage_since,
                    )
                    outage_since = None
                wait_s = self.poll_interval_s

    async def _check_alerts(self) -> None:
        """Every ``alert_interval`` (of the engine's clock): raise and resolve alerts."""
        now = self.clock.time()
        if self._alerts_at is not None and now - self._alerts_at < self.alert_interval_s:
            return
        self._alerts_at = now
        await alerts.check(self)

    async def _check_outcomes(self) -> None:
        """Resolve waiters of runs that are not live here and have ended (elsewhere)."""
        for run_id in [r for r in self._outcomes if r not in self.live]:
            run = await self.store.get_run(run_id)
            if run is not None and run.status.is_terminal:
                self.finished(run_id, Outcome(run.status, run.output, run.error))

    async def _check_signals(self) -> None:
        """Wake runs waiting in memory for a signal that another process sent."""
        for execution in list(self.waiting_for_events):
            if execution.is_waiting_for_event:
                newer = await self.store.signals(execution.run_id, execution.signal_watermark)
                if newer:
                    execution.wake_waiting()

    async def _claim(self) -> bool:
        """Claim and resume due runs; True if there may be more to claim at once."""
        room = self.max_concurrent_runs - len(self.live)
        if room <= 0:
            self._room_wanted = True
            return False
        limit = min(room, 1000)
        runs = await self.store.claim_runs(
            self.worker_id, self.clock.time(), limit, list(self.registry.workflows)
        )
        if not runs:
            return False
        histories = await self.store.histories([r.run_id for r in runs])
        for run in runs:
            if run.run_id in self._lost:
                # Its stopped execution still unwinds here: resuming now would run it twice
                # in this process. Hand it back at the next pass (no poke: that would spin
                # until the unwinding task gets a turn); claimed again once that one ends.
                self._to_release.append(run.run_id)
            elif run.run_id not in self.live:
                self._resume(run, histories[run.run_id])
        return len(runs) == limit


def _nothing() -> None:
    pass
