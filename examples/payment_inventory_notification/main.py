"""Run the same two orders through both variants: one goes through, one is out of stock.

    python examples/payment_inventory_notification/main.py        # from the repository root
    python examples/payment_inventory_notification/main.py --refunds-down

Both variants write to ./payment_inventory_notification.db (or $LEGATO_DATABASE_URL);
inspect it afterwards with ``legato runs list``, ``legato events list`` and
``legato flows show CORRELATION_ID``, given ``--database sqlite:///payment_inventory_notification.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a file: make `examples.payment_inventory_notification` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.payment_inventory_notification import choreographed, orchestrated
from examples.payment_inventory_notification.services import HAPPY_ORDER, OUT_OF_STOCK_ORDER, Shop

import legato


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


async def run_orchestrated(
    app: legato.App, shop: Shop, orders: Sequence[dict[str, Any]], suffix: str = ""
) -> list[str]:
    """The saga: one run per order, which says itself how it ended and why.

    Returns the runs' ids (each is its flow's correlation id).
    """
    print("== orchestrated: the place_order workflow owns the sequence ==")
    run_ids = []
    async with app:
        for order in orders:
            run = await app.start(
                "place_order", order, run_id=f"orchestrated-{order['id']}{suffix}"
            )
            run_ids.append(run.run_id)
            try:
                await run.result(timeout=60)
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
    return run_ids


async def run_choreographed(
    app: legato.App, shop: Shop, orders: Sequence[dict[str, Any]], suffix: str = ""
) -> list[str]:
    """The choreography: one order.placed per order; the services do the rest.

    Returns the flows' correlation ids.
    """
    print("== choreographed: services react to each other's events ==")
    correlation_ids = []
    async with app:
        for order in orders:
            correlation_id = f"choreographed-{order['id']}{suffix}"
            correlation_ids.append(correlation_id)
            await choreographed.place_order(app, order, correlation_id)
            await wait_until_quiet(app, correlation_id, timeout=60)
            print(f"{correlation_id}: no run, only events")
            await print_flow(app, correlation_id, shop, order)
        dead = await app.list_dead_letters()
        print(f"  dead letters: {[(d.subscription, d.attempts) for d in dead] or 'none'}")
    return correlation_ids


async def main(refunds_down: bool) -> None:
    """Run both variants on one database and print what happened in each."""
    database = os.environ.get("LEGATO_DATABASE_URL", "sqlite:///payment_inventory_notification.db")
    orchestrated.app.use_database(database)
    choreographed.app.use_database(database)
    orders: Sequence[dict[str, Any]] = (HAPPY_ORDER, OUT_OF_STOCK_ORDER)
    if refunds_down:
        # Worse: the gateway refuses every refund, so each variant's recovery gives up.
        orders = (OUT_OF_STOCK_ORDER,)
        orchestrated.shop.payments.refund_outages = choreographed.shop.payments.refund_outages = 99
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = "-" + uuid.uuid4().hex[:6]
    await run_orchestrated(orchestrated.app, orchestrated.shop, orders, suffix)
    print()
    await run_choreographed(choreographed.app, choreographed.shop, orders, suffix)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refunds-down",
        action="store_true",
        help="the payment gateway refuses every refund: see what each variant leaves behind",
    )
    asyncio.run(main(parser.parse_args().refunds_down))
