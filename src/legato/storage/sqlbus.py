"""The event bus on every SQL adapter: the bus ops of a batch, the registry, claims, reads.

``SqlStore`` mixes this in; it works over the same ``_transact`` / ``_select`` and the
dialect's named queries. As for runs, nothing here decides what an event means: which
subscriptions an event goes to, when a retry is due, what a dead letter is, are decided
in ``legato.bus`` and written as ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from legato.errors import ConcurrencyConflict
from legato.model.deliveries import (
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    StoredEvent,
    SubscriptionInfo,
    SubscriptionKind,
)
from legato.storage.base import NewEvent, NewSubscription, ReplayDelivery, UpdateDelivery, Write
from legato.storage.sqlrows import at_time, delivery_from_row, loads, stored_event_from_row

T = TypeVar("T")


def check_registry(conn: Any, queries: Any, ops: Sequence[Write]) -> None:
    """Raise ``ConcurrencyConflict`` if a ``NewEvent`` was routed by a registry version
    that is no longer current (checked before anything of the batch is written)."""
    versions = {op.registry for op in ops if type(op) is NewEvent and op.registry is not None}
    if not versions:
        return
    current = conn.execute(queries.registry_version).fetchone()[0]
    stale = versions - {current}
    if stale:
        raise ConcurrencyConflict(
            f"the subscriptions changed (registry version {current}, the publish chose its "
            f"subscriptions by version {min(stale)}): route the event again"
        )


def _event_row(op: NewEvent) -> tuple[Any, ...]:
    return (
        op.source,
        op.event_id,
        op.type,
        op.subject,
        op.correlation_id,
        op.causation_id,
        op.published_by,
        op.call_key,
        op.reply_types,
        len(op.deliveries),
        op.recorded_at,
        op.event,
    )


def apply_new_events(conn: Any, queries: Any, ops: Sequence[NewEvent]) -> None:
    """Insert events (a duplicate ``(source, event_id)`` is skipped) and their deliveries.

    Each op learns its ``seq`` (None for a duplicate). A dialect whose writer is alone in
    its transaction (SQLite) inserts the batch with one ``executemany`` and reads the new
    seqs back in one query: a third faster than an insert with ``RETURNING`` per event.
    """
    if queries.events_after is not None and len(ops) > 1:
        last = conn.execute(queries.last_event_seq).fetchone()[0] or 0
        conn.executemany(queries.insert_event_many, [_event_row(op) for op in ops])
        seqs = {(r[1], r[2]): r[0] for r in conn.execute(queries.events_after, (last,))}
        for op in ops:
            op.seq = seqs.pop((op.event_id, op.source), None)  # None: a duplicate
    else:
        for op in ops:
            row = conn.execute(queries.insert_event, _event_row(op)).fetchone()
            op.seq = None if row is None else row[0]  # None: a duplicate
    deliveries = [
        (d.subscription, op.seq, d.due_at, d.ordering_key, d.owner, op.recorded_at)
        for op in ops
        if op.seq is not None  # a duplicate's deliveries are the first publish's
        for d in op.deliveries
    ]
    if deliveries:
        conn.executemany(queries.insert_delivery, deliveries)


def apply_delivery_updates(conn: Any, queries: Any, ops: Sequence[UpdateDelivery]) -> None:
    """Apply ``UpdateDelivery`` ops of one shape (conditions and ``required``)."""
    first = ops[0]
    sql = queries.update_delivery_sql(
        first.if_owner is not None, first.if_status is not None, first.redrive
    )
    rows = []
    for op in ops:
        row: tuple[Any, ...] = (op.status, op.attempts, op.due_at, op.error, op.at)
        if op.redrive:
            row += (op.at, op.redriven_by)
        row += (op.subscription, op.seq)
        if op.if_owner is not None:
            row += (op.if_owner,)
        if op.if_status is not None:
            row += (op.if_status,)
        rows.append(row)
    changed = conn.executemany(sql, rows).rowcount
    if first.required and changed != len(rows):
        raise ConcurrencyConflict(
            f"{len(rows) - changed} of {len(rows)} delivery updates found their delivery "
            "otherwise than they ask (unknown, settled, or taken over by another worker)"
        )


def apply_replays(conn: Any, queries: Any, ops: Sequence[ReplayDelivery]) -> None:
    """Make deliveries pending again (or new), marked as replays."""
    conn.executemany(
        queries.replay_delivery,
        [(op.subscription, op.seq, op.at, op.ordering_key, op.at) for op in ops],
    )


class SqlBus:
    """The bus's ``Store`` methods of every SQL adapter (mixed into ``SqlStore``)."""

    queries: Any

    async def _transact(self, body: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def register_subscriptions(
        self, subscriptions: Sequence[NewSubscription], at: float
    ) -> int:
        """Record subscriptions; the registry's version moves if any is new or changed."""
        q = self.queries

        def body(c: Any) -> int:
            known = {
                row[0]: (row[1], row[2], row[3])
                for row in c.execute(q.subscription_rows).fetchall()
            }
            changed = [
                s for s in subscriptions if known.get(s.name) != (s.kind, s.pattern, s.ordered_by)
            ]
            if changed:
                c.executemany(
                    q.upsert_subscription,
                    [(s.name, s.kind, s.pattern, s.ordered_by, at) for s in changed],
                )
                c.execute(q.bump_registry)
            version: int = c.execute(q.registry_version).fetchone()[0]
            return version

        return await self._transact(body)

    async def remove_subscription(self, name: str) -> int | None:
        """Forget a subscription and its deliveries; the registry's version moves."""
        q = self.queries

        def body(c: Any) -> int | None:
            if c.execute(q.delete_subscription, (name,)).rowcount == 0:
                return None
            dropped: int = c.execute(q.delete_subscription_deliveries, (name,)).rowcount
            c.execute(q.bump_registry)
            return dropped

        return await self._transact(body)

    async def subscriptions(self) -> tuple[int, list[SubscriptionInfo]]:
        """The registry's version and its subscriptions.

        Read in one transaction (the writer's), so the version is the one of these rows.
        """
        q = self.queries

        def body(c: Any) -> tuple[int, list[tuple[Any, ...]]]:
            version = c.execute(q.registry_version).fetchone()[0]
            return version, c.execute(q.subscription_rows).fetchall()

        version, rows = await self._transact(body)
        return version, [
            SubscriptionInfo(r[0], SubscriptionKind(r[1]), loads(r[2]), r[3], at_time(r[4]))
            for r in rows
        ]

    async def registry_version(self) -> int:
        """The registry's version."""
        rows = await self._select(self.queries.registry_version)
        return int(rows[0][0])

    async def claim_deliveries(
        self, worker_id: str, now: float, limit: int, subscriptions: Sequence[str]
    ) -> list[ClaimedDelivery]:
        """Take due deliveries of ``subscriptions`` (FIFO heads only for ordered keys)."""
        if not subscriptions:
            return []
        sql = self.queries.claim_deliveries_sql(len(subscriptions))
        params = (worker_id, now, *subscriptions, limit, worker_id)
        rows = await self._transact(lambda c: c.execute(sql, params).fetchall())
        claimed = [ClaimedDelivery(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]
        claimed.sort(key=lambda d: d.seq)  # RETURNING gives no order; deliver oldest first
        return claimed

    async def next_delivery_due(self, subscriptions: Sequence[str]) -> float | None:
        """The earliest due time of free pending deliveries of ``subscriptions``."""
        if not subscriptions:
            return None
        sql = self.queries.next_delivery_due_sql(len(subscriptions))
        rows = await self._select(sql, list(subscriptions))
        return rows[0][0] if rows else None

    async def release_deliveries(self, worker_id: str) -> int:
        """Let go of every delivery ``worker_id`` holds."""
        released: int = await self._transact(
            lambda c: c.execute(self.queries.release_deliveries, (worker_id,)).rowcount
        )
        return released

    async def get_event(self, seq: int) -> StoredEvent | None:
        """The event at ``seq``, or None."""
        rows = await self._select(self.queries.get_event, (seq,))
        return stored_event_from_row(rows[0]) if rows else None

    async def find_events(self, event_id: str) -> list[StoredEvent]:
        """Events with this id, oldest first."""
        rows = await self._select(self.queries.find_events, (event_id,))
        return [stored_event_from_row(r) for r in rows]

    async def list_events(
        self,
        *,
        type: str | None = None,
        correlation_id: str | None = None,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        unrouted: bool = False,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events in log order, filtered."""
        p = self.queries.param
        where, params = [f"seq > {p}"], [cast(Any, after_seq)]
        filters: tuple[tuple[str, Any], ...] = (
            (f"type = {p}", type),
            (f"correlation_id = {p}", correlation_id),
            (f"run_id = {p}", run_id),
            (f"recorded_at >= {p}", since),
            (f"recorded_at < {p}", until),
        )
        for clause, value in filters:
            if value is not None:
                where.append(clause)
                params.append(value)
        if unrouted:
            where.append("routed = 0")
        sql = self.queries.list_events_sql(where)
        return [stored_event_from_row(r) for r in await self._select(sql, (*params, limit))]

    async def deliveries(self, seq: int) -> list[Delivery]:
        """Every subscription's delivery of event ``seq``."""
        rows = await self._select(self.queries.deliveries_of, (seq,))
        return [delivery_from_row(r) for r in rows]

    async def list_deliveries(
        self,
        *,
        status: str | None = None,
        subscription: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries in event order, filtered."""
        p = self.queries.param
        where, params = [f"seq > {p}"], [cast(Any, after_seq)]
        if status is not None:
            # A literal (one of three words): a partial index on status serves only a
            # query that spells its condition out (deliveries_dead).
            where.append(f"status = '{DeliveryStatus(status).value}'")
        if subscription is not None:
            where.append(f"subscription = {p}")
            params.append(subscription)
        sql = self.queries.list_deliveries_sql(where)
        return [delivery_from_row(r) for r in await self._select(sql, (*params, limit))]

    async def prune_events(self, before: float, limit: int) -> int:
        """Delete old events with nothing left to deliver, and their deliveries."""
        q = self.queries

        def body(c: Any) -> int:
            seqs = [(r[0],) for r in c.execute(q.prunable_events, (before, limit)).fetchall()]
            c.executemany(q.delete_deliveries, seqs)
            c.executemany(q.delete_event, seqs)
            return len(seqs)

        return await self._transact(body)


class InTransaction:
    """The bus's reads and writes on a caller's own connection, inside its transaction.

    ``publish_in_transaction`` writes the event with the caller's connection, so the
    caller's row and the event commit (or roll back) together when the caller says.
    Nothing here commits.
    """

    def __init__(self, store: Any, conn: Any) -> None:
        self._store = store
        self._conn = conn
        self._q = store.queries

    def registry_version(self) -> int:
        """The registry's version, as this transaction sees it."""
        return int(self._conn.execute(self._q.registry_version).fetchone()[0])

    def subscriptions(self) -> tuple[int, list[SubscriptionInfo]]:
        """The registry, as this transaction sees it."""
        version = self.registry_version()
        rows = self._conn.execute(self._q.subscription_rows).fetchall()
        return version, [
            SubscriptionInfo(r[0], SubscriptionKind(r[1]), loads(r[2]), r[3], at_time(r[4]))
            for r in rows
        ]

    def find_events(self, event_id: str) -> list[StoredEvent]:
        """Events with this id, as this transaction sees them."""
        rows = self._conn.execute(self._q.find_events, (event_id,)).fetchall()
        return [stored_event_from_row(r) for r in rows]

    def write(self, ops: Sequence[Write]) -> None:
        """Apply ``ops`` in the caller's transaction, in a savepoint of their own: if one
        fails (``ConcurrencyConflict`` when the registry moved) none of them is written,
        and the caller's own writes stand."""
        conn = self._conn
        conn.execute("SAVEPOINT legato_publish")
        try:
            self._store._apply(conn, ops)
        except BaseException:
            conn.execute("ROLLBACK TO legato_publish")
            raise
        finally:
            conn.execute("RELEASE legato_publish")
