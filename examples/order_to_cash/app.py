"""Order to cash: charge, reserve, let a person review risky orders, ship, confirm.

Serve it with ``legato worker examples.order_to_cash.app:app`` (from the repository root),
start orders with ``legato start process_order --input '{...}'`` and answer fraud reviews
with ``legato tasks list`` / ``legato tasks complete ID --data '{"decision": "approve"}'``;
or run ``python examples/order_to_cash/main.py`` to execute three orders in one process.

The steps and the workflow are registered by ``define(app, shop)``, so a test can put them
on an app of its own (``memory://``, a ``FakeClock``) talking to fresh fake services.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

from .services import CardDeclined, OutOfStock, Shop

FRAUD_REVIEW_THRESHOLD_CENTS = 100_000
"""Orders of 1,000.00 or more wait for a person to review them."""

FIRST_REVIEWER, SECOND_REVIEWER = "reviewer-1", "reviewer-2"
FIRST_REVIEW_TIMEOUT = timedelta(hours=4)
"""How long the first reviewer has before the review escalates to the second."""
SECOND_REVIEW_TIMEOUT = timedelta(days=1)
"""How long the second reviewer has before the order is rejected."""

REVIEW_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "reject"]},
        "note": {"type": "string"},
    },
    "required": ["decision"],
    "additionalProperties": False,
}
"""The fraud review's answer (JSON Schema): a response that does not match is refused."""

# Exponential backoff with a cap: 1 s, 2 s, 4 s, 8 s, then 10 s between attempts.
# A declined card is declined again a second later: fail at once instead.
PAYMENT_RETRY = legato.Retry(
    max_attempts=6,
    initial_interval=timedelta(seconds=1),
    backoff=2.0,
    max_interval=timedelta(seconds=10),
    non_retryable=(CardDeclined,),
)
INVENTORY_RETRY = legato.Retry(max_attempts=3, non_retryable=(OutOfStock,))

SMALL_ORDER: dict[str, Any] = {
    "id": "o-1001",
    "customer": "ada@example.com",
    "card": "4242424242424242",
    "country": "DE",
    "items": [{"sku": "cable", "quantity": 2, "price_cents": 1_500}],
}
"""An order under the review threshold: no person looks at it."""

BIG_ORDER: dict[str, Any] = {
    "id": "o-1002",
    "customer": "grace@example.com",
    "card": "5555555555554444",
    "country": "US",
    "items": [
        {"sku": "laptop", "quantity": 1, "price_cents": 180_000},
        {"sku": "monitor", "quantity": 2, "price_cents": 40_000},
    ],
}
"""An order over the threshold: it waits for a fraud review (``main.py`` approves it)."""

RISKY_ORDER: dict[str, Any] = {**BIG_ORDER, "id": "o-1003", "customer": "mallory@example.com"}
"""Another order over the threshold (``main.py`` rejects it, so it is compensated)."""

DECLINED_ORDER: dict[str, Any] = {**SMALL_ORDER, "id": "o-1004", "card": "0000000000000002"}
"""An order whose card the gateway declines: the payment step fails for good at once."""


class OrderRejected(Exception):
    """A fraud reviewer rejected the order (or nobody decided in time)."""


def order_total(order: dict[str, Any]) -> int:
    """The order's amount in cents."""
    return sum(item["quantity"] * item["price_cents"] for item in order["items"])


