"""The events and visibility half of ``App``: publish, read the log, dead letters, replay,
retention, expectations and alerts — through the engine when it runs here (a publish joins
its next group commit), else through the app's ``AsyncClient``.

Mixed into ``App`` (``legato.app``), so the app keeps one surface with the clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from legato.bus.publishing import build_event
from legato.engine import publishing
from legato.errors import DefinitionError
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.deliveries import Delivery, RedrivePreview, StoredEvent, SubscriptionInfo
from legato.model.events import Event
from legato.model.expectations import ExpectationInstance, ExpectationStatus

if TYPE_CHECKING:
    from legato.client import AsyncClient
    from legato.engine.registry import Registry
    from legato.engine.worker import Engine


class AppEvents:
    """The event and visibility methods of ``App`` (see there)."""

    name: str
    registry: Registry
    _client: AsyncClient
    _engine: Engine | None

    # -- events ----------------------------------------------------------------------------

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
        """Publish an event and return it as stored (see ``AsyncClient.publish``).

        While the engine runs here the event joins its next group commit, and deliveries
        to this app's own subscriptions start straight after it, with no claim.
        """
        engine = self._engine
        if engine is None or not engine.running:
            return await self._client.publish(
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
        event = build_event(
            type,
            data,
            source=source or f"/{self.name}",
            id=id,
            subject=subject,
            key=key,
            time=time,
            correlationid=correlationid,
            causationid=causationid,
            extensions=extensions,
            recorded_at=engine.clock.time(),
            producer=engine.tracer,
        )
        return await publishing.direct(engine, event)

    async def publish_event(self, event: Event) -> Event:
        """Publish a ready-made ``legato.Event`` as it is."""
        engine = self._engine
        if engine is None or not engine.running:
            return await self._client.publish_event(event)
        return await publishing.direct(engine, event)

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
        """Publish with ``conn``, your own ``sqlite3.Connection`` (or ``psycopg.Connection``)
        to this app's database, in the transaction it has open: the event commits when you
        commit, and not if you roll back (see ``AsyncClient.publish_in_transaction``)."""
        return self._client.publish_in_transaction(
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
        """``publish_in_transaction`` with your ``psycopg.AsyncConnection`` (PostgreSQL),
        awaited (see ``AsyncClient.publish_in_transaction_async``)."""
        return await self._client.publish_in_transaction_async(
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
        """Events in log order, filtered (see ``AsyncClient.list_events``)."""
        return await self._client.list_events(
            type=type,
            correlation_id=correlation_id,
            run_id=run_id,
            since=since,
            until=until,
            unrouted=unrouted,
            after_seq=after_seq,
            limit=limit,
        )

    async def get_event(self, event_id: str, source: str | None = None) -> StoredEvent:
        """The stored event with this id (and source, when ids repeat across sources); raises
        ``EventNotFound``, or ``AmbiguousEvent`` for an id several sources published."""
        return await self._client.get_event(event_id, source)

    async def deliveries(self, event_id: str, source: str | None = None) -> list[Delivery]:
        """Every subscription's delivery of the event: attempts, last error, status."""
        return await self._client.deliveries(event_id, source)

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """Subscriptions registered on this database (by this app or any other)."""
        return await self._client.list_subscriptions()

    async def remove_subscription(self, name: str) -> int:
        """Forget a subscription another app (or an older version of this one) defined,
        with its deliveries (see ``AsyncClient.remove_subscription``). One this app
        defines is refused: it would be registered again when the app starts."""
        if name in self.registry.subscriptions:
            raise DefinitionError(
                f"subscription {name!r} is defined by this app: remove its handler from the "
                "code (and from every worker's) before removing it from the database"
            )
        return await self._client.remove_subscription(name)

    async def list_dead_letters(
        self, *, subscription: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries that ran out of attempts, oldest event first."""
        return await self._client.list_dead_letters(subscription=subscription, limit=limit)

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
        """Deliver dead letters again (see ``AsyncClient.redrive``); ``by``: who did it."""
        count = await self._client.redrive(
            event_id, subscription=subscription, source=source, rate=rate, by=by, confirm=confirm
        )
        if self._engine is not None:
            self._engine.poke()
        return count

    async def preview_redrive(self, subscription: str) -> RedrivePreview:
        """How many dead letters of ``subscription`` a redrive would take, with its
        ``confirm`` token (see ``AsyncClient.preview_redrive``)."""
        return await self._client.preview_redrive(subscription)

    async def replay(
        self,
        subscription: str,
        *,
        since: datetime,
        until: datetime | None = None,
        type: str | None = None,
    ) -> int:
        """Deliver archived events again to one subscription (see ``AsyncClient.replay``)."""
        count = await self._client.replay(subscription, since=since, until=until, type=type)
        if self._engine is not None:
            self._engine.poke()
        return count

    async def list_expectations(
        self,
        *,
        name: str | None = None,
        status: str | ExpectationStatus | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 100,
    ) -> list[ExpectationInstance]:
        """Expectation instances, newest first (see ``AsyncClient.list_expectations``)."""
        return await self._client.list_expectations(
            name=name, status=status, key=key, correlation_id=correlation_id, limit=limit
        )

    async def list_alerts(
        self,
        *,
        status: str | AlertStatus | None = None,
        kind: str | AlertKind | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, latest raised first (see ``AsyncClient.list_alerts``)."""
        return await self._client.list_alerts(status=status, kind=kind, limit=limit)

    async def prune_events(self, older_than: timedelta) -> int:
        """Delete old, fully delivered events (see ``AsyncClient.prune_events``)."""
        return await self._client.prune_events(older_than)
