"""``App``: registers workflows and steps, and runs the engine in this process."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from legato.appevents import AppEvents
from legato.bus import alerts, expectations
from legato.bus.subscriptions import handler_subscription, trigger_subscription
from legato.client import AsyncClient, RunHandle, poll_outcome
from legato.engine.clock import Clock
from legato.engine.registry import Registry, Step, Workflow
from legato.engine.worker import DEFAULT_MAX_HISTORY, Engine
from legato.errors import NotRunning, RunNotFound
from legato.model import HistoryEvent, Retry, Run, RunStatus, Task
from legato.model.description import RunDescription
from legato.model.events import Event
from legato.model.ids import check_run_id
from legato.model.payloads import DEFAULT_MAX_PAYLOAD_BYTES, check_payload_limit
from legato.model.runs import Outcome
from legato.model.workers import WorkerInfo
from legato.observability.hooks import Hooks
from legato.storage import database_url, open_store
from legato.storage.base import Store

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class App(AppEvents):
    """A Legato application: its workflows, its steps, and (when entered) its engine.

    ``database`` is a URL (``sqlite:///path.db``, ``memory://``) or a ``Store``; by default
    ``$LEGATO_DATABASE_URL``, else ``sqlite:///./legato.db``.

    ``max_payload_bytes`` (2 MiB) caps each stored value: arguments, step results,
    signals, task answers. ``max_history`` (20,000) caps a run's history records; past
    it the workflow's next call raises ``HistoryTooLong`` (loop with
    ``legato.continue_as_new`` instead).

    ``tracer_provider``: an OpenTelemetry ``TracerProvider`` to trace runs, steps, publishes
    and deliveries with (docs/observability.md); by default the global one, if the
    application set it before the app starts. Legato never sets one.

    ``step_threads`` bounds the threads that run ``def`` steps at once; a sync step's
    timeout counts from when a thread takes it, not while it waits for one.

    ``tune_gc=True`` raises the process's garbage-collector thresholds to (50000, 20, 100)
    while the engine runs (if they are still Python's defaults) and restores them on
    stop: with thousands of runs in flight the default thresholds rescan them so often
    that collection takes half the CPU. It changes the whole process, so it is off unless
    you ask; ``legato worker`` turns it on, since the process is the worker's own.

    >>> app = legato.App("courses")                          # doctest: +SKIP
    >>> async with app:                                      # doctest: +SKIP
    ...     run = await app.start(purchase_course, {"id": "p-1"}, run_id="purchase-p-1")
    ...     print(await run.result())
    """

    def __init__(
        self,
        name: str,
        database: str | Store | None = None,
        *,
        clock: Clock | None = None,
        poll_interval: timedelta = timedelta(milliseconds=200),
        lease: timedelta = timedelta(seconds=15),
        max_concurrent_runs: int = 10_000,
        hooks: Sequence[Hooks] = (),
        tune_gc: bool = False,
        step_threads: int = 32,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_history: int = DEFAULT_MAX_HISTORY,
        alert_interval: timedelta = alerts.DEFAULT_ALERT_INTERVAL,
        tracer_provider: Any = None,
    ) -> None:
        self.name = name
        self.tracer_provider = tracer_provider  # OpenTelemetry's; None: the global one
        self.max_payload_bytes = check_payload_limit(max_payload_bytes)
        if not isinstance(max_history, int) or isinstance(max_history, bool) or max_history < 10:
            raise ValueError(f"max_history must be an integer of at least 10, got {max_history!r}")
        self.max_history = max_history
        self.database: str | None = None
        self.store: Store
        self._clock = clock
        self.use_database(database)
        self.registry = Registry()
        self.hooks: list[Hooks] = list(hooks)
        self._poll_interval = poll_interval
        self._lease = lease
        self._max_concurrent_runs = max_concurrent_runs
        self.tune_gc = tune_gc
        if not isinstance(step_threads, int) or isinstance(step_threads, bool) or step_threads < 1:
            raise ValueError(f"step_threads must be a positive integer, got {step_threads!r}")
        self._step_threads = step_threads
        if not isinstance(alert_interval, timedelta) or alert_interval <= timedelta(0):
            raise ValueError(f"alert_interval must be a positive timedelta, got {alert_interval!r}")
        self._alert_interval = alert_interval
        self._engine: Engine | None = None

    def use_database(self, database: str | Store | None) -> None:
        """Point the app at another database (a URL or a ``Store``); only while stopped."""
        if getattr(self, "_engine", None) is not None:
            raise NotRunning(f"app {self.name!r} is running; stop it before changing database")
        if isinstance(database, str) or database is None:
            self.database = database_url(database)
            self.store = open_store(self.database)
        else:
            self.database = None
            self.store = database
        self._client = self._new_client()

    def _new_client(self) -> AsyncClient:
        return AsyncClient(
            self.store,
            clock=self._clock,
            max_payload_bytes=self.max_payload_bytes,
            source=f"/{self.name}",
        )

    def set_max_concurrent_runs(self, limit: int) -> None:
        """Cap the runs this app's engine holds in flight at once; only while stopped."""
        if getattr(self, "_engine", None) is not None:
            raise NotRunning(f"app {self.name!r} is running; stop it before changing its limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"max_concurrent_runs must be a positive integer, got {limit!r}")
        self._max_concurrent_runs = limit

    def set_lease(self, lease: timedelta) -> None:
        """How long this app's worker may stay silent before others take its runs over
        (it heartbeats every third of it); only while stopped."""
        if getattr(self, "_engine", None) is not None:
            raise NotRunning(f"app {self.name!r} is running; stop it before changing its lease")
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ValueError(f"lease must be a positive timedelta, got {lease!r}")
        self._lease = lease

    # -- registration ----------------------------------------------------------------------

    @overload
    def workflow(self, fn: Callable[P, Awaitable[R]]) -> Workflow[P, R]: ...
    @overload
    def workflow(
        self,
        *,
        name: str | None = None,
        timeout: timedelta | None = None,
        on: str | Mapping[str, Any] | None = None,
        stuck_after: timedelta | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]: ...

    def workflow(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        timeout: timedelta | None = None,
        on: str | Mapping[str, Any] | None = None,
        stuck_after: timedelta | None = None,
    ) -> Any:
        """Register an ``async def`` as a workflow: ``@app.workflow`` or
        ``@app.workflow(name=..., timeout=timedelta(...), on=pattern)``.

        With ``on`` (a pattern, as for ``@app.on``) every matching event starts one run,
        idempotently per event: its id is derived from the event, it gets the event (a
        ``legato.Event``) as its argument, and its correlation id is the event's.
        ``stuck_after`` (an hour unless given): a run of it that makes no progress for
        that long raises a ``stuck_run`` alert (see docs/alerting.md).
        """

        def register(f: Callable[..., Any]) -> Workflow[..., Any]:
            subscription = None
            workflow: Workflow[..., Any] = Workflow(
                f, name=name, timeout=timeout, stuck_after=stuck_after
            )
            if on is not None:
                subscription = trigger_subscription(workflow.name, on)
                workflow.trigger = subscription.pattern
            self.registry.add_workflow(workflow)
            if subscription is not None:
                self.registry.add_subscription(subscription)
            return workflow

        return register(fn) if fn is not None else register

    def on(
        self,
        pattern: str | Mapping[str, Any],
        *,
        name: str | None = None,
        retry: Retry | None = None,
        ordered_by: str | None = None,
        timeout: timedelta | None = None,
    ) -> Callable[[Callable[[Event], Any]], Callable[[Event], Any]]:
        """Subscribe a ``def`` or ``async def`` taking a ``legato.Event`` to the events that
        match ``pattern``: a type (``"purchase.*"``) or an EventBridge-style content filter.

        The subscription (``name``: the function's name unless given) is durable: every
        matching event committed after it was registered is delivered at least once, with
        ``retry`` (5 attempts by default) and then a dead letter. With ``ordered_by`` (an
        attribute, ``"subject"``, or a data path, ``"data.order_id"``) events of one key
        are delivered one at a time, in order; different keys at once.
        """

        def register(fn: Callable[[Event], Any]) -> Callable[[Event], Any]:
            self.registry.add_subscription(
                handler_subscription(
                    fn, pattern, name=name, retry=retry, ordered_by=ordered_by, timeout=timeout
                )
            )
            return fn

        return register

    def expect(
        self,
        name: str,
        *,
        after: str | Mapping[str, Any],
        then: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
        within: timedelta,
        key: str = "correlationid",
        unless: str | Mapping[str, Any] | None = None,
        start: str | Workflow[..., Any] | None = None,
        early: timedelta | None = None,
    ) -> None:
        """Expect events matching ``then`` (one pattern, or a list: all of them) to follow
        each event matching ``after`` for the same ``key`` within ``within``, unless one
        matching ``unless`` comes first.

        A deadline that passes publishes ``legato.expectation.violated`` and starts the
        ``start`` workflow (with that event), once; what comes late publishes
        ``legato.expectation.recovered``. An awaited event up to ``early`` (``within``
        unless given) before its trigger counts too. See docs/expectations.md.
        """
        self.registry.add_expectation(
            expectations.define(
                name,
                after=after,
                then=then,
                within=within,
                key=key,
                unless=unless,
                start=start.name if isinstance(start, Workflow) else start,
                early=early,
            )
        )

    @overload
    def step(self, fn: Callable[P, R]) -> Step[P, R]: ...
    @overload
    def step(
        self,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | None = None,
    ) -> Callable[[Callable[P, R]], Step[P, R]]: ...

    def step(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | None = None,
    ) -> Any:
        """Register a ``def`` or ``async def`` as a durable step: ``@app.step`` or
        ``@app.step(name=..., retry=legato.Retry(...), timeout=timedelta(...))``.

        Inside a workflow a call is recorded and never re-run once recorded; outside
        any workflow it is a plain function call.
        """

        def register(f: Callable[..., Any]) -> Step[..., Any]:
            step: Step[..., Any] = Step(f, name=name, retry=retry, timeout=timeout)
            self.registry.add_step(step)
            return step

        return register(fn) if fn is not None else register

    # -- the engine ------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True between ``__aenter__`` and ``__aexit__`` (or while ``run_worker`` runs)."""
        return self._engine is not None and self._engine.running

    def _running_engine(self) -> Engine:
        if self._engine is None or not self._engine.running:
            raise NotRunning(
                f"app {self.name!r} is not running: use `async with app:` (or app.run_worker())"
                " to run the engine here, or legato.AsyncClient to start runs for a worker"
            )
        return self._engine

    async def __aenter__(self) -> App:
        if self._engine is not None and self._engine.running:
            raise NotRunning(f"app {self.name!r} is already running")
        engine = Engine(
            self.registry,
            self.store,
            clock=self._clock,
            hooks=self.hooks,
            poll_interval=self._poll_interval,
            alert_interval=self._alert_interval,
            tracer_provider=self.tracer_provider,
            lease=self._lease,
            max_concurrent_runs=self._max_concurrent_runs,
            tune_gc=self.tune_gc,
            step_threads=self._step_threads,
            max_payload_bytes=self.max_payload_bytes,
            max_history=self.max_history,
            name=self.name,
        )
        await engine.start()
        self._engine = engine
        return self

    async def __aexit__(self, *exc: object) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.stop()
            self._client = self._new_client()

    async def run_worker(self) -> None:
        """Run the engine until SIGINT/SIGTERM or cancellation (what ``legato worker`` calls).

        Raises ``DatabaseMoved`` (after stopping) if the database file was deleted or
        replaced while the engine ran: going on would lose every write.
        """
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        fatal: BaseException | None = None
        try:
            async with self:
                engine = self._running_engine()
                waits = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(engine.fatal.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
                fatal = engine.fatal_error
                log.info("worker for app %r stopping: runs in flight are handed back", self.name)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info("worker for app %r stopped", self.name)
        if fatal is not None:
            raise fatal

    # -- runs ------------------------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[..., Any] | str | Callable[..., Any],
        *args: Any,
        run_id: str | None = None,
    ) -> RunHandle:
        """Start a run of ``workflow`` (the decorated function or its name) and return a handle.

        A ``run_id`` that exists returns a handle on that run and creates nothing; if it
        belongs to another workflow, ``RunAlreadyExists`` is raised.
        """
        engine = self._running_engine()
        if run_id is not None:
            check_run_id(run_id)
        definition = self.registry.workflow(workflow)  # type: ignore[arg-type]  # checked there
        run_id = await engine.start_run(definition, args, run_id)
        return RunHandle(self, run_id)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run."""
        return RunHandle(self, run_id)

    async def _outcome(self, run_id: str, timeout: float | None) -> Outcome:
        engine = self._engine
        if engine is None:
            return await poll_outcome(self.store, run_id, timeout)
        live = engine.live.get(run_id)
        if live is not None and live.done.done() and not live.done.cancelled():
            return live.done.result()
        # Resolved when the run ends here, or by the engine's upkeep when it sees the run
        # ended elsewhere (another worker, or before we asked).
        future = engine.outcome_future(run_id)
        if live is None:
            run = await self.store.get_run(run_id)
            if run is None:
                raise RunNotFound(run_id)
            outcome = Outcome.of(run)
            if outcome is not None:
                return outcome
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise TimeoutError(f"run {run_id!r} did not end within {timeout}s") from None

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send a signal to a run; it is kept until the run waits for it."""
        await self._client.signal(run_id, name, payload)
        if self._engine is not None:
            self._engine.signal_arrived(run_id)

    async def list_tasks(
        self,
        *,
        assignee: str | None = None,
        status: str | None = "open",
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Human tasks in the inbox, oldest first (open ones unless ``status`` says)."""
        return await self._client.list_tasks(
            assignee=assignee, status=status, run_id=run_id, limit=limit
        )

    async def get_task(self, task_id: str) -> Task:
        """One human task; raises ``TaskNotFound``."""
        return await self._client.get_task(task_id)

    async def claim_task(self, task_id: str, assignee: str) -> Task:
        """Take an open human task (see ``AsyncClient.claim_task``)."""
        return await self._client.claim_task(task_id, assignee)

    async def complete_task(self, task_id: str, response: Any, *, by: str | None = None) -> Task:
        """Answer a human task (validated against its form); its run continues. ``by``:
        who answered."""
        task = await self._client.complete_task(task_id, response, by=by)
        if self._engine is not None:
            self._engine.signal_arrived(task.run_id)
        return task

    async def cancel(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Cancel a run: stop it at its next call and compensate its completed steps."""
        engine = self._engine
        # The durable flag first: whoever executes the run next (here or elsewhere, now or
        # after a crash) carries the cancellation out.
        status = await self._client.cancel(run_id, by=by)
        if engine is not None and not engine.cancel_live(run_id, by):
            engine.poke()  # parked or blocked: made due, so claim it now
        return status

    async def resume(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Resume a ``blocked`` run after deploying code that matches its history."""
        return self._poked(await self._client.resume(run_id, by=by))

    async def retry(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Retry a ``failed`` run from its failed step (see ``AsyncClient.retry``)."""
        return self._poked(await self._client.retry(run_id, by=by))

    async def resume_compensation(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Compensate a run in ``compensation_failed`` again."""
        return self._poked(await self._client.resume_compensation(run_id, by=by))

    async def restart(
        self, run_id: str, *, new_run_id: str | None = None, by: str | None = None
    ) -> RunHandle:
        """Start an ended run again as a new run (see ``AsyncClient.restart``)."""
        fresh = await self._client.restart(run_id, new_run_id=new_run_id, by=by)
        self._poked(None)
        return RunHandle(self, fresh)

    def _poked(self, status: R) -> R:
        if self._engine is not None:
            self._engine.poke()  # claim the run now, if it is ours to run
        return status

    async def describe(self, run_id: str) -> RunDescription:
        """What step the run is on, what failed, what happens next."""
        return await self._client.describe(run_id)

    async def get_run(self, run_id: str) -> Run:
        """The stored run; raises ``RunNotFound``."""
        return await self._client.get_run(run_id)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        payloads: bool = True,
    ) -> list[Run]:
        """Runs, newest first; with ``payloads=False``, without their input and output."""
        return await self._client.list_runs(
            status=status, workflow=workflow, limit=limit, payloads=payloads
        )

    async def describe_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunDescription]:
        """``describe()`` of the newest runs, without input and output (see AsyncClient)."""
        return await self._client.describe_runs(status=status, workflow=workflow, limit=limit)

    async def list_workflows(self) -> list[str]:
        """Workflow names registered on this database (by this app or any other)."""
        return await self._client.list_workflows()

    async def list_workers(self) -> list[WorkerInfo]:
        """Worker processes registered on this database, with their last heartbeat."""
        return await self._client.list_workers()

    async def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for the run's output (see ``RunHandle.result``)."""
        return await RunHandle(self, run_id).result(timeout)

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """The run's raw history."""
        return await self._client.history(run_id)
