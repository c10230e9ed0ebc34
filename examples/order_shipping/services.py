"""Fake orders, payments, warehouse and notification services that remember what they did.

Each does its effect once per idempotency key (or per order), and writes it to one
journal, so ``shop.effects_of("126")`` tells an order's story: ``created``, ``charged
pay-0002``, ``canceled``, ``refunded pay-0002``, ``notified ...``. State lives in memory:
it belongs to the process that ran the steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


class ServiceUnavailable(Exception):
    """The service did not answer; trying again later may work."""


@dataclass
class Journal:
    """What the services did, in order, per order id."""

    entries: list[tuple[str, str]] = field(default_factory=list)  # (order id, effect)

    def record(self, order_id: str, effect: str) -> None:
        self.entries.append((order_id, effect))

    def of(self, order_id: str) -> list[str]:
        return [effect for oid, effect in self.entries if oid == order_id]


@dataclass
class Orders:
    """The orders service: the system of record for an order and its status.

    ``outages`` makes it fail the first ``n`` calls to create one order
    (``{"125": 1}``), as a service that is briefly down does.
    """

    journal: Journal
    statuses: dict[str, str] = field(default_factory=dict)
    outages: dict[str, int] = field(default_factory=dict)

    async def create(self, order: dict[str, Any]) -> None:
        """Create the order (status ``Created``); creating it again changes nothing."""
        await asyncio.sleep(0)  # a real service is a network call
        if self.outages.get(order["id"], 0) > 0:
            self.outages[order["id"]] -= 1
            raise ServiceUnavailable("orders service unavailable")
        if order["id"] not in self.statuses:
            self.statuses[order["id"]] = "Created"
            self.journal.record(order["id"], "created")

    async def set_status(self, order_id: str, status: str) -> None:
        """Move the order to ``status`` (``Shipped``, ``BackOrdered``, ``Canceled``)."""
        await asyncio.sleep(0)
        if self.statuses.get(order_id) != status:
            self.statuses[order_id] = status
            self.journal.record(order_id, status.lower())


@dataclass
class Payments:
    """A payment gateway: one charge per idempotency key, one refund per charge."""

    journal: Journal
    charges: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (id, order)
    refunded: list[str] = field(default_factory=list)

    async def charge(self, order_id: str, amount_cents: int, *, idempotency_key: str) -> str:
        """Charge the order's card; the same key returns the charge already made."""
        await asyncio.sleep(0)
        if idempotency_key not in self.charges:
            payment_id = f"pay-{len(self.charges) + 1:04d}"
            self.charges[idempotency_key] = (payment_id, order_id)
            self.journal.record(order_id, f"charged {payment_id} ({amount_cents} cents)")
        return self.charges[idempotency_key][0]

    async def refund(self, payment_id: str) -> None:
        """Give the money back; refunding twice changes nothing."""
        await asyncio.sleep(0)
        if payment_id not in self.refunded:
            self.refunded.append(payment_id)
            order_id = next(o for p, o in self.charges.values() if p == payment_id)
            self.journal.record(order_id, f"refunded {payment_id}")


@dataclass
class Warehouse:
    """The shipping service's warehouse: stock, packing time per item, carrier, backorders."""

    journal: Journal
    stock: dict[str, int]
    packing_seconds: dict[str, float]
    reserved: dict[str, list[str]] = field(default_factory=dict)  # order id -> items
    backorders: list[str] = field(default_factory=list)
    parcels: dict[str, str] = field(default_factory=dict)  # order id -> tracking number

    async def reserve(self, order_id: str, items: list[str]) -> float | None:
        """Take the items off the shelf and return how long packing takes (seconds);
        None, taking nothing, when one of them is short."""
        await asyncio.sleep(0)
        if order_id not in self.reserved:
            if any(self.stock.get(item, 0) < items.count(item) for item in items):
                return None
            for item in items:
                self.stock[item] -= 1
            self.reserved[order_id] = list(items)
            self.journal.record(order_id, f"reserved {', '.join(items)}")
        return max(self.packing_seconds.get(item, 0.0) for item in items)

    async def backorder(self, order_id: str, items: list[str]) -> None:
        """Put the order on the restock list."""
        await asyncio.sleep(0)
        if order_id not in self.backorders:
            self.backorders.append(order_id)
            self.journal.record(order_id, f"backordered {', '.join(items)}")

    async def hand_to_carrier(self, order_id: str) -> str:
        """Give the packed parcel to the carrier; returns its tracking number."""
        await asyncio.sleep(0)
        if order_id not in self.parcels:
            self.parcels[order_id] = f"TRK-{len(self.parcels) + 1:04d}"
            self.journal.record(order_id, f"handed to carrier as {self.parcels[order_id]}")
        return self.parcels[order_id]


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


DEFAULT_STOCK = {"cable": 100, "sofa": 3, "lamp": 0}
PACKING_SECONDS = {"cable": 0.0, "sofa": 2.0, "lamp": 0.5}
"""A cable is packed at once; a sofa takes two seconds (hours, in a real warehouse)."""


class Shop:
    """Every service of the shop, with one journal of their effects."""

    def __init__(
        self,
        stock: dict[str, int] | None = None,
        packing_seconds: dict[str, float] | None = None,
    ) -> None:
        self.journal = Journal()
        self.orders = Orders(self.journal)
        self.payments = Payments(self.journal)
        self.warehouse = Warehouse(
            self.journal,
            dict(DEFAULT_STOCK if stock is None else stock),
            dict(PACKING_SECONDS if packing_seconds is None else packing_seconds),
        )
        self.notifications = Notifications(self.journal)

    def effects_of(self, order_id: str) -> list[str]:
        """What the services did for one order, in order."""
        return self.journal.of(order_id)
