"""``AsyncClient`` / ``Client``: start, cancel and inspect runs without an engine here.

A web handler or a script starts a run by workflow name; a ``legato worker`` elsewhere,
on the same database, executes it. The CLI is a thin layer over ``Client``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from legato import lifecycle
from legato.bus.clients import CLIENT_SOURCE, AsyncBusClient, BusClient
from legato.bus.flows import Flow, build_flow, runs_to_read
from legato.bus.publishing import Router
from legato.bus.visibility import AsyncVisibilityClient, VisibilityClient
from legato.errors import (
    DefinitionError,
    InvalidTaskResponse,
    RunAlreadyExists,
    RunError,
    RunFailed,
    RunFinished,
    RunNotFound,
    TaskClosed,
    TaskNotFound,
)
from legato.model import HistoryEvent, Run, RunStatus, Task, TaskStatus
from legato.model.deliveries import StoredEvent
from legato.model.description import RunDescription, describe_run
from legato.model.events import stored_arguments
from legato.model.ids import check_run_id, new_run_id
from legato.model.payloads import DEFAULT_MAX_PAYLOAD_BYTES, check_payload_limit, encode
from legato.model.runs import Outcome, continued_as
from legato.model.workers import WorkerInfo
from legato.observability import tracing
from legato.operations import AsyncOperationsClient, OperationsClient
from legato.runsearch import AsyncRunSearchClient, RunSearchClient
from legato.storage import database_url, open_store
from legato.storage.base import NewRun, Store
from legato.tokens import AsyncTokenClient, TokenClient

T = TypeVar("T")

_FLOW_PAGE = 1000


class TimeSource(Protocol):
    """Anything that tells the time as Unix seconds (an engine's clock, a fake one)."""

    def time(self) -> float:
        """Now, as Unix seconds."""
        ...


class _SystemTime:
    def time(self) -> float:
        return time.time()


class _RunSource(Protocol):
    async def _outcome(self, run_id: str, timeout: float | None) -> Outcome: ...
    async def describe(self, run_id: str) -> RunDescription: ...
    async def cancel(self, run_id: str) -> RunStatus: ...


_MAX_LISTED_EVENTS = 10_000
"""The most events of one run that ``describe`` lists."""


class RunHandle:
    """A handle on one run: wait for its result, describe it, cancel it."""

    def __init__(self, source: _RunSource, run_id: str) -> None:
        self._source = source
        self.run_id = run_id

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its output.

        Raises ``legato.errors.RunFailed`` (with ``status``, ``error_type``,
        ``error_message`` and ``step_name``) if it ended any other way than completed,
        and ``TimeoutError`` if ``timeout`` seconds pass first. A run that continued as
        new (``legato.continue_as_new``) is followed to the last run of its chain.
        """
        run_id = self.run_id
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            outcome = await self._source._outcome(run_id, left)
            successor = continued_as(outcome.output)
            if outcome.status is not RunStatus.COMPLETED or successor is None:
                break
            run_id = successor  # legato.continue_as_new: the chain's result is its last's
        if outcome.status is RunStatus.COMPLETED:
            return outcome.output
        error = outcome.error or {}
        raise RunFailed(
            run_id,
            outcome.status.value,
            error.get("type"),
            error.get("message"),
            error.get("step"),
        )

    async def describe(self) -> RunDescription:
        """What step the run is on, what failed, what happens next."""
        return await self._source.describe(self.run_id)

    async def cancel(self) -> RunStatus:
        """Cancel the run (its completed steps are compensated)."""
        return await self._source.cancel(self.run_id)

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"


async def poll_outcome(store: Store, run_id: str, timeout: float | None) -> Outcome:
    """Wait for a run to end by reading the store (the run executes elsewhere)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        run = await store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        outcome = Outcome.of(run)
        if outcome is not None:
            return outcome
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"run {run_id!r} is still {run.status.value} after {timeout}s")
        wait = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(wait)
        delay = min(delay * 2, 0.5)


