"""``legato.publish``, ``legato.request`` and ``legato.reply`` inside the engine.

From workflow code a publish is a durable call: its ``event_published`` record and the
event (with its deliveries) commit in one batch, and replay returns the recorded event
without publishing again. From a step or a handler it is a direct write that commits
before the call returns; its id is derived from the step call (or the delivery) and the
count of events published so far in that attempt, so a retried step or a redelivered
event publishes the same ids again, which the log de-duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from legato.bus.consumer import HandlerScope, decode_reply
from legato.bus.publishing import build_event, encode_event, new_event_op, publish, reply_ops
from legato.engine import waits
from legato.engine.journal import BatchOutcome
from legato.errors import DefinitionError, InvalidEvent
from legato.model import records
from legato.model.events import Event
from legato.model.waits import REPLY_SIGNAL_PREFIX
from legato.storage.base import NewEvent, NewSignal, Write

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution
    from legato.engine.worker import Engine


def run_source(engine: Engine, workflow: str) -> str:
    """The ``source`` of events a run of ``workflow`` publishes."""
    return f"/{engine.name}/{workflow}"


def _check_type(type: object) -> str:
    if not isinstance(type, str) or not type:
        raise InvalidEvent(f"an event type is a non-empty string, got {type!r}")
    return type


async def from_workflow(
    ex: RunExecution,
    type: str,
    data: Any,
    subject: str | None,
    key: str | None,
    *,
    reply: Sequence[str] | None = None,
    timeout: timedelta | None = None,
    causation: Event | None = None,
) -> Event:
    """Publish from workflow code (a request when ``reply`` is given), durably, once.

    ``causation`` (``legato.reply``) is the event this one answers."""
    _check_type(type)
    timeout_s = None if timeout is None else waits.seconds_of(timeout, "request timeout")
    ex.check_interrupt()
    engine = ex.engine
    call = ex.next_key()
    record = ex.replayed(call, "publish" if reply is None else "request", type)
    published = None if record is None else record.published
    if published is not None:
        event = _event(
            ex, type, data, subject, key, published.event_id, published.time, causation, False
        )
        event.to_dict()  # the same arguments as the first time, or the call fails the same
    else:
        now = engine.clock.time()
        event = _event(ex, type, data, subject, key, f"{ex.run_id}:{call}", now, causation)
        obj, payload = encode_event(event, engine.max_payload_bytes)
        timeout_at = None if timeout_s is None else now + timeout_s
        published = records.EventPublished(
            call,
            type,
            event.id,
            event.source,
            now,
            None if reply is None else list(reply),
            timeout_at,
        )
        op = new_event_op(
            event,
            obj,
            payload,
            engine.router,
            now,
            published_by=ex.run_id,
            call_key=call,
            reply_types=reply,
            owner_of=engine.consumer.owner_of,
        )
        requests = await engine.store.find_events(event.causationid) if event.causationid else []
        ops: list[Write] = [ex.record(published), op, *reply_ops(event, obj, requests, now)]
        if reply is not None:
            await ex.commit(*ops)
            committed(engine, ops, event, obj)
        else:
            # Not awaited: nothing sees the event before its batch commits (deliveries
            # start after it), and a crash before then replays this call, which publishes
            # the same id again. The run's next record joins the same batch or a later
            # one, so a publish that is the run's last call costs no commit of its own.
            batch = engine.journal.submit(*ops)
            batch.add_done_callback(_delivered(ex.run_id, engine, ops, event, obj))
    if reply is None:
        return event
    return await _await_reply(ex, call, type, event, published.timeout_at, timeout_s)


def committed(engine: Engine, ops: list[Write], event: Event, obj: Mapping[str, Any]) -> None:
    """A publish committed: deliver what it wrote for this worker at once, and wake a run
    here that its reply answers (rather than at the next poll)."""
    for op in ops:
        if type(op) is NewEvent:
            engine.consumer.take(op, event, obj)
        elif type(op) is NewSignal:
            engine.signal_arrived(op.run_id)


def _delivered(
    run_id: str, engine: Engine, ops: list[Write], event: Event, obj: Mapping[str, Any]
) -> Callable[[asyncio.Future[BatchOutcome]], None]:
    """Once the publish's batch committed: see ``committed``."""

    def done(batch: asyncio.Future[BatchOutcome]) -> None:
        if not batch.cancelled() and run_id not in batch.result().failed:
            committed(engine, ops, event, obj)

    return done


