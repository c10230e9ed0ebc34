"""The flow as an orchestrated saga: one workflow owns the sequence and its recovery.

``place_order`` authorizes the payment, reserves the item, notifies the customer. If the
reservation fails for good the workflow tells the customer, publishes ``order.canceled``
and lets the failure escape: the engine then runs ``refund_payment`` (the compensation of
``authorize_payment``) and the run ends ``compensated``. On success it publishes
``order.confirmed``. Those two outcome events are for observers (``sales_report`` here):
they react to the result and can never block or fail it. That is the hybrid shape.

Serve it with ``legato worker examples.payment_inventory_notification.orchestrated:app``
and start orders with ``legato start place_order --input '{...}'``, or run ``main.py``.
"""

from __future__ import annotations

from typing import Any

import legato

from .services import REFUND_RETRY, OutOfStock, Shop

# Sold out stays sold out for the next few seconds: fail at once and refund, no retry.
INVENTORY_RETRY = legato.Retry(max_attempts=3, non_retryable=(OutOfStock,))


def define(app: legato.App, shop: Shop) -> legato.App:
    """Register the saga's steps, the ``place_order`` workflow and an observer on ``app``."""

    @app.step(name="authorize_payment", retry=legato.Retry(max_attempts=5))
    async def authorize_payment(order: dict[str, Any]) -> str:
        """Authorize the order's amount; the step key makes a retry the same payment."""
        return await shop.payments.authorize(
            order["id"], order["amount_cents"], idempotency_key=legato.step_key()
        )

    @authorize_payment.compensate(retry=REFUND_RETRY)
    async def refund_payment(order: dict[str, Any], payment_id: str) -> None:
        """Undo ``authorize_payment`` (it gets the step's argument, then its result)."""
        await shop.payments.refund(payment_id)

    @app.step(name="reserve_inventory", retry=INVENTORY_RETRY)
    async def reserve_inventory(order: dict[str, Any]) -> str:
        """Hold the order's item; ``OutOfStock`` fails the step at once."""
        return await shop.inventory.reserve(order["id"], order["item"])

    @app.step(name="send_notification")
    async def send_notification(order: dict[str, Any], text: str) -> None:
        """Tell the customer (once per step key, however often the step runs)."""
        await shop.notifications.send(
            order["id"], order["customer"], text, idempotency_key=legato.step_key()
        )

    @app.workflow(name="place_order")
    async def place_order(order: dict[str, Any]) -> dict[str, Any]:
        """Authorize, reserve, notify; an inventory failure refunds the payment."""
        payment_id = await authorize_payment(order)
        try:
            reservation_id = await reserve_inventory(order)
        except legato.errors.StepFailed as failed:
            # The refund has not happened yet, but it is owed by the engine, not by us:
            # once the failure escapes, refund_payment runs, durably, with retries. If it
            # ever gave up, the run would end compensation_failed, in front of an operator.
            reason = failed.error_message
            await send_notification(
                order,
                f"order {order['id']} canceled ({reason}); payment {payment_id} is being refunded",
            )
            await legato.publish(
                "order.canceled",
                {"order_id": order["id"], "reason": reason, "refunding": payment_id},
                subject=order["id"],
            )
            raise
        await send_notification(order, f"order {order['id']} confirmed: {order['item']} reserved")
        outcome = {
            "order_id": order["id"],
            "payment_id": payment_id,
            "reservation_id": reservation_id,
        }
        # Only now, after the critical path succeeded: observers react to the outcome.
        await legato.publish("order.confirmed", outcome, subject=order["id"])
        return outcome

    @app.on({"type": ["order.confirmed", "order.canceled"]}, name="sales_report")
    def sales_report(event: legato.Event) -> None:
        """An observer: counts outcomes. If it fails, it retries on its own; orders go on."""
        # At-least-once delivery: count by the delivery's key, so a redelivery counts once.
        shop.analytics.count(event.type, key=legato.delivery().idempotency_key)

    return app


# The services the steps talk to, and the app a worker serves.
shop = Shop()
app = define(legato.App("orchestrated_shop"), shop)