class AsyncClient(
    AsyncBusClient,
    AsyncVisibilityClient,
    AsyncTokenClient,
    AsyncRunSearchClient,
    AsyncOperationsClient,
):
    """Start, cancel and inspect runs, and publish and inspect events, on a database, with
    no engine in this process.

    >>> async with legato.AsyncClient("sqlite:///legato.db") as client:  # doctest: +SKIP
    ...     run = await client.start("purchase_course", {"id": "p-1"}, run_id="p-1")
    """

    def __init__(
        self,
        database: str | Store | None = None,
        *,
        clock: TimeSource | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        source: str = CLIENT_SOURCE,
    ) -> None:
        self._router = Router()
        self._source = source
        if isinstance(database, str) or database is None:
            self.database: str | None = database_url(database)
            self._store: Store = open_store(self.database)
        else:
            self.database = None
            self._store = database
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self.max_payload_bytes = check_payload_limit(max_payload_bytes)
        # When signals, cancels and answers happen: the wall clock, or (in an App) the
        # engine's, so a run woken "now" is due by the clock its worker reads.
        self._time = (clock or _SystemTime()).time

    async def _open(self) -> Store:
        if not self._opened:
            # Many calls may come at once on a client nobody entered: one opens the store,
            # the others wait for it (each opening its own would leak connections).
            if self._open_lock is None:
                self._open_lock = asyncio.Lock()
            async with self._open_lock:
                if not self._opened:
                    await self._store.open()
                    self._opened = True
        return self._store

    async def check_database(self) -> None:
        """Open the database if not yet open; raise ``DatabaseMoved`` if its file was
        deleted or replaced since (one ``stat()``; nothing to check on a server database)."""
        await (await self._open()).check_location()

    async def close(self) -> None:
        """Close the database connection."""
        if self._opened:
            self._opened = False
            await self._store.close()

    async def __aenter__(self) -> AsyncClient:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, workflow: str, *args: Any, run_id: str | None = None) -> RunHandle:
        """Create a run of ``workflow`` (by name) for a worker to execute.

        The name need not be registered yet: the run waits ``pending`` until a worker
        serving that workflow starts ("deploy the web tier first"), and ``describe()``
        says so. An existing ``run_id`` of the same workflow returns a handle on that
        run; of another workflow, raises ``RunAlreadyExists``.
        """
        run_id, _ = await self.create_run(workflow, *args, run_id=run_id)
        return RunHandle(self, run_id)

    async def create_run(
        self, workflow: str, *args: Any, run_id: str | None = None
    ) -> tuple[str, float | None]:
        """``start``, saying what it did: the run id, and when the run was created (None
        when a run of that id and workflow existed already)."""
        if not isinstance(workflow, str) or not workflow or "\x00" in workflow:
            raise DefinitionError(f"workflow must be a non-empty name, got {workflow!r}")
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        payload = encode(
            stored_arguments(args),
            f"the arguments of workflow {workflow!r}",
            self.max_payload_bytes,
        )
        store = await self._open()
        run = NewRun(
            run_id,
            workflow,
            RunStatus.PENDING.value,
            payload,
            self._time(),
            None,
            None,
            traceparent=_traceparent(workflow),
        )
        conflicts = await store.write([run])
        existing = conflicts.get(run_id)
        if existing is not None and existing != workflow:
            raise RunAlreadyExists(run_id, existing, workflow)
        return run_id, None if existing is not None else run.created_at

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run (not checked until used)."""
        return RunHandle(self, run_id)

    async def get_run(self, run_id: str) -> Run:
        """The stored run; raises ``RunNotFound``."""
        run = await (await self._open()).get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def describe(self, run_id: str) -> RunDescription:
        """What step the run is on, what failed, what happens next."""
        run = await self.get_run(run_id)
        return describe_run(
            run,
            await self._store.history(run_id),
            workers=await self._store.list_workers(),
            workflows=await self._store.list_workflows(),
            events=await self._store.list_events(run_id=run_id, limit=_MAX_LISTED_EVENTS),
        )

    async def history(self, run_id: str) -> list[HistoryEvent]:
        """The run's raw history, oldest first."""
        await self.get_run(run_id)
        return await self._store.history(run_id)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        payloads: bool = True,
    ) -> list[Run]:
        """Runs, newest first; with ``payloads=False``, without their input and output."""
        if status is not None:
            RunStatus(status)  # a clear ValueError for a status that does not exist
        return await (await self._open()).list_runs(
            status=status, workflow=workflow, limit=limit, payloads=payloads
        )

    async def describe_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunDescription]:
        """``describe()`` of the newest runs, in a few reads whatever their number.

        The descriptions carry no ``input`` or ``output``: a listing does not load every
        run's arguments and result (``describe(run_id)`` of one run does).
        """
        runs = await self.list_runs(status=status, workflow=workflow, limit=limit, payloads=False)
        store = self._store
        histories = await store.histories([run.run_id for run in runs]) if runs else {}
        workers = await store.list_workers()
        workflows = await store.list_workflows()
        return [
            describe_run(run, histories.get(run.run_id, []), workers=workers, workflows=workflows)
            for run in runs
        ]

    async def flow(self, correlation_id: str) -> Flow:
        """What happened for ``correlation_id``: every event of the flow, each subscriber's
        delivery of it, the runs they started or name (those still stored) and the
        expectations the flow opened, as a tree from its first events."""
        store = await self._open()
        events: list[StoredEvent] = []
        while True:
            after = events[-1].seq if events else 0
            page = await store.list_events(
                correlation_id=correlation_id, after_seq=after, limit=_FLOW_PAGE
            )
            events += page
            if len(page) < _FLOW_PAGE:
                break
        deliveries = {s.seq: await store.deliveries(s.seq) for s in events}
        runs: dict[str, Run] = {}
        for run_id in runs_to_read(events, deliveries):
            run = await store.get_run(run_id)
            if run is not None:  # else shown without a status: not created yet, or gone
                runs[run_id] = run
        expected = await store.list_expectations(correlation_id=correlation_id, limit=_FLOW_PAGE)
        return build_flow(correlation_id, events, deliveries, runs, expected)

    async def list_workflows(self) -> list[str]:
        """Workflow names registered on this database."""
        return await (await self._open()).list_workflows()

    async def list_workers(self) -> list[WorkerInfo]:
        """Worker processes registered on this database, with their last heartbeat."""
        return await (await self._open()).list_workers()

    async def runs_owned(self, most: int = 100_000) -> tuple[Counter[str], bool]:
        """How many unfinished runs each worker holds, and whether the counts are whole
        (False when a status has ``most`` runs or more: the counts are floors)."""
        store = await self._open()
        counts: Counter[str] = Counter()
        whole = True
        for status in (s for s in RunStatus if not s.is_terminal):
            runs = await store.list_runs(status=status.value, limit=most, payloads=False)
            whole = whole and len(runs) < most
            counts.update(run.owner for run in runs if run.owner is not None)
        return counts, whole

    async def cancel(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Cancel a run: at once if no worker has taken it, else by its worker. ``by``:
        who asked, for its history."""
        run = await lifecycle.request_cancel(await self._open(), run_id, self._time(), by)
        if run is None:
            raise RunNotFound(run_id)
        return run.status

    async def resume(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Resume a ``blocked`` run after deploying code that matches its history.

        A worker replays it again; if it still diverges, it is blocked again. ``by``: who
        did it, for its history. Raises ``RunNotFound``, or ``RunError`` if the run is not
        blocked.
        """
        run = await lifecycle.resume_blocked(await self._open(), run_id, self._time(), by)
        if run is None:
            raise RunNotFound(run_id)
        if run.status is not RunStatus.RUNNING:
            raise RunError(
                f"run {run_id!r} is {run.status.value}, not blocked; only a "
                "blocked run can be resumed",
                run_id=run_id,
            )
        return run.status

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send a signal to a run; it is kept (in order) until the run waits for it.

        Raises ``RunNotFound`` for an unknown run and ``RunFinished`` for one that ended.
        """
        if not isinstance(name, str) or not name or name.startswith("__") or "\x00" in name:
            raise DefinitionError(
                "signal names are non-empty strings not starting with '__' (and without NUL), "
                f"got {name!r}"
            )
        data = encode(payload, f"the payload of signal {name!r}", self.max_payload_bytes)
        store = await self._open()
        run, sent = await lifecycle.send_signal(store, run_id, name, data, self._time())
        if sent:
            return
        if run is None:
            raise RunNotFound(run_id)
        raise RunFinished(run_id, run.status.value, "more signals")

    async def list_tasks(
        self,
        *,
        assignee: str | None = None,
        status: str | None = "open",
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Human tasks, oldest first (open ones unless ``status`` says otherwise)."""
        if status is not None:
            TaskStatus(status)  # a clear ValueError for a status that does not exist
        return await (await self._open()).list_tasks(
            status=status, assignee=assignee, run_id=run_id, limit=limit
        )

    async def get_task(self, task_id: str) -> Task:
        """One human task; raises ``TaskNotFound``."""
        task = await (await self._open()).get_task(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def complete_task(self, task_id: str, response: Any, *, by: str | None = None) -> Task:
        """Answer a human task; its run continues with ``response``. ``by``: who answered
        (the task's ``completed_by``).

        The response must match the task's form (``InvalidTaskResponse`` otherwise, and
        the task stays open); a task is completed once (``TaskClosed`` the second time).
        """
        task = await self.get_task(task_id)
        if task.status is not TaskStatus.OPEN:
            raise TaskClosed(task_id, task.status.value)
        if task.form is not None:
            import jsonschema  # here: it costs 0.1 s to import, and few commands need it

            error = jsonschema.exceptions.best_match(
                jsonschema.validators.validator_for(task.form)(task.form).iter_errors(response)
            )
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                raise InvalidTaskResponse(
                    task_id, f"{error.message}" + (f" (at {where})" if where else "")
                )
        data = encode(response, f"the response to task {task_id!r}", self.max_payload_bytes)
        done, changed = await lifecycle.complete_task(self._store, task_id, data, self._time(), by)
        if done is None:
            raise TaskNotFound(task_id)
        if not changed:
            raise TaskClosed(task_id, done.status.value)
        return done

    async def _outcome(self, run_id: str, timeout: float | None) -> Outcome:
        return await poll_outcome(await self._open(), run_id, timeout)

    async def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for the run's output (see ``RunHandle.result``)."""
        return await RunHandle(self, run_id).result(timeout)


class SyncRunHandle:
    """The blocking twin of ``RunHandle``: what ``Client.start`` and ``Client.handle`` return.

    It needs no event loop of yours; its calls go through the ``Client`` that made it.
    """

    def __init__(self, client: Client, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its output (see ``RunHandle.result``)."""
        return self._client.result(self.run_id, timeout)

    def describe(self) -> RunDescription:
        """What step the run is on, what failed, what happens next."""
        return self._client.describe(self.run_id)

    def cancel(self) -> RunStatus:
        """Cancel the run (its completed steps are compensated)."""
        return self._client.cancel(self.run_id)

    def __repr__(self) -> str:
        return f"<SyncRunHandle {self.run_id!r}>"


class Client(BusClient, VisibilityClient, TokenClient, RunSearchClient, OperationsClient):
    """The blocking twin of ``AsyncClient``, for scripts and the CLI: same methods."""

    _async: AsyncClient

    def __init__(
        self,
        database: str | Store | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        source: str = CLIENT_SOURCE,
    ) -> None:
        self._async = AsyncClient(database, max_payload_bytes=max_payload_bytes, source=source)
        self.database = self._async.database
        self._runner = asyncio.Runner()

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self._runner.run(fn(*args, **kwargs))  # type: ignore[arg-type]  # an awaitable

    def check_database(self) -> None:
        """Open the database if not yet open; raise ``DatabaseMoved`` if its file was
        deleted or replaced since."""
        self._call(self._async.check_database)

    def close(self) -> None:
        """Close the database connection."""
        try:
            self._call(self._async.close)
        finally:
            self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, workflow: str, *args: Any, run_id: str | None = None) -> SyncRunHandle:
        """Create a run of ``workflow`` for a worker to execute (see ``AsyncClient.start``)."""
        return SyncRunHandle(
            self, self._call(self._async.start, workflow, *args, run_id=run_id).run_id
        )

    def create_run(
        self, workflow: str, *args: Any, run_id: str | None = None
    ) -> tuple[str, float | None]:
        """``start``, saying what it did (see ``AsyncClient.create_run``)."""
        return self._call(self._async.create_run, workflow, *args, run_id=run_id)

    def handle(self, run_id: str) -> SyncRunHandle:
        """A handle on an existing run (not checked until used)."""
        return SyncRunHandle(self, run_id)

    def get_run(self, run_id: str) -> Run:
        """The stored run; raises ``RunNotFound``."""
        return self._call(self._async.get_run, run_id)

    def describe(self, run_id: str) -> RunDescription:
        """What step the run is on, what failed, what happens next."""
        return self._call(self._async.describe, run_id)

    def history(self, run_id: str) -> list[HistoryEvent]:
        """The run's raw history, oldest first."""
        return self._call(self._async.history, run_id)

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        payloads: bool = True,
    ) -> list[Run]:
        """Runs, newest first; with ``payloads=False``, without their input and output."""
        return self._call(
            self._async.list_runs,
            status=status,
            workflow=workflow,
            limit=limit,
            payloads=payloads,
        )

    def describe_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunDescription]:
        """``describe()`` of the newest runs, without input and output (see AsyncClient)."""
        return self._call(self._async.describe_runs, status=status, workflow=workflow, limit=limit)

    def flow(self, correlation_id: str) -> Flow:
        """What happened for ``correlation_id`` (see ``AsyncClient.flow``)."""
        return self._call(self._async.flow, correlation_id)

    def list_workflows(self) -> list[str]:
        """Workflow names registered on this database."""
        return self._call(self._async.list_workflows)

    def list_workers(self) -> list[WorkerInfo]:
        """Worker processes registered on this database, with their last heartbeat."""
        return self._call(self._async.list_workers)

    def runs_owned(self, most: int = 100_000) -> tuple[Counter[str], bool]:
        """How many unfinished runs each worker holds (see ``AsyncClient.runs_owned``)."""
        return self._call(self._async.runs_owned, most)

    def cancel(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Cancel a run (``by``: who asked)."""
        return self._call(self._async.cancel, run_id, by=by)

    def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for the run's output; raises ``RunFailed`` if it did not complete."""
        return self._call(self._async.result, run_id, timeout)

    def resume(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Resume a blocked run (see ``AsyncClient.resume``)."""
        return self._call(self._async.resume, run_id, by=by)

    def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send a signal to a run."""
        self._call(self._async.signal, run_id, name, payload)

    def list_tasks(
        self,
        *,
        assignee: str | None = None,
        status: str | None = "open",
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Human tasks, oldest first."""
        return self._call(
            self._async.list_tasks, assignee=assignee, status=status, run_id=run_id, limit=limit
        )

    def get_task(self, task_id: str) -> Task:
        """One human task."""
        return self._call(self._async.get_task, task_id)

    def complete_task(self, task_id: str, response: Any, *, by: str | None = None) -> Task:
        """Answer a human task (``by``: who answered)."""
        return self._call(self._async.complete_task, task_id, response, by=by)


def _traceparent(workflow: str) -> str | None:
    """The trace context of a run a client starts (the global provider's, if it traces)."""
    chosen = tracing.tracer()
    return None if chosen is None else tracing.new_run(chosen, workflow)
