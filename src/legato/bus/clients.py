"""The bus half of ``AsyncClient`` and ``Client``: publish, inspect the log, dead letters,
redrive, replay and retention, from any process on the database.

Mixed into the clients (``legato.client``), so both keep one surface with the same method
names; the ``App`` offers the same calls, publishing through its engine when it runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time as _time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from legato.bus.outbox import publish_in_async_transaction, publish_in_transaction
from legato.bus.publishing import Router, build_event, publish
from legato.bus.subscriptions import ordering_key
from legato.errors import (
    AmbiguousEvent,
    BulkChanged,
    DefinitionError,
    EventNotFound,
    UnknownSubscription,
)
from legato.model.deliveries import (
    Delivery,
    DeliveryStatus,
    RedrivePreview,
    StoredEvent,
    SubscriptionInfo,
)
from legato.model.events import Event
from legato.model.patterns import compile_pattern
from legato.model.times import timestamp_of
from legato.operations import SAMPLE, confirm_token
from legato.storage.base import ReplayDelivery, Store, UpdateDelivery, Write

T = TypeVar("T")

CLIENT_SOURCE = "/legato/client"
"""The ``source`` of events a client publishes unless told otherwise."""

_PAGE = 1000


class AsyncBusClient:
    """The bus methods of ``AsyncClient`` (see there)."""

    max_payload_bytes: int
    _store: Store
    _time: Callable[[], float]
    _router: Router
    _source: str

    async def _open(self) -> Store:
        raise NotImplementedError

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        type: str,
        data: Any = None,
        *,
        subject: str | None = None,
        key: str | None = None,
        id: str | None = None,
        source: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        time: datetime | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish an event and return it as stored.

        ``key`` is its ``partitionkey``; ``id`` defaults to a new UUID (give one to make
        the publish idempotent: a second publish of the same ``source`` and ``id`` returns
        the first event and writes nothing). Without ``correlationid`` the event starts a
        flow of its own (its correlation id is its id). Raises ``InvalidEvent``.
        """
        event = build_event(
            type,
            data,
            source=source or self._source,
            id=id,
            subject=subject,
            key=key,
            time=time,
            correlationid=correlationid,
            causationid=causationid,
            extensions=extensions,
            recorded_at=self._time(),
        )
        return await self.publish_event(event)

    async def publish_event(self, event: Event) -> Event:
        """Publish a ready-made ``legato.Event`` (from ``Event.from_json``, say) as it is,
        except that one without ``correlationid`` starts a flow of its own, as ``publish``
        makes it: its correlation id is its id."""
        if not isinstance(event, Event):
            raise DefinitionError(f"publish_event takes a legato.Event, got {event!r}")
        if event.correlationid is None:
            event = dataclasses.replace(event, correlationid=event.id)
        store = await self._open()
        return await publish(
            store,
            self._router,
            event,
            store.write,
            at=self._time(),
            limit=self.max_payload_bytes,
        )

    def publish_in_transaction(
        self,
        conn: Any,
        type: str,
        data: Any = None,
        *,
        subject: str | None = None,
        key: str | None = None,
        id: str | None = None,
        source: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
    ) -> Event:
        """Publish with ``conn``, your own connection to this database, in the transaction
        it has open: the event commits when you commit, and not if you roll back.

        Synchronous, since ``conn`` is (a ``sqlite3.Connection`` to the same file, or a
        ``psycopg.Connection`` to the same database). Nothing is committed here. Raises
        ``ConfigurationError`` for a connection that cannot carry it (another database,
        autocommit with no transaction open).
        """
        at, event = self._transaction_event(
            type, data, subject, key, id, source, correlationid, causationid
        )
        return publish_in_transaction(
            self._store, self._router, conn, event, at=at, limit=self.max_payload_bytes
        )

    async def publish_in_transaction_async(
        self,
        conn: Any,
        type: str,
        data: Any = None,
        *,
        subject: str | None = None,
        key: str | None = None,
        id: str | None = None,
        source: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
    ) -> Event:
        """``publish_in_transaction`` for async code on PostgreSQL: ``conn`` is your
        ``psycopg.AsyncConnection`` to this database, in the transaction it has open. The
        event commits when you commit, and not if you roll back; nothing is committed
        here. Don't use ``conn`` elsewhere until this returns.
        """
        at, event = self._transaction_event(
            type, data, subject, key, id, source, correlationid, causationid
        )
        return await publish_in_async_transaction(
            self._store, self._router, conn, event, at=at, limit=self.max_payload_bytes
        )

    def _transaction_event(
        self,
        type: str,
        data: Any,
        subject: str | None,
        key: str | None,
        id: str | None,
        source: str | None,
        correlationid: str | None,
        causationid: str | None,
    ) -> tuple[float, Event]:
        at = self._time()
        event = build_event(
            type,
            data,
            source=source or self._source,
            id=id,
            subject=subject,
            key=key,
            correlationid=correlationid,
            causationid=causationid,
            recorded_at=at,
        )
        return at, event

    # -- the log -----------------------------------------------------------------------------

    async def list_events(
        self,
        *,
        type: str | None = None,
        correlation_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        unrouted: bool = False,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events in log order, filtered; ``unrouted``: those no subscription matched."""
        if not isinstance(after_seq, int) or not 0 <= after_seq < 2**63:
            raise DefinitionError(f"after_seq must be a position in the log, got {after_seq!r}")
        return await (await self._open()).list_events(
            type=type,
            correlation_id=correlation_id,
            run_id=run_id,
            since=timestamp_of(since, "since"),
            until=timestamp_of(until, "until"),
            unrouted=unrouted,
            after_seq=after_seq,
            limit=limit,
        )

    async def get_event(self, event_id: str, source: str | None = None) -> StoredEvent:
        """The stored event with this id (and source, when ids repeat across sources);
        raises ``EventNotFound``."""
        found = await (await self._open()).find_events(event_id)
        if source is not None:
            found = [e for e in found if e.event.source == source]
        if not found:
            raise EventNotFound(event_id, source)
        if len(found) > 1:
            raise AmbiguousEvent(event_id, [e.event.source for e in found])
        return found[0]

    async def events_at(self, seqs: Iterable[int]) -> dict[int, StoredEvent]:
        """The events at these positions of the log (those still stored), by ``seq``: what
        dead letters and deliveries, which name only a ``seq``, are deliveries of."""
        store = await self._open()
        found: dict[int, StoredEvent] = {}
        for seq in sorted(set(seqs)):
            page = await store.list_events(after_seq=seq - 1, limit=1)
            if page and page[0].seq == seq:
                found[seq] = page[0]
        return found

    async def deliveries(self, event_id: str, source: str | None = None) -> list[Delivery]:
        """Every subscription's delivery of the event: attempts, last error, status."""
        stored = await self.get_event(event_id, source)
        return await self._store.deliveries(stored.seq)

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """Subscriptions registered on this database, by name."""
        return (await (await self._open()).subscriptions())[1]

    async def remove_subscription(self, name: str) -> int:
        """Forget a subscription whose handler is gone from the code, with every delivery
        to it (pending and dead letters too): new events are no longer routed to it, and
        ``prune_events`` is no longer held back by what it will never take. Returns how
        many deliveries went; raises ``UnknownSubscription``.

        A worker whose code still defines it registers it again when it starts.
        """
        dropped = await (await self._open()).remove_subscription(name)
        if dropped is None:
            raise UnknownSubscription(name, [s.name for s in await self.list_subscriptions()])
        return dropped

    async def _subscription(self, name: str) -> SubscriptionInfo:
        subscriptions = await self.list_subscriptions()
        for sub in subscriptions:
            if sub.name == name:
                return sub
        raise UnknownSubscription(name, [s.name for s in subscriptions])

    async def list_deliveries(
        self, *, status: str | None = None, subscription: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries in log order, of one status (``pending``, ``done``, ``dead``) and
        subscription if given."""
        if status is not None:
            DeliveryStatus(status)  # a clear ValueError for a status that does not exist
        return await (await self._open()).list_deliveries(
            status=status, subscription=subscription, limit=limit
        )

    # -- dead letters ------------------------------------------------------------------------

    async def list_dead_letters(
        self, *, subscription: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries that ran out of attempts, oldest event first."""
        store = await self._open()
        if subscription is not None:
            await self._subscription(subscription)
        return await store.list_deliveries(
            status=DeliveryStatus.DEAD.value, subscription=subscription, limit=limit
        )

    async def preview_redrive(self, subscription: str) -> RedrivePreview:
        """What redriving every dead letter of ``subscription`` would take: how many, the
        first event ids, and the ``confirm`` token with which ``redrive(subscription=...,
        confirm=...)`` redrives exactly those (the bulk form the API, the CLI and the
        console use: a preview, then a confirmation)."""
        await self._subscription(subscription)
        return await self._redrive_preview(subscription, await self._dead_of(subscription))

    async def _dead_of(self, subscription: str) -> list[Delivery]:
        store = await self._open()
        return await store.list_deliveries(
            status=DeliveryStatus.DEAD.value, subscription=subscription, limit=1_000_000
        )

    async def _redrive_preview(self, subscription: str, dead: list[Delivery]) -> RedrivePreview:
        first = await self.events_at(d.seq for d in dead[:SAMPLE])
        return RedrivePreview(
            subscription,
            len(dead),
            [first[d.seq].event.id if d.seq in first else str(d.seq) for d in dead[:SAMPLE]],
            confirm_token(f"redrive {subscription}", [str(d.seq) for d in dead]),
        )

    async def redrive(
        self,
        event_id: str | None = None,
        *,
        subscription: str | None = None,
        source: str | None = None,
        rate: float | None = None,
        by: str | None = None,
        confirm: str | None = None,
    ) -> int:
        """Deliver dead letters again, from the first attempt: one event's (``event_id``),
        or a subscription's (every dead letter of it), at most ``rate`` per second.
        Each delivery records when and ``by`` whom (``redriven_at``, ``redriven_by``).
        With ``confirm`` (a ``preview_redrive`` token) a subscription's are redriven only
        if they are still the ones previewed, else ``BulkChanged`` (nothing done) carries
        the new preview. Returns how many were made pending again."""
        if event_id is None and subscription is None:
            raise DefinitionError("redrive needs an event id or a subscription")
        if confirm is not None and (event_id is not None or subscription is None):
            raise DefinitionError("confirm goes with a whole subscription's redrive (no event id)")
        if subscription is not None:
            await self._subscription(subscription)
        if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
            raise DefinitionError(f"rate must be a positive number per second, got {rate!r}")
        store = await self._open()
        if event_id is not None:
            stored = await self.get_event(event_id, source)
            dead = [
                d
                for d in await store.deliveries(stored.seq)
                if d.status is DeliveryStatus.DEAD
                and (subscription is None or d.subscription == subscription)
            ]
        else:
            assert subscription is not None
            dead = await self._dead_of(subscription)
            if confirm is not None:
                now = await self._redrive_preview(subscription, dead)
                if now.confirm != confirm:
                    raise BulkChanged("redrive", now)
        redriven = 0
        batch = 100 if rate is None else max(1, min(100, int(rate)))
        for start in range(0, len(dead), batch):
            began = _time.monotonic()
            at = self._time()
            ops: list[Write] = [
                UpdateDelivery(
                    f"\x00redrive {d.subscription} {d.seq}",
                    d.subscription,
                    d.seq,
                    DeliveryStatus.PENDING.value,
                    0,
                    at,
                    None,
                    at,
                    if_status=DeliveryStatus.DEAD.value,
                    required=False,
                    redrive=True,
                    redriven_by=by,
                )
                for d in dead[start : start + batch]
            ]
            await store.write(ops)
            redriven += len(ops)
            if rate is not None and start + batch < len(dead):
                await asyncio.sleep(max(0.0, len(ops) / rate - (_time.monotonic() - began)))
        return redriven

    # -- replay and retention ----------------------------------------------------------------

    async def replay(
        self,
        subscription: str,
        *,
        since: datetime,
        until: datetime | None = None,
        type: str | None = None,
    ) -> int:
        """Deliver archived events again to one subscription, each marked as a replay:
        those recorded in ``[since, until)`` that match its pattern (and ``type``).
        A delivery still pending is left alone. Returns how many were scheduled."""
        sub = await self._subscription(subscription)
        pattern = compile_pattern(sub.pattern)
        store = self._store
        after, count = 0, 0
        while True:
            page = await store.list_events(
                type=type,
                since=timestamp_of(since, "since"),
                until=timestamp_of(until, "until"),
                after_seq=after,
                limit=_PAGE,
            )
            if not page:
                return count
            at = self._time()
            ops: list[Write] = []
            for stored in page:
                obj = stored.event.to_dict()
                if pattern.matches(obj):
                    key = ordering_key(obj, sub.ordered_by)
                    ops.append(
                        ReplayDelivery(
                            f"\x00replay {subscription} {stored.seq}",
                            subscription,
                            stored.seq,
                            at,
                            key,
                        )
                    )
            if ops:
                await store.write(ops)
            count += len(ops)
            after = page[-1].seq

    async def prune_events(self, older_than: timedelta) -> int:
        """Delete events recorded more than ``older_than`` ago, with their deliveries;
        never an event with a delivery still pending. Returns how many went."""
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise DefinitionError(f"older_than must be a timedelta >= 0, got {older_than!r}")
        store = await self._open()
        before = self._time() - older_than.total_seconds()
        total = 0
        while True:
            pruned = await store.prune_events(before, _PAGE)
            total += pruned
            if pruned < _PAGE:
                return total


class BusClient:
    """The bus methods of ``Client``: the blocking twins of ``AsyncBusClient``'s."""

    _async: AsyncBusClient

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    def publish(
        self,
        type: str,
        data: Any = None,
        *,
        subject: str | None = None,
        key: str | None = None,
        id: str | None = None,
        source: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        time: datetime | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish an event and return it as stored (see ``AsyncClient.publish``)."""
        return self._call(
            self._async.publish,
            type,
            data,
            subject=subject,
            key=key,
            id=id,
            source=source,
            correlationid=correlationid,
            causationid=causationid,
            time=time,
            extensions=extensions,
        )

    def publish_event(self, event: Event) -> Event:
        """Publish a ready-made ``legato.Event`` as it is (see ``AsyncClient.publish_event``)."""
        return self._call(self._async.publish_event, event)

    def publish_in_transaction(
        self,
        conn: Any,
        type: str,
        data: Any = None,
        *,
        subject: str | None = None,
        key: str | None = None,
        id: str | None = None,
        source: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
    ) -> Event:
        """Publish in your own transaction on ``conn`` (see ``AsyncClient``)."""
        return self._async.publish_in_transaction(
            conn,
            type,
            data,
            subject=subject,
            key=key,
            id=id,
            source=source,
            correlationid=correlationid,
            causationid=causationid,
        )

    def list_events(
        self,
        *,
        type: str | None = None,
        correlation_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        unrouted: bool = False,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events in log order, filtered (see ``AsyncClient.list_events``)."""
        return self._call(
            self._async.list_events,
            type=type,
            correlation_id=correlation_id,
            run_id=run_id,
            since=since,
            until=until,
            unrouted=unrouted,
            after_seq=after_seq,
            limit=limit,
        )

    def get_event(self, event_id: str, source: str | None = None) -> StoredEvent:
        """The stored event with this id; raises ``EventNotFound``."""
        return self._call(self._async.get_event, event_id, source)

    def events_at(self, seqs: Iterable[int]) -> dict[int, StoredEvent]:
        """The events at these positions of the log, by ``seq``."""
        return self._call(self._async.events_at, seqs)

    def deliveries(self, event_id: str, source: str | None = None) -> list[Delivery]:
        """Every subscription's delivery of the event."""
        return self._call(self._async.deliveries, event_id, source)

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        """Subscriptions registered on this database."""
        return self._call(self._async.list_subscriptions)

    def list_deliveries(
        self, *, status: str | None = None, subscription: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries in log order (see ``AsyncClient.list_deliveries``)."""
        return self._call(
            self._async.list_deliveries, status=status, subscription=subscription, limit=limit
        )

    def remove_subscription(self, name: str) -> int:
        """Forget a subscription and its deliveries (see ``AsyncClient.remove_subscription``)."""
        return self._call(self._async.remove_subscription, name)

    def list_dead_letters(
        self, *, subscription: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Dead letters, oldest event first."""
        return self._call(self._async.list_dead_letters, subscription=subscription, limit=limit)

    def redrive(
        self,
        event_id: str | None = None,
        *,
        subscription: str | None = None,
        source: str | None = None,
        rate: float | None = None,
        by: str | None = None,
        confirm: str | None = None,
    ) -> int:
        """Deliver dead letters again (see ``AsyncClient.redrive``)."""
        return self._call(
            self._async.redrive,
            event_id,
            subscription=subscription,
            source=source,
            rate=rate,
            by=by,
            confirm=confirm,
        )

    def preview_redrive(self, subscription: str) -> RedrivePreview:
        """How many dead letters of ``subscription`` a redrive would take, with its
        ``confirm`` token (see ``AsyncClient.preview_redrive``)."""
        return self._call(self._async.preview_redrive, subscription)

    def replay(
        self,
        subscription: str,
        *,
        since: datetime,
        until: datetime | None = None,
        type: str | None = None,
    ) -> int:
        """Deliver archived events again to one subscription (see ``AsyncClient.replay``)."""
        return self._call(self._async.replay, subscription, since=since, until=until, type=type)

    def prune_events(self, older_than: timedelta) -> int:
        """Delete old, fully delivered events (see ``AsyncClient.prune_events``)."""
        return self._call(self._async.prune_events, older_than)
