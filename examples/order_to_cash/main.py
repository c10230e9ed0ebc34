"""Run four orders in this process: shipped, approved, rejected by a reviewer, card declined.

    python examples/order_to_cash/main.py        # from the repository root

Runs go to ./order_to_cash.db (or $LEGATO_DATABASE_URL); inspect them afterwards with
``legato runs list --database sqlite:///order_to_cash.db``.

The two big orders wait for a fraud review. Here the script plays the reviewer: it lists
the open tasks, approves one order and rejects the other with ``app.complete_task``.
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
    # Run as a file: make `examples.order_to_cash` importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.order_to_cash.app import (
    BIG_ORDER,
    DECLINED_ORDER,
    RISKY_ORDER,
    SMALL_ORDER,
    app,
    shop,
)

import legato

DECISIONS: dict[str, dict[str, str]] = {
    BIG_ORDER["id"]: {"decision": "approve", "note": "known customer"},
    RISKY_ORDER["id"]: {"decision": "reject", "note": "card and address do not match"},
}
"""What the reviewer (this script) answers, by order id."""


async def open_tasks(inbox: legato.AsyncClient, count: int) -> list[legato.Task]:
    """Wait until ``count`` tasks are open in the inbox (the runs create them) and list them."""
    deadline = time.monotonic() + 30
    while True:
        tasks = await inbox.list_tasks(status="open")
        if len(tasks) >= count or time.monotonic() > deadline:
            return tasks
        await asyncio.sleep(0.05)


def row(*cells: Any) -> str:
    """One line of the table of runs."""
    widths = (22, 12, 10, 8, 9, 9)
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True))


async def main() -> None:
    """Run the four orders, review the big ones, then print what happened to each."""
    app.use_database(os.environ.get("LEGATO_DATABASE_URL", "sqlite:///order_to_cash.db"))
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = uuid.uuid4().hex[:6]
    # The gateway charges the first order but loses its answer: the retry reuses the key.
    shop.payments.lose_next_responses(1)
    orders = (SMALL_ORDER, BIG_ORDER, RISKY_ORDER, DECLINED_ORDER)
    # The client shares the app's store: it lists tasks while the engine runs here.
    inbox = legato.AsyncClient(app.store)
    async with app:
        runs = {
            order["id"]: await app.start(
                "process_order", order, run_id=f"order-{order['id']}-{suffix}"
            )
            for order in orders
        }
        for task in await open_tasks(inbox, len(DECISIONS)):
            order_id = task.data["order_id"]
            answer = DECISIONS[order_id]
            print(
                f"task {task.task_id} ({task.name} of {order_id}, for {task.assignee}, "
                f"due {task.due_at:%H:%M}): {answer['decision']}"
            )
            await app.complete_task(task.task_id, answer)

        print()
        print(row("run", "status", "review", "charged", "refunded", "reserved"))
        for order in orders:
            run = runs[order["id"]]
            try:
                await run.result(timeout=30)
            except legato.errors.RunFailed:
                pass  # the table and the lines below show how it ended
            description = await run.describe()
            charges = shop.payments.charges_for(order["id"])
            answered = await inbox.list_tasks(run_id=run.run_id, status="completed")
            print(
                row(
                    run.run_id,
                    description.status.value,
                    ",".join(t.response["decision"] for t in answered) or "-",
                    len(charges),
                    sum(c.refunded for c in charges),
                    shop.inventory.is_reserved(order["id"]),
                )
            )
        print()
        for order in orders:
            description = await runs[order["id"]].describe()
            print(
                f"{order['id']}: {description.status.value}; effects: "
                + ("; ".join(shop.effects_of(order["id"])) or "none")
            )
            error = description.last_error
            if description.status is not legato.RunStatus.COMPLETED and error:
                where = (
                    f"step {error['step']} failed after {error.get('attempts')} attempt(s)"
                    if error.get("step")
                    else "the workflow raised"
                )
                print(f"  {where}: {error['type'].rsplit('.')[-1]}: {error['message']}")
                print(f"  compensated: {description.compensations_done}")
    print(f"gateway calls: {shop.payments.calls}, charges: {len(shop.payments.charges)}")


if __name__ == "__main__":
    asyncio.run(main())
