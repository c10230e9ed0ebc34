"""Fake payment gateway, inventory, shipping provider and mailer that remember what they did.

Real systems live elsewhere; these stand in for them so the example runs anywhere and can
*show* its effects: which card was charged with which idempotency key, what was reserved,
released and refunded, and in which order. Every fake writes one line per effect to a
shared ``journal``, so a test can check that compensations ran newest first. State lives
in memory, so it belongs to the process that executed the steps (the worker, or
``main.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


class GatewayTimeout(Exception):
    """The gateway took the charge but its answer was lost (retry with the same key)."""


class CardDeclined(Exception):
    """The card was declined: retrying will not help."""


class OutOfStock(Exception):
    """Not enough stock to reserve the order's items: retrying will not help."""


@dataclass
class Charge:
    """One charge as the payment gateway recorded it."""

    charge_id: str
    order_id: str
    amount_cents: int
    idempotency_key: str
    refunded: bool = False


@dataclass
class PaymentGateway:
    """A payment gateway that charges once per idempotency key.

    A card number starting with ``"0000"`` is declined. ``lose_next_responses(n)`` makes
    the next ``n`` charges go through but lose their answer (``GatewayTimeout``), as a
    flaky network does: the step retries with the same ``legato.step_key()`` and the
    gateway returns the charge it already made.
    """

    journal: list[str] = field(default_factory=list)
    charges: dict[str, Charge] = field(default_factory=dict)  # by idempotency key
    calls: int = 0
    _lost_responses: int = 0

    def lose_next_responses(self, count: int) -> None:
        """Let the next ``count`` charges succeed but answer with a timeout."""
        self._lost_responses = count

    async def charge(
        self, order_id: str, card: str, amount_cents: int, *, idempotency_key: str
    ) -> str:
        """Charge ``card`` once per ``idempotency_key``; return the charge id."""
        await asyncio.sleep(0)  # a real gateway is a network call
        self.calls += 1
        if card.startswith("0000"):
            raise CardDeclined(f"card ending {card[-4:]} declined for order {order_id}")
        charge = self.charges.get(idempotency_key)
        if charge is None:
            charge = Charge(
                f"ch-{len(self.charges) + 1:04d}", order_id, amount_cents, idempotency_key
            )
            self.charges[idempotency_key] = charge
            self.journal.append(f"{order_id}: charged {charge.charge_id} ({amount_cents} cents)")
        if self._lost_responses > 0:
            self._lost_responses -= 1
            raise GatewayTimeout(f"no answer from the gateway for order {order_id}")
        return charge.charge_id

    async def refund(self, charge_id: str) -> None:
        """Refund a charge; refunding it again changes nothing."""
        await asyncio.sleep(0)
        for charge in self.charges.values():
            if charge.charge_id == charge_id:
                if not charge.refunded:
                    charge.refunded = True
                    self.journal.append(f"{charge.order_id}: refunded {charge_id}")
                return
        raise LookupError(f"no charge {charge_id}")

    def charges_for(self, order_id: str) -> list[Charge]:
        """Every charge made for an order (one, however often it was attempted)."""
        return [c for c in self.charges.values() if c.order_id == order_id]


@dataclass
class Inventory:
    """Stock per SKU; a reservation holds items until it is released."""

    stock: dict[str, int]
    journal: list[str] = field(default_factory=list)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)  # by order id

    async def reserve(self, order_id: str, items: list[dict[str, Any]]) -> str:
        """Hold the order's items; reserving the same order again returns its reservation."""
        await asyncio.sleep(0)
        held = self.reservations.get(order_id)
        if held is not None:
            return str(held["reservation_id"])  # a retried step must not hold stock twice
        for item in items:
            if self.stock.get(item["sku"], 0) < item["quantity"]:
                raise OutOfStock(f"not enough {item['sku']} for order {order_id}")
        for item in items:
            self.stock[item["sku"]] -= item["quantity"]
        reservation_id = f"res-{len(self.reservations) + 1:04d}"
        self.reservations[order_id] = {
            "reservation_id": reservation_id,
            "items": items,
            "released": False,
        }
        self.journal.append(f"{order_id}: reserved {reservation_id}")
        return reservation_id

    async def release(self, reservation_id: str) -> None:
        """Put a reservation's items back on the shelf; releasing it again changes nothing."""
        await asyncio.sleep(0)
        for order_id, held in self.reservations.items():
            if held["reservation_id"] == reservation_id:
                if not held["released"]:
                    held["released"] = True
                    for item in held["items"]:
                        self.stock[item["sku"]] += item["quantity"]
                    self.journal.append(f"{order_id}: released {reservation_id}")
                return
        raise LookupError(f"no reservation {reservation_id}")

    def is_reserved(self, order_id: str) -> bool:
        """True when the order holds a reservation that was not released."""
        held = self.reservations.get(order_id)
        return held is not None and not held["released"]


class Shipping:
    """A shipping provider's price list: a base rate per country plus a rate per item."""

    RATES_CENTS = {"DE": 490, "FR": 690, "US": 1990}

    async def quote(self, country: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The carrier and cost of shipping ``items`` to ``country``."""
        await asyncio.sleep(0)
        base = self.RATES_CENTS.get(country, 2990)
        quantity = sum(item["quantity"] for item in items)
        return {"carrier": "parcel-express", "cost_cents": base + 100 * (quantity - 1)}


@dataclass
class Mailer:
    """Sends each message once per idempotency key."""

    journal: list[str] = field(default_factory=list)
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # by idempotency key

    async def send(self, order_id: str, to: str, subject: str, *, idempotency_key: str) -> str:
        """Send a message (once per key); return its id."""
        await asyncio.sleep(0)
        if idempotency_key not in self.sent:
            message_id = f"msg-{len(self.sent) + 1:04d}"
            self.sent[idempotency_key] = {"message_id": message_id, "to": to, "subject": subject}
            self.journal.append(f"{order_id}: mailed {message_id} to {to}")
        return self.sent[idempotency_key]["message_id"]


@dataclass
class Shop:
    """The four systems an order touches, sharing one journal of their effects.

    Each journal line starts with the order id: ``"o-1003: released res-0002"``.
    """

    journal: list[str] = field(default_factory=list)
    payments: PaymentGateway = field(init=False)
    inventory: Inventory = field(init=False)
    shipping: Shipping = field(init=False)
    mailer: Mailer = field(init=False)

    def __post_init__(self) -> None:
        self.payments = PaymentGateway(self.journal)
        self.inventory = Inventory({"laptop": 50, "monitor": 50, "cable": 500}, self.journal)
        self.shipping = Shipping()
        self.mailer = Mailer(self.journal)

    def effects_of(self, order_id: str) -> list[str]:
        """The journal lines of one order, oldest first, without the order id."""
        prefix = f"{order_id}: "
        return [line.removeprefix(prefix) for line in self.journal if line.startswith(prefix)]
