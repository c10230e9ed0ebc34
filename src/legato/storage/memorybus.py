"""The event bus of the in-memory ``Store``: the same contract as SQL, kept in dicts.

Mixed into ``MemoryStore``. Rows are raw (float times, JSON bytes) as a database keeps
them; every method runs without awaiting, so each is atomic on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson

from legato.errors import ConcurrencyConflict
from legato.model.deliveries import (
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    StoredEvent,
    SubscriptionInfo,
    SubscriptionKind,
)
from legato.model.events import Event
from legato.model.workers import WorkerInfo
from legato.storage.base import (
    NewEvent,
    NewSubscription,
    ReplayDelivery,
    UpdateDelivery,
    Write,
    to_datetime,
)

_PENDING = DeliveryStatus.PENDING.value


@dataclass(slots=True)
class _EventRow:
    seq: int
    op: NewEvent


@dataclass(slots=True)
class _DeliveryRow:
    subscription: str
    seq: int
    status: str
    attempts: int
    due_at: float | None
    ordering_key: str | None
    owner: str | None
    error: bytes | None
    replay: bool
    updated_at: float
    redriven_at: float | None = None
    redriven_by: str | None = None


def _stored(row: _EventRow) -> StoredEvent:
    op = row.op
    replies = None if op.reply_types is None else tuple(orjson.loads(op.reply_types))
    when = to_datetime(op.recorded_at)
    assert when is not None
    return StoredEvent(
        row.seq,
        Event.from_stored(op.event),
        when,
        len(op.deliveries),
        op.published_by,
        op.call_key,
        replies,
    )


def _delivery(row: _DeliveryRow) -> Delivery:
    updated = to_datetime(row.updated_at)
    assert updated is not None
    return Delivery(
        row.subscription,
        row.seq,
        DeliveryStatus(row.status),
        row.attempts,
        to_datetime(row.due_at),
        updated,
        None if row.error is None else orjson.loads(row.error),
        row.owner,
        row.ordering_key,
        row.replay,
        to_datetime(row.redriven_at),
        row.redriven_by,
    )


class MemoryBus:
    """Events, subscriptions and deliveries in dicts."""

    _workers: dict[str, WorkerInfo]

    def _init_bus(self) -> None:
        self._events: dict[int, _EventRow] = {}
        self._event_keys: dict[tuple[str, str], int] = {}
        self._event_seq = 0
        self._deliveries: dict[tuple[str, int], _DeliveryRow] = {}
        self._subscriptions: dict[str, tuple[NewSubscription, float]] = {}
        self._registry_version = 0

    # -- the bus ops of a batch --------------------------------------------------------------

    def _check_registry(self, ops: Sequence[Write]) -> None:
        for op in ops:
            if type(op) is NewEvent and op.registry not in (None, self._registry_version):
                raise ConcurrencyConflict(
                    f"the subscriptions changed (registry version {self._registry_version}, "
                    f"the publish chose its subscriptions by version {op.registry}): route "
                    "the event again"
                )

    def _apply_bus(self, op: Write, undo: list[Callable[[], None]]) -> None:
        if type(op) is NewEvent:
            key = (op.source, op.event_id)
            if key in self._event_keys:
                op.seq = None
                return
            self._event_seq += 1
            seq = op.seq = self._event_seq
            self._events[seq] = _EventRow(seq, op)
            self._event_keys[key] = seq
            undo.append(partial(self._forget_event, seq))
            for d in op.deliveries:
                self._deliveries[(d.subscription, seq)] = _DeliveryRow(
                    d.subscription,
                    seq,
                    _PENDING,
                    0,
                    d.due_at,
                    d.ordering_key,
                    d.owner,
                    None,
                    False,
                    op.recorded_at,
                )
        elif type(op) is UpdateDelivery:
            row = self._deliveries.get((op.subscription, op.seq))
            if (
                row is None
                or (op.if_owner is not None and row.owner != op.if_owner)
                or (op.if_status is not None and row.status != op.if_status)
            ):
                if op.required:
                    raise ConcurrencyConflict(
                        f"delivery of event {op.seq} to {op.subscription!r} is not as the "
                        "update expects (unknown, settled, or taken over by another worker)"
                    )
                return
            undo.append(partial(self._restore_delivery, dataclasses.replace(row)))
            row.status, row.attempts, row.due_at = op.status, op.attempts, op.due_at
            row.updated_at, row.owner = op.at, None
            if op.error is not None:
                row.error = op.error
            if op.redrive:
                row.redriven_at, row.redriven_by = op.at, op.redriven_by
        elif type(op) is ReplayDelivery:
            key2 = (op.subscription, op.seq)
            row = self._deliveries.get(key2)
            if row is None:
                self._deliveries[key2] = _DeliveryRow(
                    op.subscription,
                    op.seq,
                    _PENDING,
                    0,
                    op.at,
                    op.ordering_key,
                    None,
                    None,
                    True,
                    op.at,
                )
                undo.append(partial(self._drop_delivery, key2))
            elif row.status != _PENDING:
                undo.append(partial(self._restore_delivery, dataclasses.replace(row)))
                row.status, row.attempts, row.due_at, row.owner = _PENDING, 0, op.at, None
                row.error, row.replay, row.updated_at = None, True, op.at
        else:
            raise TypeError(f"not a write op: {op!r}")

    def _forget_event(self, seq: int) -> None:
        row = self._events.pop(seq)
        del self._event_keys[(row.op.source, row.op.event_id)]
        for d in row.op.deliveries:
            self._deliveries.pop((d.subscription, seq), None)

    def _drop_delivery(self, key: tuple[str, int]) -> None:
        del self._deliveries[key]

    def _restore_delivery(self, saved: _DeliveryRow) -> None:
        self._deliveries[(saved.subscription, saved.seq)] = saved

    # -- registry, claims, reads -------------------------------------------------------------

    async def register_subscriptions(
        self, subscriptions: Sequence[NewSubscription], at: float
    ) -> int:
        """Record subscriptions; the version moves if any is new or changed."""
        changed = False
        for sub in subscriptions:
            known = self._subscriptions.get(sub.name)
            if known is None or known[0] != sub:
                self._subscriptions[sub.name] = (sub, at)
                changed = True
        if changed:
            self._registry_version += 1
        return self._registry_version

    async def remove_subscription(self, name: str) -> int | None:
        """Forget a subscription and its deliveries; the version moves."""
        if self._subscriptions.pop(name, None) is None:
            return None
        doomed = [key for key in self._deliveries if key[0] == name]
        for key in doomed:
            del self._deliveries[key]
        self._registry_version += 1
        return len(doomed)

    async def subscriptions(self) -> tuple[int, list[SubscriptionInfo]]:
        """The registry's version and its subscriptions."""
        out = []
        for name in sorted(self._subscriptions):
            sub, at = self._subscriptions[name]
            when = to_datetime(at)
            assert when is not None
            out.append(
                SubscriptionInfo(
                    name,
                    SubscriptionKind(sub.kind),
                    orjson.loads(sub.pattern),
                    sub.ordered_by,
                    when,
                )
            )
        return self._registry_version, out

    async def registry_version(self) -> int:
        """The registry's version."""
        return self._registry_version

    def _is_head(self, row: _DeliveryRow) -> bool:
        if row.ordering_key is None:
            return True
        return not any(
            other.seq < row.seq
            and other.subscription == row.subscription
            and other.ordering_key == row.ordering_key
            and other.status == _PENDING
            for other in self._deliveries.values()
        )

    async def claim_deliveries(
        self, worker_id: str, now: float, limit: int, subscriptions: Sequence[str]
    ) -> list[ClaimedDelivery]:
        """Take due deliveries of ``subscriptions`` (FIFO heads only for ordered keys)."""
        if worker_id not in self._workers:
            return []
        served = set(subscriptions)
        due = [
            row
            for row in self._deliveries.values()
            if row.status == _PENDING
            and row.owner is None
            and row.subscription in served
            and row.due_at is not None
            and row.due_at <= now
            and self._is_head(row)
        ]
        due.sort(key=lambda r: (r.due_at or 0.0, r.seq))
        taken = due[:limit]
        for row in taken:
            row.owner = worker_id
        taken.sort(key=lambda r: r.seq)
        return [
            ClaimedDelivery(
                r.subscription, r.seq, r.attempts, r.replay, self._events[r.seq].op.event
            )
            for r in taken
        ]

    async def next_delivery_due(self, subscriptions: Sequence[str]) -> float | None:
        """The earliest due time of free pending deliveries of ``subscriptions``."""
        served = set(subscriptions)
        return min(
            (
                r.due_at
                for r in self._deliveries.values()
                if r.status == _PENDING
                and r.owner is None
                and r.subscription in served
                and r.due_at is not None
                and self._is_head(r)
            ),
            default=None,
        )

    async def release_deliveries(self, worker_id: str) -> int:
        """Let go of every delivery ``worker_id`` holds."""
        count = 0
        for row in self._deliveries.values():
            if row.owner == worker_id:
                row.owner = None
                count += 1
        return count

    def _release_orphaned_deliveries(self) -> None:
        for row in self._deliveries.values():
            if row.owner is not None and row.owner not in self._workers:
                row.owner = None

    async def get_event(self, seq: int) -> StoredEvent | None:
        """The event at ``seq``, or None."""
        row = self._events.get(seq)
        return None if row is None else _stored(row)

    async def find_events(self, event_id: str) -> list[StoredEvent]:
        """Events with this id, oldest first."""
        return [_stored(r) for r in self._events.values() if r.op.event_id == event_id]

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
        out = []
        for seq in sorted(self._events):
            op = self._events[seq].op
            if (
                seq > after_seq
                and (type is None or op.type == type)
                and (correlation_id is None or op.correlation_id == correlation_id)
                and (run_id is None or op.published_by == run_id)
                and (since is None or op.recorded_at >= since)
                and (until is None or op.recorded_at < until)
                and (not unrouted or not op.deliveries)
            ):
                out.append(_stored(self._events[seq]))
                if len(out) >= limit:
                    break
        return out

    async def deliveries(self, seq: int) -> list[Delivery]:
        """Every subscription's delivery of event ``seq``."""
        rows = [r for r in self._deliveries.values() if r.seq == seq]
        return [_delivery(r) for r in sorted(rows, key=lambda r: r.subscription)]

    async def list_deliveries(
        self,
        *,
        status: str | None = None,
        subscription: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries in event order, filtered."""
        rows = [
            r
            for r in self._deliveries.values()
            if r.seq > after_seq
            and (status is None or r.status == status)
            and (subscription is None or r.subscription == subscription)
        ]
        rows.sort(key=lambda r: (r.seq, r.subscription))
        return [_delivery(r) for r in rows[:limit]]

    async def prune_events(self, before: float, limit: int) -> int:
        """Delete old events with nothing left to deliver, and their deliveries."""
        pending = {r.seq for r in self._deliveries.values() if r.status == _PENDING}
        doomed = sorted(
            (row.op.recorded_at, seq)
            for seq, row in self._events.items()
            if row.op.recorded_at < before and seq not in pending
        )[:limit]
        for _, seq in doomed:
            row = self._events.pop(seq)
            del self._event_keys[(row.op.source, row.op.event_id)]
            for key in [k for k in self._deliveries if k[1] == seq]:
                del self._deliveries[key]
        return len(doomed)
