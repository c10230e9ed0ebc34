"""Run four orders at once and show them side by side while they move, then at the end.

    python examples/order_shipping/main.py        # from the repository root

Runs and events go to ./order_shipping.db (or $LEGATO_DATABASE_URL); inspect them
afterwards with ``legato runs list --database sqlite:///order_shipping.db`` or
``python examples/order_shipping/stages.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

if not __package__:
    # Run as a file: make `examples.order_shipping` importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.order_shipping.app import ORDER_123, ORDER_124, ORDER_125, ORDER_126, app, shop
from examples.order_shipping.stages import order_stages, print_stages

ORDERS = (ORDER_123, ORDER_124, ORDER_125, ORDER_126)


async def main() -> None:
    """Start the four orders together; print their stages once 123 and 126 ended, and last."""
    app.use_database(os.environ.get("LEGATO_DATABASE_URL", "sqlite:///order_shipping.db"))
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = uuid.uuid4().hex[:6]
    # The orders service is down when 125 is first created: its create_order step retries.
    shop.orders.outages[ORDER_125["id"]] = 1
    async with app:
        runs = [
            await app.start("fulfil_order", order, run_id=f"order-{order['id']}-{suffix}")
            for order in ORDERS
        ]
        run_ids = [run.run_id for run in runs]
        # 123 ships at once and 126 is canceled at once; 124's sofa is still being packed
        # and 125 waits for the orders service to come back.
        for run in (runs[0], runs[3]):
            await run.result(timeout=30)
        print("while the orders move:")
        print_stages(await order_stages(app, run_ids))
        for run in runs:
            await run.result(timeout=30)
        print()
        print("at the end:")
        print_stages(await order_stages(app, run_ids))
        print()
        for order in ORDERS:
            print(f"{order['id']}: {'; '.join(shop.effects_of(order['id']))}")
        print()
        # The shipping service's runs share the order's correlation id: one flow per order.
        for run_id in run_ids:
            events = await app.list_events(correlation_id=run_id)
            print(f"events of {run_id}: {' -> '.join(e.event.type for e in events)}")


if __name__ == "__main__":
    asyncio.run(main())
