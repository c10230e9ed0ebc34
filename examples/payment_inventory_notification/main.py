"""Run the same two orders through both variants: one goes through, one is out of stock.

    python examples/payment_inventory_notification/main.py        # from the repository root
    python examples/payment_inventory_notification/main.py --refunds-down

Both variants write to ./payment_inventory_notification.db (or $LEGATO_DATABASE_URL);
inspect it afterwards with ``legato runs list``, ``legato events list``,
``legato flows show CORRELATION_ID`` and ``legato expectations list``, given
``--database sqlite:///payment_inventory_notification.db``.

The choreography's expectation has a deadline of ten seconds here (``DEMO_SETTLE_WITHIN``),
not ten minutes, so ``--refunds-down`` shows its violation and the alert in real time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a file: make `examples.payment_inventory_notification` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.payment_inventory_notification import choreographed, orchestrated
from examples.payment_inventory_notification.services import HAPPY_ORDER, OUT_OF_STOCK_ORDER, Shop

import legato

DEMO_SETTLE_WITHIN = timedelta(seconds=10)
"""The demo's deadline for ``authorized-payment-is-settled``: past the refund's last retry
(seven seconds at most), so with ``--refunds-down`` the dead letter comes first."""
DEMO_ALERT_INTERVAL = timedelta(seconds=1)
"""How often the demo's choreography looks for alerts (ten seconds unless told)."""
SETTLED = {
    legato.ExpectationStatus.FULFILLED: "the item is reserved",
    legato.ExpectationStatus.CANCELLED: "the payment was refunded",
    legato.ExpectationStatus.VIOLATED: "neither happened in time",
    legato.ExpectationStatus.LATE_FULFILLED: "the item was reserved, after the deadline",
}


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Poll ``check`` until it is true."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout:.0f}s for {what}")
        await asyncio.sleep(0.05)


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
        # Quiet only if no event came meanwhile: a delivery that ended while we read the
        # others may have published the next one.
        again = await app.list_events(correlation_id=correlation_id)
        if events and all(s != "pending" for s in statuses) and len(again) == len(events):
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
        handled = (
            ", ".join(
                f"{d.subscription} ({d.status.value})"
                for d in deliveries
                if not d.subscription.startswith("expectation:")  # Legato's watch: see below
            )
            or "nobody"
        )
        print(f"    {stored.event.type:<20} -> {handled}")
    print(f"  effects: {'; '.join(shop.effects_of(order['id']))}")
    refunds = sum(p.refunds for p in shop.payments.of_order(order["id"]))
    print(f"  payments: {len(shop.payments.of_order(order['id']))}, refunds: {refunds}")


async def print_expectation(app: legato.App, correlation_id: str) -> None:
    """How ``authorized-payment-is-settled`` judged the flow: at once if it settled, else
    at its deadline, then the alert the next look for alerts raises."""
    name = choreographed.EXPECTATION

    async def instance() -> legato.ExpectationInstance:
        [found] = await app.list_expectations(name=name, correlation_id=correlation_id)
        return found

    async def closed() -> bool:
        return (await instance()).status is not legato.ExpectationStatus.OPEN

    inst = await instance()
    if inst.status is legato.ExpectationStatus.OPEN:
        left = (inst.deadline - datetime.now(UTC)).total_seconds()
        print(f"  expectation {name}: open; nothing moves, its deadline is {left:.0f}s away")
        await wait_for(f"the deadline of {name}", closed, timeout=left + 30)
        inst = await instance()
    print(f"  expectation {name}: {inst.status.value} ({SETTLED[inst.status]})")
    if inst.status is not legato.ExpectationStatus.VIOLATED:
        return

    async def alerts() -> list[legato.Alert]:
        raised = await app.list_alerts(kind="expectation_violated", status="raised")
        return [a for a in raised if a.details.get("violation_id") == inst.violation_id]

    async def alerted() -> bool:
        return bool(await alerts())

    await wait_for(f"the alert of {name}", alerted, timeout=30)
    [alert] = await alerts()
    print(f"  alert raised: {alert.summary}")


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
            await print_expectation(app, correlation_id)
        dead = await app.list_dead_letters()
        print(f"  dead letters: {[(d.subscription, d.attempts) for d in dead] or 'none'}")
    return correlation_ids


async def main(refunds_down: bool) -> None:
    """Run both variants on one database and print what happened in each."""
    database = os.environ.get("LEGATO_DATABASE_URL", "sqlite:///payment_inventory_notification.db")
    orchestrated.app.use_database(database)
    # The choreography as its module's app, but with the demo's deadline and alert interval.
    shop = Shop()
    chain = legato.App("choreographed_shop", database, alert_interval=DEMO_ALERT_INTERVAL)
    choreographed.define(chain, shop, within=DEMO_SETTLE_WITHIN)
    orders: Sequence[dict[str, Any]] = (HAPPY_ORDER, OUT_OF_STOCK_ORDER)
    if refunds_down:
        # Worse: the gateway refuses every refund, so each variant's recovery gives up.
        orders = (OUT_OF_STOCK_ORDER,)
        orchestrated.shop.payments.refund_outages = shop.payments.refund_outages = 99
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = "-" + uuid.uuid4().hex[:6]
    await run_orchestrated(orchestrated.app, orchestrated.shop, orders, suffix)
    print()
    await run_choreographed(chain, shop, orders, suffix)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refunds-down",
        action="store_true",
        help="the payment gateway refuses every refund: see what each variant leaves behind",
    )
    asyncio.run(main(parser.parse_args().refunds_down))
