"""Every order the orchestrator handles, side by side: its status and what happens next.

    python examples/order_shipping/stages.py --database sqlite:///order_shipping.db

The stage comes from Legato alone (each ``fulfil_order`` run and ``describe()``), so this
works from any process, while a worker runs the orders elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import legato


@dataclass(frozen=True)
class OrderStage:
    """Where one order stands."""

    order_id: str
    status: str
    """``New``, ``Created``, then ``Shipped``, ``BackOrdered`` or ``Canceled``."""
    run_status: str
    next: str
    """What happens next, in Legato's words (``describe().next``)."""


def order_status(description: legato.RunDescription) -> str:
    """The order's status as its run tells it."""
    if isinstance(description.output, dict) and "status" in description.output:
        return str(description.output["status"])
    return "Created" if "create_order" in description.completed_steps else "New"


async def order_stages(
    source: legato.App | legato.AsyncClient, run_ids: Iterable[str] | None = None
) -> list[OrderStage]:
    """The stage of each ``fulfil_order`` run (only ``run_ids``, if given), oldest first."""
    if run_ids is None:
        runs = await source.list_runs(workflow="fulfil_order", limit=1000, payloads=False)
        run_ids = [run.run_id for run in reversed(runs)]
    stages = []
    for run_id in run_ids:
        description = await source.describe(run_id)
        stages.append(
            OrderStage(
                description.input[0]["id"],
                order_status(description),
                description.status.value,
                description.next,
            )
        )
    return stages


def print_stages(stages: Iterable[OrderStage]) -> None:
    """A table: order, status, run status, next."""
    print(f"{'order':<6} {'status':<12} {'run':<10} next")
    for stage in stages:
        print(f"{stage.order_id:<6} {stage.status:<12} {stage.run_status:<10} {stage.next}")


async def main(database: str) -> None:
    async with legato.AsyncClient(database) as client:
        print_stages(await order_stages(client))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///order_shipping.db")
    asyncio.run(main(parser.parse_args().database))
