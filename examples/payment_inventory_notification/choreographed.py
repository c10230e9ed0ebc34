"""The flow as a choreography: no workflow, each service reacts to the events it cares for.

    order.placed       -> payments.authorize   publishes payment.authorized
    payment.authorized -> inventory.reserve    publishes inventory.reserved or inventory.failed
    inventory.failed   -> payments.refund      publishes payment.refunded
    inventory.reserved -> notifications.send   tells the customer the order is confirmed
    payment.refunded   -> notifications.send   tells the customer the order is canceled

Each ``@app.on`` handler is a durable subscription: every matching event is delivered at
least once, retried, and dead-lettered when it keeps failing. Nobody owns the sequence:
the recovery plan (refund when the inventory fails) is the refund handler's subscription
to ``inventory.failed``, and the state of an order is the chain of events with its
correlation id.

Taking the money creates an obligation no handler owns: the item reserved, or the money
back. The expectation ``authorized-payment-is-settled`` states it: after
``payment.authorized``, ``inventory.reserved`` for the same correlation id within ten
minutes, unless ``payment.refunded`` comes first. When a service is down for good (the
gateway refusing every refund: ``shop.payments.refund_outages``), its delivery
dead-letters, the flow falls silent, and the deadline violates the instance: Legato logs
a warning, publishes ``legato.expectation.violated`` in the order's flow, and the next
look for alerts raises ``expectation_violated``.

Serve it with ``legato worker examples.payment_inventory_notification.choreographed:app``
and place orders by publishing ``order.placed`` (``place_order(app, order, order_ref)``,
or ``legato events publish order.placed --id ORDER_REF --data '{...}'``), or run ``main.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

from .services import REFUND_RETRY, OutOfStock, Shop

EXPECTATION = "authorized-payment-is-settled"
SETTLE_WITHIN = timedelta(minutes=10)
"""How long after ``payment.authorized`` the item must be reserved or the money back:
well past the retries of the handlers on the way (a refund's four take seconds)."""


def define(app: legato.App, shop: Shop, *, within: timedelta = SETTLE_WITHIN) -> legato.App:
    """Register the services' handlers on ``app``, and the expectation that watches them
    (``within``: its deadline)."""

    # Every handler passes legato.delivery().idempotency_key to its service: it is the same
    # on every retry and redelivery of this event to this subscription, so each effect
    # happens once although a handler may run more than once. A handler's publish has an
    # id derived from the delivery, so a retried handler publishes the same event once.

    @app.on("order.placed", name="payments.authorize")
    async def authorize_payment(event: legato.Event) -> None:
        order = event.data
        payment_id = await shop.payments.authorize(
            order["id"], order["amount_cents"], idempotency_key=legato.delivery().idempotency_key
        )
        await legato.publish(
            "payment.authorized", {**order, "payment_id": payment_id}, subject=order["id"]
        )

    @app.on("payment.authorized", name="inventory.reserve")
    async def reserve_inventory(event: legato.Event) -> None:
        order = event.data
        try:
            reservation_id = await shop.inventory.reserve(order["id"], order["item"])
        except OutOfStock as exc:
            # Not an error of this handler: a business outcome others must react to.
            await legato.publish(
                "inventory.failed", {**order, "reason": str(exc)}, subject=order["id"]
            )
            return
        await legato.publish(
            "inventory.reserved", {**order, "reservation_id": reservation_id}, subject=order["id"]
        )

    @app.on("inventory.failed", name="payments.refund", retry=REFUND_RETRY)
    async def refund_payment(event: legato.Event) -> None:
        order = event.data
        await shop.payments.refund(order["payment_id"])
        await legato.publish("payment.refunded", order, subject=order["id"])

    @app.on({"type": ["inventory.reserved", "payment.refunded"]}, name="notifications.send")
    async def notify_customer(event: legato.Event) -> None:
        order = event.data
        if event.type == "inventory.reserved":
            text = f"order {order['id']} confirmed: {order['item']} reserved"
        else:
            text = (
                f"order {order['id']} canceled ({order['reason']}); "
                f"payment {order['payment_id']} refunded"
            )
        await shop.notifications.send(
            order["id"], order["customer"], text, idempotency_key=legato.delivery().idempotency_key
        )

    # Who notices when the flow stops: no handler can, each knows only its own step.
    app.expect(
        EXPECTATION,
        after="payment.authorized",
        then="inventory.reserved",
        unless="payment.refunded",
        within=within,
    )
    return app


async def place_order(app: legato.App, order: dict[str, Any], order_ref: str) -> legato.Event:
    """What the storefront does: publish ``order.placed``; the services take it from there.

    ``order_ref`` is the event's id, so a storefront that retries the publish places the
    order once (the log keeps one event per source and id). With no correlation id of its
    own the event starts a flow named by its id: every event the services publish for
    this order carries it on (``legato flows show ORDER_REF``), with the handled event's
    id as causation id.
    """
    return await app.publish("order.placed", order, subject=order["id"], id=order_ref)


# The services the handlers talk to, and the app a worker serves.
shop = Shop()
app = define(legato.App("choreographed_shop"), shop)
