"""Publishing: an event becomes a row of the log and one delivery per matching subscription,
in the transaction of whatever caused it (the outbox).

Which subscriptions an event goes to is decided here, by the ``Router``, from the registry
stored on the database (every app registers its subscriptions there, so a publisher that
serves none of them still routes to all). The write names the registry version it routed
by; if the registry moved meanwhile the store refuses it and the publisher routes again.
A reply (an event whose ``causationid`` names a request a run awaits) also carries the
signal that wakes that run, in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from legato.bus.subscriptions import ordering_key
from legato.errors import ConcurrencyConflict, InvalidEvent
from legato.lifecycle import signal_ops
from legato.model.deliveries import StoredEvent, SubscriptionInfo
from legato.model.events import Event
from legato.model.patterns import Pattern, compile_pattern
from legato.model.payloads import DEFAULT_MAX_PAYLOAD_BYTES
from legato.model.waits import REPLY_SIGNAL_PREFIX
from legato.observability import tracing
from legato.storage.base import NewDelivery, NewEvent, Store, Write

log = logging.getLogger(__name__)

ROUTE_ATTEMPTS = 20
"""Publishes refused for a stale registry before giving up (each means it changed again)."""

OwnerOf = Callable[[str], str | None]
"""Which worker a new delivery to a subscription is claimed by as it is written (or None)."""


class Router:
    """The subscriptions an event goes to, by the registry this database holds."""

    def __init__(self) -> None:
        # (version, routes), replaced whole: a publish on a thread (the async outbox) may
        # load a registry while the loop routes with the one before.
        self._table: tuple[int | None, list[tuple[str, Pattern, str | None]]] = (None, [])

    @property
    def version(self) -> int | None:
        """The registry version the routes are from (None until one was read)."""
        return self._table[0]

    @property
    def is_loaded(self) -> bool:
        """True once a registry was read."""
        return self.version is not None

    def load(self, version: int, subscriptions: Sequence[SubscriptionInfo]) -> None:
        """Take the registry as read from the database."""
        if version == self.version:
            return
        routes = []
        for sub in subscriptions:
            try:
                pattern = compile_pattern(sub.pattern)
            except Exception as exc:  # written by another version: route around it, loudly
                log.error("subscription %r has a pattern this version cannot use: %s", sub, exc)
                continue
            routes.append((sub.name, pattern, sub.ordered_by))
        self._table = (version, routes)

    async def refresh(self, store: Store) -> None:
        """Read the registry again if it moved (one small read when it did not)."""
        if self.version is None or await store.registry_version() != self.version:
            self.load(*await store.subscriptions())

    def route(
        self, event: Mapping[str, Any], due_at: float, owner_of: OwnerOf | None = None
    ) -> tuple[NewDelivery, ...]:
        """One delivery per subscription whose pattern matches ``event`` (structured JSON)."""
        out = []
        for name, pattern, ordered_by in self._table[1]:
            if pattern.matches(event):
                key = ordering_key(event, ordered_by)
                # A delivery of an ordered subscription is never claimed as it is written:
                # an older one of its key may still be pending; the claim checks that.
                owner = None if owner_of is None or ordered_by is not None else owner_of(name)
                out.append(NewDelivery(name, due_at, key, owner))
        return tuple(out)


def build_event(
    type: str,
    data: Any,
    *,
    source: str,
    id: str | None = None,
    subject: str | None = None,
    key: str | None = None,
    time: datetime | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    traceparent: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    recorded_at: float,
    producer: Any = tracing.GLOBAL,
) -> Event:
    """A new event (validated: ``InvalidEvent`` names what is wrong). ``key`` is its
    ``partitionkey``; a missing ``correlationid`` makes the event start its own flow.
    When the application traces, a span of the publish made with the tracer ``producer``
    (``GLOBAL``: the global provider's) gives the event its ``traceparent``, unless one is
    given or ``producer`` is None (a replay, or an engine that does not trace)."""
    if traceparent is None and producer is not None:
        chosen = tracing.tracer() if producer is tracing.GLOBAL else producer
        if chosen is not None:
            traceparent = tracing.producer(chosen, type)
    event_id = id if id is not None else str(uuid.uuid4())
    when = datetime.fromtimestamp(recorded_at, UTC)
    return Event(
        id=event_id,
        source=source,
        type=type,
        data=data,
        subject=subject,
        time=time or when,
        correlationid=correlationid if correlationid is not None else event_id,
        causationid=causationid,
        traceparent=traceparent,
        partitionkey=key,
        recordedtime=when,
        extensions=dict(extensions or {}),
    )


def encode_event(
    event: Event, limit: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> tuple[dict[str, Any], bytes]:
    """The event's structured-JSON dict and bytes; ``InvalidEvent`` if it is too big."""
    obj = event.to_dict()
    payload = orjson.dumps(obj)
    if len(payload) > limit:
        raise InvalidEvent(
            f"event {event.id!r} ({event.type}) is {len(payload)} bytes of JSON, over the "
            f"limit of {limit} (max_payload_bytes): publish a reference to the data instead"
        )
    return obj, payload


def event_key(event: Event) -> str:
    """The batch key of a publish outside any run: its own, so only it fails if it must."""
    return f"\x00event {event.source} {event.id}"


def new_event_op(
    event: Event,
    obj: Mapping[str, Any],
    payload: bytes,
    router: Router,
    at: float,
    *,
    batch_key: str | None = None,
    published_by: str | None = None,
    call_key: str | None = None,
    reply_types: Sequence[str] | None = None,
    owner_of: OwnerOf | None = None,
) -> NewEvent:
    """The write of ``event`` with its deliveries, routed by ``router``."""
    return NewEvent(
        batch_key or published_by or event_key(event),
        event.source,
        event.id,
        event.type,
        event.subject,
        event.correlationid,
        event.causationid,
        payload,
        at,
        router.route(obj, at, owner_of),
        published_by=published_by,
        call_key=call_key,
        reply_types=None if reply_types is None else orjson.dumps(list(reply_types)),
        registry=router.version,
    )


def reply_ops(
    event: Event, obj: Mapping[str, Any], requests: Sequence[StoredEvent], at: float
) -> list[Write]:
    """If ``event`` answers a request a run awaits, the writes that hand it to that run."""
    for request in requests:
        if (
            request.run_id is not None
            and request.reply_types is not None
            and event.type in request.reply_types
        ):
            return signal_ops(
                request.run_id, REPLY_SIGNAL_PREFIX + request.event.id, orjson.dumps(obj), at
            )
    return []


async def publish(
    store: Store,
    router: Router,
    event: Event,
    write: Callable[[list[Write]], Awaitable[Any]],
    *,
    at: float,
    limit: int = DEFAULT_MAX_PAYLOAD_BYTES,
    owner_of: OwnerOf | None = None,
    published_by: str | None = None,
    call_key: str | None = None,
    after: Callable[[list[Write], Mapping[str, Any]], None] | None = None,
) -> Event:
    """Write ``event`` with its deliveries (and a reply's wake-up) through ``write``;
    return the stored event (the earlier one, for a duplicate ``source`` and ``id``).

    Routes again if the registry moved between the read and the write. ``after`` gets the
    ops written, once they are committed.
    """
    obj, payload = encode_event(event, limit)
    requests = await store.find_events(event.causationid) if event.causationid else []
    for attempt in range(ROUTE_ATTEMPTS):
        if not router.is_loaded or attempt:
            await router.refresh(store)
        op = new_event_op(
            event,
            obj,
            payload,
            router,
            at,
            batch_key=event_key(event),  # its own: a refused publish must not stop a run
            published_by=published_by,
            call_key=call_key,
            owner_of=owner_of,
        )
        ops = [op, *reply_ops(event, obj, requests, at)]
        try:
            await write(ops)
        except ConcurrencyConflict:
            continue  # the subscriptions changed under us: route again
        if op.seq is None:
            return await stored_original(store, event)
        if after is not None:
            after(ops, obj)
        return event
    raise ConcurrencyConflict(
        f"event {event.id!r} could not be published: the subscriptions kept changing "
        f"({ROUTE_ATTEMPTS} attempts)"
    )


async def stored_original(store: Store, event: Event) -> Event:
    """The event already stored under ``event``'s source and id (a duplicate publish)."""
    return original_of(event, await store.find_events(event.id))


def original_of(event: Event, found: Sequence[StoredEvent]) -> Event:
    """Of the events ``found`` with ``event``'s id, the one from its source; ``event``
    itself if none (pruned meanwhile: the duplicate is all there is to show)."""
    for stored in found:
        if stored.event.source == event.source:
            return stored.event
    return event