def _event(
    ex: RunExecution,
    type: str,
    data: Any,
    subject: str | None,
    key: str | None,
    event_id: str,
    at: float,
    causation: Event | None,
    producer: bool = True,
) -> Event:
    """The event a run publishes: the same from the same call on every replay (which
    makes no producer span: nothing is published again).

    Its causation is the event it answers (``legato.reply``), else the event that started
    the run (a trigger's), so the flow of a correlation id links them."""
    causationid = None
    if causation is not None:
        causationid = causation.id
    elif (
        (ex.workflow.trigger is not None or ex.workflow.started_by_expectation)
        and ex.args
        and isinstance(ex.args[0], Mapping)
    ):
        causationid = ex.args[0].get("id")
    return build_event(
        type,
        data,
        source=run_source(ex.engine, ex.workflow.name),
        id=event_id,
        subject=subject,
        key=key,
        correlationid=ex.correlation_id,
        causationid=causationid,
        recorded_at=at,
        producer=ex.engine.tracer if producer else None,
    )


async def _await_reply(
    ex: RunExecution,
    call: str,
    type: str,
    request: Event,
    timeout_at: float | None,
    timeout_s: float | None,
) -> Event:
    payload = await waits.await_signal(
        ex,
        call,
        type,
        REPLY_SIGNAL_PREFIX + request.id,
        timeout_at,
        timeout_s,
        what=f"a reply to request {request.id!r} ({type})",
    )
    return decode_reply(payload)


def check_reply_types(reply: object) -> tuple[str, ...]:
    """Validate ``legato.request``'s ``reply``: one type or a non-empty list of them."""
    types = (reply,) if isinstance(reply, str) else reply
    if (
        not isinstance(types, tuple | list)
        or not types
        or not all(isinstance(t, str) and t for t in types)
    ):
        raise DefinitionError(
            "legato.request needs reply= the event type (or a non-empty list of types) that "
            f"answers it, got {reply!r}"
        )
    return tuple(types)


async def direct(
    engine: Engine,
    event: Event,
    *,
    published_by: str | None = None,
    call_key: str | None = None,
) -> Event:
    """Publish ``event`` now, outside workflow code (a step, a handler, ``app.publish``):
    it commits in the engine's next batch, and this returns once it has."""

    def delivered(ops: list[Write], obj: Mapping[str, Any]) -> None:
        committed(engine, ops, event, obj)

    async def write(ops: list[Write]) -> None:
        await engine.journal.commit(ops, ops[0].run_id)

    engine.engine_io += 1  # FakeClock.settle waits for it: it reads and writes the store
    try:
        return await publish(
            engine.store,
            engine.router,
            event,
            write,
            at=engine.clock.time(),
            limit=engine.max_payload_bytes,
            owner_of=engine.consumer.owner_of,
            published_by=published_by,
            call_key=call_key,
            after=delivered,
        )
    finally:
        engine.engine_io -= 1
        if not engine.engine_io:
            engine.note_quiet()


async def from_step(
    ex: RunExecution,
    step_key: str,
    count: int,
    type: str,
    data: Any,
    subject: str | None,
    key: str | None,
) -> Event:
    """Publish from inside a step: the run's correlation, an id from the step call."""
    engine = ex.engine
    event = build_event(
        _check_type(type),
        data,
        source=run_source(engine, ex.workflow.name),
        id=f"{step_key}:{count}",
        subject=subject,
        key=key,
        correlationid=ex.correlation_id,
        recorded_at=engine.clock.time(),
        producer=engine.tracer,
    )
    # The step's call key in the run ("2", or "2:compensate"), as a workflow publish has its own.
    call = step_key.removeprefix(f"{ex.run_id}:")
    return await direct(engine, event, published_by=ex.run_id, call_key=call)


async def from_handler(
    scope: HandlerScope,
    type: str,
    data: Any,
    subject: str | None,
    key: str | None,
    *,
    causation: Event | None = None,
) -> Event:
    """Publish from inside a handler: the handled event's correlation, and its id as the
    causation (or ``causation``'s, for ``legato.reply``)."""
    scope.published += 1
    info = scope.info
    handled = info.event
    cause = causation or handled
    event = build_event(
        _check_type(type),
        data,
        source=f"/{scope.engine.name}/{info.subscription}",
        id=f"{info.idempotency_key}:{scope.published}",
        subject=subject,
        key=key,
        correlationid=cause.correlationid or cause.id,
        causationid=cause.id,
        recorded_at=scope.engine.clock.time(),
        producer=scope.engine.tracer,
    )
    return await direct(scope.engine, event)


def reply_attributes(request: Event) -> dict[str, Any]:
    """What a reply to ``request`` carries: its correlation, and its id as the causation."""
    if not isinstance(request, Event):
        raise DefinitionError(f"legato.reply answers a legato.Event, got {request!r}")
    return {"correlationid": request.correlationid or request.id, "causationid": request.id}
