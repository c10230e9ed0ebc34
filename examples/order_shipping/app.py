"""Order shipping: an orchestrator asks the shipping service, by event, and waits for its answer.

``fulfil_order`` (the orchestrator) has the orders service create the order, charges a
card order, then publishes ``shipping.requested`` with ``legato.request`` and waits,
durably, for one of three replies:

- ``shipping.shipped``      -> status ``Shipped``, a success notification;
- ``shipping.backordered``  -> status ``BackOrdered``, a backorder notification;
- ``shipping.out_of_stock`` -> the order's shop takes no backorders: cancel the order,
  refund the payment if one was taken, status ``Canceled``, a cancellation notice.

No answer within ``SHIPPING_TIMEOUT`` cancels the order the same way.

``shipping_service`` is the shipping side: a workflow each ``shipping.requested`` starts
(``@app.workflow(on=...)``). It reserves the items, packs them (a durable sleep: packing
takes time) and answers with ``legato.reply``. It could run in another process, on
another app: the two sides share only the database and the event types.

Serve both with ``legato worker examples.order_shipping.app:app``; start orders with
``legato start fulfil_order --input '{...}'``; list their stages with
``python examples/order_shipping/stages.py``. Or run ``main.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

from .services import Shop

SHIPPING_TIMEOUT = timedelta(days=2)
"""How long the orchestrator waits for the shipping service before it cancels the order."""

SHOPS_TAKING_BACKORDERS = frozenset({"web"})
"""The web shop lets a customer wait for a restock; the outlet shop does not."""

SHIPPED, BACKORDERED, OUT_OF_STOCK = (
    "shipping.shipped",
    "shipping.backordered",
    "shipping.out_of_stock",
)

# The orders service being down for a moment (ServiceUnavailable) is no reason to give up:
# try again, a little later each time.
ORDERS_RETRY = legato.Retry(max_attempts=5, initial_interval=timedelta(seconds=3))


def new_order(
    number: str, items: list[str], *, shop: str = "web", payment: str = "card"
) -> dict[str, Any]:
    """An order as the client places it (``payment``: ``card``, charged now, or ``invoice``)."""
    return {
        "id": number,
        "customer": f"customer-{number}@example.com",
        "shop": shop,
        "payment": payment,
        "amount_cents": 2500 * len(items),
        "items": items,
    }


def define_orchestrator(app: legato.App, shop: Shop) -> legato.App:
    """Register the order orchestrator ``fulfil_order`` and its steps on ``app``."""

    @app.step(name="create_order", retry=ORDERS_RETRY)
    async def create_order(order: dict[str, Any]) -> None:
        """Have the orders service create the order (it retries while the service is down)."""
        await shop.orders.create(order)

    @app.step(name="take_payment")
    async def take_payment(order: dict[str, Any]) -> str:
        """Charge a card order; the step key makes a retried charge the same charge."""
        return await shop.payments.charge(
            order["id"], order["amount_cents"], idempotency_key=legato.step_key()
        )

    @app.step(name="set_status")
    async def set_status(order_id: str, status: str) -> None:
        await shop.orders.set_status(order_id, status)

    @app.step(name="refund_payment")
    async def refund_payment(payment_id: str) -> None:
        await shop.payments.refund(payment_id)

    @app.step(name="notify_customer")
    async def notify_customer(order: dict[str, Any], text: str) -> None:
        await shop.notifications.send(
            order["id"], order["customer"], text, idempotency_key=legato.step_key()
        )

    async def cancel(order: dict[str, Any], payment_id: str | None, reason: str) -> dict[str, Any]:
        """The failed path, as plain workflow code: each call below is a durable step."""
        await set_status(order["id"], "Canceled")
        if payment_id is not None:  # an invoice order took no money: nothing to refund
            await refund_payment(payment_id)
        await notify_customer(order, f"order {order['id']} canceled: {reason}")
        return {"status": "Canceled", "reason": reason, "refunded": payment_id}

    @app.workflow(name="fulfil_order")
    async def fulfil_order(order: dict[str, Any]) -> dict[str, Any]:
        """Create the order, ask shipping to ship it, and follow whichever answer comes."""
        await create_order(order)
        payment_id = await take_payment(order) if order["payment"] == "card" else None
        try:
            # Publishes shipping.requested and waits. Nothing is held in memory while it
            # waits: the run may be evicted, or the worker restarted, and the reply still
            # finds it (the reply's causationid names this request).
            answer = await legato.request(
                "shipping.requested",
                {
                    "order_id": order["id"],
                    "items": order["items"],
                    "allow_backorder": order["shop"] in SHOPS_TAKING_BACKORDERS,
                },
                reply=(SHIPPED, BACKORDERED, OUT_OF_STOCK),
                timeout=SHIPPING_TIMEOUT,
                subject=order["id"],
            )
        except legato.errors.WaitTimeout:
            return await cancel(order, payment_id, "the shipping service did not answer")
        if answer.type == SHIPPED:
            await set_status(order["id"], "Shipped")
            tracking = answer.data["tracking"]
            await notify_customer(order, f"order {order['id']} shipped: tracking {tracking}")
            return {"status": "Shipped", "tracking": tracking}
        if answer.type == BACKORDERED:
            await set_status(order["id"], "BackOrdered")
            await notify_customer(order, f"order {order['id']} backordered: we ship it on restock")
            return {"status": "BackOrdered"}
        return await cancel(order, payment_id, answer.data["reason"])

    return app


def define_shipping(app: legato.App, shop: Shop) -> legato.App:
    """Register the shipping service (a workflow per ``shipping.requested``) on ``app``."""

    @app.step(name="reserve_stock")
    async def reserve_stock(order_id: str, items: list[str]) -> float | None:
        """Reserve the items; returns the packing time in seconds, None when short."""
        return await shop.warehouse.reserve(order_id, items)

    @app.step(name="place_backorder")
    async def place_backorder(order_id: str, items: list[str]) -> None:
        await shop.warehouse.backorder(order_id, items)

    @app.step(name="hand_to_carrier")
    async def hand_to_carrier(order_id: str) -> str:
        return await shop.warehouse.hand_to_carrier(order_id)

    @app.workflow(name="shipping_service", on="shipping.requested")
    async def shipping_service(request: legato.Event) -> str:
        """Ship, backorder or refuse one request, and say which with ``legato.reply``."""
        order_id, items = request.data["order_id"], request.data["items"]
        packing_seconds = await reserve_stock(order_id, items)
        if packing_seconds is not None:
            await legato.sleep(timedelta(seconds=packing_seconds))  # a durable timer
            tracking = await hand_to_carrier(order_id)
            await legato.reply(
                request, SHIPPED, {"order_id": order_id, "tracking": tracking}, subject=order_id
            )
            return "shipped"
        if request.data["allow_backorder"]:
            await place_backorder(order_id, items)
            await legato.reply(request, BACKORDERED, {"order_id": order_id}, subject=order_id)
            return "backordered"
        reason = f"{', '.join(items)} out of stock"
        await legato.reply(
            request, OUT_OF_STOCK, {"order_id": order_id, "reason": reason}, subject=order_id
        )
        return "out of stock"

    return app


ORDER_123 = new_order("123", ["cable"])
"""In stock and packed at once: shipped within the second."""
ORDER_124 = new_order("124", ["sofa"])
"""In stock, but a sofa takes a while to pack: in flight while 123 is done."""
ORDER_125 = new_order("125", ["lamp"], payment="invoice")
"""Lamps are sold out and the web shop takes backorders; the orders service is down for
its first attempt (``main.py`` injects that), so it starts late."""
ORDER_126 = new_order("126", ["lamp"], shop="outlet")
"""Sold out in the outlet shop, which takes no backorders: canceled and refunded."""

# The services and the app a worker serves: the orchestrator and the shipping service.
shop = Shop()
app = define_shipping(define_orchestrator(legato.App("order_shipping"), shop), shop)
