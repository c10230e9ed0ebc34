"""``publish_in_transaction``: the transactional outbox on the caller's own connection.

A service that keeps its own tables in the same database writes its row and the event in
one commit: it passes the connection its transaction runs on, Legato writes the event
and its deliveries there (in a savepoint), and the caller commits, or rolls back, both.
An event is delivered if and only if that transaction committed.

An async service passes its ``psycopg.AsyncConnection`` to the async form: the same
statements run on a thread, each one handed to the connection's event loop
(``storage/postgres/_bridge.py``), so there is one outbox, not a blocking and an async copy.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from legato.bus.publishing import (
    ROUTE_ATTEMPTS,
    Router,
    encode_event,
    event_key,
    new_event_op,
    original_of,
    reply_ops,
)
from legato.errors import ConcurrencyConflict, ConfigurationError
from legato.model.deliveries import StoredEvent, SubscriptionInfo
from legato.model.events import Event
from legato.storage.base import Store, Write


class Transaction(Protocol):
    """What a SQL store offers on a caller's connection (``SqliteStore.in_transaction``)."""

    def registry_version(self) -> int: ...
    def subscriptions(self) -> tuple[int, list[SubscriptionInfo]]: ...
    def find_events(self, event_id: str) -> list[StoredEvent]: ...
    def write(self, ops: list[Write]) -> None: ...


def open_transaction(store: Store, conn: object) -> Transaction:
    """The store's bus on ``conn``; ``ConfigurationError`` for a store that has none."""
    in_transaction = getattr(store, "in_transaction", None)
    if in_transaction is None:
        raise ConfigurationError(
            f"publish_in_transaction needs a SQL database (sqlite:///...), not "
            f"{type(store).__name__}: there is no transaction of yours to join"
        )
    transaction: Transaction = in_transaction(conn)
    return transaction


async def publish_in_async_transaction(
    store: Store, router: Router, conn: object, event: Event, *, at: float, limit: int
) -> Event:
    """``publish_in_transaction`` with ``conn``, an async connection in its open transaction,
    on the running loop; ``ConfigurationError`` for a store that takes none."""
    on_loop = getattr(store, "on_loop", None)
    if on_loop is None:
        raise ConfigurationError(
            "publish_in_transaction_async needs PostgreSQL and a psycopg.AsyncConnection, "
            f"not {type(store).__name__}: on SQLite, call publish_in_transaction with your "
            "sqlite3.Connection"
        )
    bridged = on_loop(conn, asyncio.get_running_loop())
    return await asyncio.to_thread(
        publish_in_transaction, store, router, bridged, event, at=at, limit=limit
    )


def publish_in_transaction(
    store: Store, router: Router, conn: object, event: Event, *, at: float, limit: int
) -> Event:
    """Write ``event`` and its deliveries with ``conn``, in its open transaction; return the
    event as stored (the earlier one, for a duplicate ``source`` and ``id``)."""
    tx = open_transaction(store, conn)
    obj, payload = encode_event(event, limit)
    requests = tx.find_events(event.causationid) if event.causationid else []
    for _ in range(ROUTE_ATTEMPTS):
        if tx.registry_version() != router.version:
            router.load(*tx.subscriptions())
        op = new_event_op(event, obj, payload, router, at, batch_key=event_key(event))
        try:
            tx.write([op, *reply_ops(event, obj, requests, at)])
        except ConcurrencyConflict:
            continue
        if op.seq is None:
            return original_of(event, tx.find_events(event.id))
        return event
    raise ConcurrencyConflict(
        f"event {event.id!r} could not be published: the subscriptions kept changing"
    )