def define(app: legato.App, shop: Shop) -> legato.App:
    """Register the order-to-cash steps and the ``process_order`` workflow on ``app``.

    Steps talk to the systems in ``shop``. Returns ``app``.
    """

    @app.step(name="validate_payment", retry=PAYMENT_RETRY, timeout=timedelta(seconds=30))
    async def validate_payment(order: dict[str, Any]) -> str:
        """Charge the order's card; the step key makes a retried charge the same charge."""
        # legato.step_key() is the same on every attempt and after a crash, so the gateway
        # charges once even when its answer is lost and the step runs again.
        return await shop.payments.charge(
            order["id"], order["card"], order_total(order), idempotency_key=legato.step_key()
        )

    @validate_payment.compensate
    async def refund_payment(order: dict[str, Any], charge_id: str) -> None:
        """Undo ``validate_payment``: it receives the step's argument, then its result."""
        await shop.payments.refund(charge_id)

    @app.step(name="reserve_inventory", retry=INVENTORY_RETRY)
    async def reserve_inventory(order: dict[str, Any]) -> str:
        """Hold the order's items in the warehouse; returns the reservation id."""
        return await shop.inventory.reserve(order["id"], order["items"])

    @reserve_inventory.compensate
    async def release_inventory(order: dict[str, Any], reservation_id: str) -> None:
        """Undo ``reserve_inventory``: put the items back on the shelf."""
        await shop.inventory.release(reservation_id)

    @app.step(name="calculate_shipping")
    async def calculate_shipping(order: dict[str, Any]) -> dict[str, Any]:
        """Ask the shipping provider for a carrier and a price."""
        return await shop.shipping.quote(order["country"], order["items"])

    @app.step(name="send_confirmation")
    async def send_confirmation(order: dict[str, Any], shipping: dict[str, Any]) -> str:
        """Mail the customer that the order ships (once, however often the step runs)."""
        subject = f"Order {order['id']} confirmed: ships with {shipping['carrier']}"
        return await shop.mailer.send(
            order["id"], order["customer"], subject, idempotency_key=legato.step_key()
        )

    @app.workflow(name="process_order")
    async def process_order(order: dict[str, Any]) -> dict[str, Any]:
        """Charge, reserve, review if risky, ship, confirm; a rejection undoes it all."""
        amount = order_total(order)
        charge_id = await validate_payment(order)  # CardDeclined -> fails for good, at once
        reservation_id = await reserve_inventory(order)
        review = None
        if amount >= FRAUD_REVIEW_THRESHOLD_CENTS:
            review = await fraud_review(order, amount)
            if review["decision"] == "reject":
                # Escapes the workflow: release_inventory, then refund_payment run
                # (newest first) and the run ends "compensated".
                who = review["reviewer"] or "timeout"
                raise OrderRejected(f"order {order['id']} rejected ({who}): {review['note']}")
        shipping = await calculate_shipping(order)
        message_id = await send_confirmation(order, shipping)
        return {
            "charge_id": charge_id,
            "reservation_id": reservation_id,
            "review": review,
            "shipping": shipping,
            "confirmation": message_id,
        }

    return app


async def fraud_review(order: dict[str, Any], amount: int) -> dict[str, Any]:
    """Ask the first reviewer; if they do not answer in time, the second; else reject.

    Workflow code (not a step): each ``legato.human_task`` is a durable wait, so the run
    can sleep for hours, even across restarts, until a reviewer answers.
    """
    data = {
        "order_id": order["id"],
        "customer": order["customer"],
        "amount_cents": amount,
        "items": order["items"],
    }
    for reviewer, timeout in (
        (FIRST_REVIEWER, FIRST_REVIEW_TIMEOUT),
        (SECOND_REVIEWER, SECOND_REVIEW_TIMEOUT),
    ):
        try:
            answer = await legato.human_task(
                "fraud_review", data, assignee=reviewer, form=REVIEW_FORM, timeout=timeout
            )
        except legato.errors.WaitTimeout:
            # Nobody answered: the task expires and the review escalates.
            data = {**data, "escalated_from": reviewer}
            continue
        return {
            "decision": answer["decision"],
            "note": answer.get("note", ""),
            "reviewer": reviewer,
        }
    return {"decision": "reject", "note": "no reviewer decided in time", "reviewer": None}


# The services the steps talk to, and the app a worker serves. Fakes that remember their
# effects, so the demo can show one charge per order and what a rejection undid.
shop = Shop()
app = legato.App("order_to_cash")
define(app, shop)
