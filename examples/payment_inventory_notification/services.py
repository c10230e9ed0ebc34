"""Fake payment, inventory and notification services, shared by both variants.

The orchestrated saga (``orchestrated.py``) and the choreography (``choreographed.py``)
call the very same services, so the failure is the same in both: an order for an item
that is out of stock has its payment authorized, then its reservation refused.

Each service does its effect once per idempotency key (a retried call changes nothing)
and writes what it did to one journal, so ``shop.effects_of("o-2")`` shows the story of
an order: ``authorized pay-0002 (7900 cents)``, ``refunded pay-0002``, ``notified ...``.
State lives in memory: it belongs to the process that ran the steps and handlers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import legato


class OutOfStock(Exception):
    """Not enough stock to reserve the order's item: retrying will not help."""


class GatewayDown(Exception):
    """The payment gateway did not answer; trying again later may work."""


@dataclass
class Journal:
    """What the services did, in order, per order id."""

    entries: list[tuple[str, str]] = field(default_factory=list)  # (order id, effect)

    def record(self, order_id: str, effect: str) -> None:
        self.entries.append((order_id, effect))

    def of(self, order_id: str) -> list[str]:
        return [effect for oid, effect in self.entries if oid == order_id]


@dataclass
class Payment:
    """One authorization as the payment service recorded it."""

    payment_id: str
    order_id: str
    amount_cents: int
    refunds: int = 0  # how many times money went back: must never exceed 1


@dataclass
class Payments:
    """A payment gateway: one authorization per idempotency key, one refund per payment."""

    journal: Journal
    by_key: dict[str, Payment] = field(default_factory=dict)
    refund_outages: int = 0
    """How many refund calls fail next with ``GatewayDown`` (a failure to inject)."""

    async def authorize(self, order_id: str, amount_cents: int, *, idempotency_key: str) -> str:
        """Authorize ``amount_cents``; the same key returns the payment already made."""
        await asyncio.sleep(0)  # a real gateway is a network call
        payment = self.by_key.get(idempotency_key)
        if payment is None:
            payment = Payment(f"pay-{len(self.by_key) + 1:04d}", order_id, amount_cents)
            self.by_key[idempotency_key] = payment
            self.journal.record(order_id, f"authorized {payment.payment_id} ({amount_cents} cents)")
        return payment.payment_id

    async def refund(self, payment_id: str) -> None:
        """Give the money back; refunding a refunded payment changes nothing."""
        await asyncio.sleep(0)
        if self.refund_outages > 0:
            self.refund_outages -= 1
            raise GatewayDown(f"no answer from the gateway refunding {payment_id}")
        payment = self.find(payment_id)
        if payment.refunds == 0:
            payment.refunds = 1
            self.journal.record(payment.order_id, f"refunded {payment_id}")

    def find(self, payment_id: str) -> Payment:
        for payment in self.by_key.values():
            if payment.payment_id == payment_id:
                return payment
        raise LookupError(f"no payment {payment_id}")

    def of_order(self, order_id: str) -> list[Payment]:
        """Every payment taken for an order (one, however often it was authorized)."""
        return [p for p in self.by_key.values() if p.order_id == order_id]


@dataclass
class Inventory:
    """Stock per item; a reservation takes one unit of the order's item."""

    journal: Journal
    stock: dict[str, int]
    reservations: dict[str, str] = field(default_factory=dict)  # order id -> reservation id

    async def reserve(self, order_id: str, item: str) -> str:
        """Hold one ``item`` for the order; raise ``OutOfStock`` when none is left."""
        await asyncio.sleep(0)
        if order_id in self.reservations:
            return self.reservations[order_id]  # a retried reservation takes no second unit
        if self.stock.get(item, 0) <= 0:
            raise OutOfStock(f"{item} is out of stock")
        self.stock[item] -= 1
        reservation_id = f"res-{len(self.reservations) + 1:04d}"
        self.reservations[order_id] = reservation_id
        self.journal.record(order_id, f"reserved {reservation_id} ({item})")
        return reservation_id


@dataclass
class Notifications:
    """A mailer: one message per idempotency key."""

    journal: Journal
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (to, text)

    async def send(self, order_id: str, to: str, text: str, *, idempotency_key: str) -> None:
        """Send ``text`` to ``to`` once, however often it is called with this key."""
        await asyncio.sleep(0)
        if idempotency_key not in self.sent:
            self.sent[idempotency_key] = (to, text)
            self.journal.record(order_id, f"notified {to}: {text}")

    def to(self, customer: str) -> list[str]:
        """The messages a customer received, in order."""
        return [text for to, text in self.sent.values() if to == customer]


@dataclass
class Analytics:
    """An observer's tally of outcomes (``order.confirmed``: 1, ...)."""

    counts: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def count(self, outcome: str, *, key: str) -> None:
        """Count ``outcome`` once per ``key``."""
        if key not in self.seen:
            self.seen.add(key)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1


REFUND_RETRY = legato.Retry(max_attempts=4, initial_interval=timedelta(seconds=1))
"""How both variants retry a refund: 4 attempts over a few seconds (1 s, 2 s, 4 s, with
jitter), then an operator takes over. Short, so the demo's outage ends in seconds."""

DEFAULT_STOCK = {"keyboard": 10, "monitor": 5, "gpu": 0}
"""The warehouse: the gpu is sold out, so an order for one fails after it was paid."""


class Shop:
    """The services one variant talks to, with one journal of their effects."""

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.journal = Journal()
        self.payments = Payments(self.journal)
        self.inventory = Inventory(self.journal, dict(DEFAULT_STOCK if stock is None else stock))
        self.notifications = Notifications(self.journal)
        self.analytics = Analytics()

    def effects_of(self, order_id: str) -> list[str]:
        """What the services did for one order, in order."""
        return self.journal.of(order_id)


HAPPY_ORDER: dict[str, Any] = {
    "id": "o-1",
    "customer": "ada@example.com",
    "item": "keyboard",
    "amount_cents": 4900,
}
"""An order that goes through: keyboards are in stock."""

OUT_OF_STOCK_ORDER: dict[str, Any] = {
    "id": "o-2",
    "customer": "grace@example.com",
    "item": "gpu",
    "amount_cents": 79900,
}
"""The injected failure: the payment is authorized, then the gpu cannot be reserved."""
