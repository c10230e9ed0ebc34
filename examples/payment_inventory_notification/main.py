"""Run the same two orders through both variants: one goes through, one is out of stock.

    python examples/payment_inventory_notification/main.py        # from the repository root

Both variants write to ./payment_inventory_notification.db (or $LEGATO_DATABASE_URL);
inspect it afterwards with ``legato runs list``, ``legato events list`` and
``legato flows show CORRELATION_ID``, given ``--database sqlite:///payment_inventory_notification.db``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a file: make `examples.payment_inventory_notification` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.payment_inventory_notification import choreographed, orchestrated
from examples.payment_inventory_notification.services import (
    HAPPY_ORDER,
    OUT_OF_STOCK_ORDER,
    Shop,
)

import legato

ORDERS = (HAPPY_ORDER, OUT_OF_STOCK_ORDER)


async def wait_until_quiet(app: legato.App, correlation_id: str, timeout: float = 30) -> None:
    """Wait until every event of the flow was handled by every subscription it went to.

    A choreography has no end of its own: nothing says "this order is finished". All one
    can do from outside is wait until its events stop causing work.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = await app.list_events(correlation_id=correlation_id)
        statuses = [
            delivery.status
            for stored in events
            for delivery in await app.deliveries(stored.event.id, stored.event.source)
        ]
        if events and all(s != "pending" for s in statuses):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"flow {correlation_id} still busy after {timeout}s")


async def print_flow(
    app: legato.App, correlation_id: str, shop: Shop, order: dict[str, Any]
) -> None:
    """The events of one flow, who handled each, and what the services did."""
    print(f"  events of {correlation_id}:")
    for stored in await app.list_events(correlation_id=correlation_id):
        deliveries = await app.deliveries(stored.event.id, stored.event.source)
        handled = ", ".join(f"{d.subscription} ({d.status.value})" for d in deliveries) or "nobody"
        print(f"    {stored.event.type:<20} -> {handled}")
    print(f"  effects: {'; '.join(shop.effects_of(order['id']))}")
    refunds = sum(p.refunds for p in shop.payments.of_order(order["id"]))
    print(f"  payments: {len(shop.payments.of_order(order['id']))}, refunds: {refunds}")


async def run_orchestrated(database: str, suffix: str) -> None:
    """The saga: one run per order, which says itself how it ended and why."""
    print("== orchestrated: the place_order workflow owns the sequence ==")
    app, shop = orchestrated.app, orchestrated.shop
    app.use_database(database)
    async with app:
        for order in ORDERS:
            run = await app.start(
                "place_order", order, run_id=f"orchestrated-{order['id']}-{suffix}"
            )
            try:
                await run.result(timeout=30)
            except legato.errors.RunFailed:
                pass  # describe() below says how it ended
            description = await run.describe()
            error = description.last_error
            reason = f" ({error['type'].rsplit('.')[-1]}: {error['message']})" if error else ""
            print(f"{run.run_id}: {description.status.value}{reason}")
            print(f"  completed steps: {', '.join(description.completed_steps)}")
            print(f"  compensated:     {', '.join(description.compensations_done) or '-'}")
            print(f"  next:            {description.next}")
            await wait_until_quiet(app, run.run_id)  # the observer's delivery too
            await print_flow(app, run.run_id, shop, order)
    print(f"  sales report (an observer): {shop.analytics.counts}")


async def run_choreographed(database: str, suffix: str) -> None:
    """The choreography: one order.placed per order; the services do the rest."""
    print("== choreographed: services react to each other's events ==")
    app, shop = choreographed.app, choreographed.shop
    app.use_database(database)
    async with app:
        for order in ORDERS:
            correlation_id = f"choreographed-{order['id']}-{suffix}"
            await choreographed.place_order(app, order, correlation_id)
            await wait_until_quiet(app, correlation_id)
            print(f"{correlation_id}: no run, only events")
            await print_flow(app, correlation_id, shop, order)


async def main() -> None:
    """Run both variants on one database and print what happened in each."""
    database = os.environ.get("LEGATO_DATABASE_URL", "sqlite:///payment_inventory_notification.db")
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = uuid.uuid4().hex[:6]
    await run_orchestrated(database, suffix)
    print()
    await run_choreographed(database, suffix)


if __name__ == "__main__":
    asyncio.run(main())
