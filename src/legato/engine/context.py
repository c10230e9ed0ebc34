"""What workflow and step code may ask for: ``legato.now()``, ``legato.step_key()``, ...

The engine sets context variables around workflow tasks and step attempts; these
functions read them, so user code needs no handle on the engine.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from legato.bus.consumer import current_handler
from legato.engine import publishing, waits
from legato.errors import OutsideWorkflow
from legato.model.events import Event

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution

current_execution: ContextVar[RunExecution | None] = ContextVar("legato_execution", default=None)
current_step_key: ContextVar[str | None] = ContextVar("legato_step_key", default=None)
# The step (its name) and the attempt running: log records inside a step carry them.
current_attempt: ContextVar[tuple[str, int] | None] = ContextVar("legato_attempt", default=None)
# Events published so far by the step attempt running (their ids count from it).
current_step_publishes: ContextVar[list[int] | None] = ContextVar(
    "legato_step_publishes", default=None
)


def _execution(what: str) -> RunExecution:
    execution = current_execution.get()
    if execution is None or current_step_key.get() is not None:
        raise OutsideWorkflow(
            f"legato.{what}() can only be called from workflow code (not from a step or "
            "outside a run)"
        )
    return execution


def now() -> datetime:
    """The current time, recorded so replay sees the same value (workflow code only)."""
    ts = _execution("now").record_value("now", None)
    assert isinstance(ts, float)
    return datetime.fromtimestamp(ts, UTC)


def uuid() -> _uuid.UUID:
    """A random UUID, recorded so replay sees the same value (workflow code only)."""
    value = _execution("uuid").record_value("uuid", None)
    return _uuid.UUID(str(value))


def random() -> float:
    """A random float in [0, 1), recorded so replay sees the same value (workflow code only)."""
    value = _execution("random").record_value("random", None)
    assert isinstance(value, float)
    return value


async def sleep(duration: timedelta) -> None:
    """Wait ``duration`` (a durable timer: the run survives restarts while it sleeps)."""
    execution = _execution("sleep")
    seconds = waits.seconds_of(duration, "legato.sleep")
    await waits.sleep_until(execution, execution.engine.clock.time() + seconds)


async def sleep_until(when: datetime) -> None:
    """Wait until ``when`` (an aware datetime), durably."""
    execution = _execution("sleep_until")
    await waits.sleep_until(execution, waits.timestamp_of(when, execution.engine.clock.time()))


async def wait_for_signal(name: str, timeout: timedelta | None = None) -> Any:
    """Wait for the next signal ``name`` sent to this run and return its payload.

    Signals sent before the run waits are kept and delivered in order; each is consumed
    once. Raises ``legato.errors.WaitTimeout`` after ``timeout`` (catch it to escalate).
    """
    return await waits.wait_for_signal(_execution("wait_for_signal"), name, timeout)


async def human_task(
    name: str,
    data: Any = None,
    *,
    assignee: str | None = None,
    form: dict[str, Any] | None = None,
    timeout: timedelta | None = None,
) -> Any:
    """Put a task in the inbox and wait for a person's response (validated by ``form``).

    Raises ``legato.errors.WaitTimeout`` after ``timeout``; the task then expires.
    """
    return await waits.human_task(_execution("human_task"), name, data, assignee, form, timeout)


async def child(workflow: Any, *args: Any, run_id: str | None = None) -> Any:
    """Run ``workflow`` (a registered workflow or its name) as a child and return its result.

    Raises ``legato.errors.ChildFailed`` if the child does not complete. A parent that fails
    or is cancelled cancels its children that are still running.
    """
    execution = _execution("child")
    definition = execution.engine.registry.workflow(workflow)
    return await waits.child(execution, definition, args, run_id)


class ContinueAsNew(BaseException):
    """Engine control flow: the workflow asked to continue as a fresh run.

    A ``BaseException`` so a workflow's ``except Exception`` cannot swallow it.
    """

    def __init__(self, args: tuple[Any, ...]) -> None:
        super().__init__("continue_as_new")
        self.args_ = args


def continue_as_new(*args: Any) -> NoReturn:
    """End this run and continue as a fresh run of the same workflow, given ``args``.

    The new run starts with an empty history, so a workflow that loops for ever (poll,
    wait, act, repeat) keeps its history short and its replay fast. It runs under a
    linked id (``order-7`` continues as ``order-7~1``, then ``order-7~2``); this run
    ends ``completed``, its history ending with ``run_continued``, and ``result()`` on
    a handle for it follows the chain to the last run's result. Workflow code only; not
    in a child run (yet).

    >>> @app.workflow                                       # doctest: +SKIP
    ... async def poll_inventory(cursor: int) -> None:
    ...     cursor = await sync_batch(cursor)
    ...     await legato.sleep(timedelta(minutes=5))
    ...     legato.continue_as_new(cursor)
    """
    _execution("continue_as_new")
    raise ContinueAsNew(args)


async def publish(
    type: str, data: Any = None, *, subject: str | None = None, key: str | None = None
) -> Event:
    """Publish an event and return it as stored; ``key`` is its ``partitionkey``.

    In workflow code it is a durable call: the event commits with the run's record of
    it, and replay returns it without publishing again. In a step or an ``@app.on``
    handler it commits before this returns, with an id derived from the step call (or
    the delivery), so a retry publishes the same event, which the log de-duplicates.
    The event carries the run's correlation id (in a handler: the handled event's, and
    its id as ``causationid``).
    """
    execution = current_execution.get()
    step = current_step_key.get()
    if execution is not None and step is None:
        return await publishing.from_workflow(execution, type, data, subject, key)
    if execution is not None and step is not None:
        counter = current_step_publishes.get()
        if counter is None:  # pragma: no cover - every step attempt sets one
            counter = [0]
        counter[0] += 1
        return await publishing.from_step(execution, step, counter[0], type, data, subject, key)
    scope = current_handler.get()
    if scope is not None:
        return await publishing.from_handler(scope, type, data, subject, key)
    raise OutsideWorkflow(
        "legato.publish() is for workflow code, steps and @app.on handlers; elsewhere use "
        "app.publish() or legato.AsyncClient(...).publish()"
    )


async def request(
    type: str,
    data: Any = None,
    *,
    reply: str | Sequence[str],
    timeout: timedelta | None = None,
    subject: str | None = None,
    key: str | None = None,
) -> Event:
    """Publish a command event and wait, durably, for its reply (workflow code only).

    The reply is the first event of a type in ``reply`` whose ``causationid`` is this
    request's id (``legato.reply`` sets it). The run may be evicted while it waits and is
    resumed by replay; a reply that arrives before the run waits is kept. Raises
    ``legato.errors.WaitTimeout`` after ``timeout``.
    """
    types = publishing.check_reply_types(reply)
    execution = _execution("request")
    return await publishing.from_workflow(
        execution, type, data, subject, key, reply=types, timeout=timeout
    )


async def reply(
    request_event: Event,
    type: str,
    data: Any = None,
    *,
    subject: str | None = None,
    key: str | None = None,
) -> Event:
    """Answer ``request_event`` (a ``legato.request``): publish ``type`` with its
    correlation id and its id as ``causationid`` (from a handler or workflow code)."""
    publishing.reply_attributes(request_event)  # checks it is an event
    execution = current_execution.get()
    if execution is not None and current_step_key.get() is None:
        return await publishing.from_workflow(
            execution, type, data, subject, key, causation=request_event
        )
    scope = current_handler.get()
    if scope is not None:
        return await publishing.from_handler(
            scope, type, data, subject, key, causation=request_event
        )
    raise OutsideWorkflow(
        "legato.reply() is for @app.on handlers and workflow code; elsewhere publish with "
        "app.publish(type, data, causationid=request.id, correlationid=request.correlationid)"
    )


def run_id() -> str:
    """The id of the run this workflow or step code executes in."""
    execution = current_execution.get()
    if execution is None:
        raise OutsideWorkflow("legato.run_id() can only be called inside a run")
    return execution.run_id


def step_key() -> str:
    """A key unique per (run, step call) and stable across retries, crashes and recovery.

    Pass it to the service as an idempotency key so the step's effect happens once even
    though the step itself may run more than once.
    """
    key = current_step_key.get()
    if key is None:
        raise OutsideWorkflow("legato.step_key() can only be called inside a step")
    return key


if TYPE_CHECKING:
    from legato.engine.execution import _Branch

current_branch: ContextVar[_Branch | None] = ContextVar("legato_branch", default=None)
