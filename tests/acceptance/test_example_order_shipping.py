"""examples/order_shipping: the orchestrator, the shipping service and their request/reply.

In-process tests build their own app with ``define_orchestrator`` / ``define_shipping``:
fresh fake services and a ``FakeClock``, so packing times, retries and the two-day
shipping timeout pass in milliseconds. The last tests run ``main.py`` and
``stages.py`` as a user does, and read the database back with the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from examples.order_shipping.app import (
    ORDER_123,
    ORDER_124,
    ORDER_125,
    ORDER_126,
    SHIPPING_TIMEOUT,
    define_orchestrator,
    define_shipping,
    new_order,
)
from examples.order_shipping.services import Shop
from examples.order_shipping.stages import OrderStage, order_stages

import legato
from legato.testing import FakeClock
from tests.acceptance.cli_driver import REPO_ROOT, Cli, script_database
from tests.fixtures.db import fresh_database

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture
def shop() -> Shop:
    """Fresh fake orders, payments, warehouse and notification services."""
    return Shop()


@pytest.fixture(params=["memory", "sql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """In memory, or a SQLite file (a PostgreSQL schema in the PostgreSQL pass)."""
    return "memory://" if request.param == "memory" else fresh_database(tmp_path)


@pytest.fixture
async def app(database: str, clock: FakeClock, shop: Shop) -> AsyncIterator[legato.App]:
    """The orchestrator and the shipping service on one app, engine running in the test."""
    app = legato.App("order_shipping", database, clock=clock)
    define_shipping(define_orchestrator(app, shop), shop)
    async with app:
        yield app


async def start(app: legato.App, clock: FakeClock, order: dict[str, Any]) -> legato.RunHandle:
    """Start ``fulfil_order`` and let everything run that needs no time to pass."""
    run = await app.start("fulfil_order", order, run_id=f"order-{order['id']}")
    await clock.settle()
    return run


async def test_order_in_stock_ships_and_the_customer_is_told(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, ORDER_123)

    assert await run.result(timeout=1) == {"status": "Shipped", "tracking": "TRK-0001"}
    assert shop.orders.statuses["123"] == "Shipped"
    assert shop.effects_of("123")[-1] == (
        "notified customer-123@example.com: order 123 shipped: tracking TRK-0001"
    )


async def test_orchestrator_waits_for_the_reply_while_the_parcel_is_packed(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, ORDER_124)  # a sofa: two seconds of packing

    description = await run.describe()
    assert description.status is legato.RunStatus.WAITING
    assert description.next.startswith(
        "wait for a reply (shipping.shipped or shipping.backordered or shipping.out_of_stock)"
    )
    [request] = description.published
    assert (request.type, request.replied) == ("shipping.requested", False)
    assert shop.orders.statuses["124"] == "Created"
    assert shop.effects_of("124")[-1] == "reserved sofa"  # packing, not yet handed over

    await clock.advance(timedelta(seconds=2))

    assert (await run.result(timeout=1))["status"] == "Shipped"
    assert (await run.describe()).published[0].replied


async def test_sold_out_order_in_the_web_shop_is_backordered(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, ORDER_125)

    assert await run.result(timeout=1) == {"status": "BackOrdered"}
    assert shop.orders.statuses["125"] == "BackOrdered"
    assert shop.warehouse.backorders == ["125"]
    assert shop.effects_of("125")[-1] == (
        "notified customer-125@example.com: order 125 backordered: we ship it on restock"
    )


async def test_sold_out_order_in_the_outlet_is_canceled_and_refunded_once(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, ORDER_126)

    assert await run.result(timeout=1) == {
        "status": "Canceled",
        "reason": "lamp out of stock",
        "refunded": "pay-0001",
    }
    assert shop.warehouse.backorders == []  # the outlet takes none: nothing left behind
    assert shop.payments.refunded == ["pay-0001"]
    assert shop.effects_of("126") == [
        "created",
        "charged pay-0001 (2500 cents)",
        "canceled",
        "refunded pay-0001",
        "notified customer-126@example.com: order 126 canceled: lamp out of stock",
    ]


async def test_canceled_invoice_order_refunds_nothing(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, new_order("127", ["lamp"], shop="outlet", payment="invoice"))

    result = await run.result(timeout=1)
    assert (result["status"], result["refunded"]) == ("Canceled", None)
    assert shop.payments.charges == {}
    assert shop.payments.refunded == []
    assert "refund_payment" not in (await run.describe()).completed_steps


async def test_order_is_canceled_and_refunded_when_shipping_never_answers(
    database: str, clock: FakeClock, shop: Shop
) -> None:
    # Given the orchestrator alone: nobody serves shipping.requested.
    app = define_orchestrator(legato.App("orders_only", database, clock=clock), shop)
    async with app:
        run = await start(app, clock, ORDER_123)
        [request] = await app.list_events(type="shipping.requested")
        assert request.routed == 0  # unrouted, kept in the log

        await clock.advance(SHIPPING_TIMEOUT - timedelta(seconds=1))
        assert (await run.describe()).status is legato.RunStatus.WAITING

        await clock.advance(timedelta(seconds=1))
        result = await run.result(timeout=1)
    assert result == {
        "status": "Canceled",
        "reason": "the shipping service did not answer",
        "refunded": "pay-0001",
    }
    assert shop.payments.refunded == ["pay-0001"]
    assert (await run.describe()).published[0].timed_out


async def test_orders_in_flight_show_different_stages_side_by_side(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.orders.outages["125"] = 1  # the orders service is down for 125's first attempt
    orders = (ORDER_123, ORDER_124, ORDER_125, ORDER_126)
    for order in orders:
        await app.start("fulfil_order", order, run_id=f"order-{order['id']}")
    await clock.settle()

    stages = {stage.order_id: stage for stage in await order_stages(app)}

    assert list(stages) == ["123", "124", "125", "126"]  # oldest first
    assert stages["123"] == OrderStage("123", "Shipped", "completed", "nothing: the run completed")
    assert (stages["124"].status, stages["124"].run_status) == ("Created", "waiting")
    assert stages["124"].next.startswith("wait for a reply")
    assert stages["125"].status == "New"
    assert stages["125"].next.startswith("retry step 'create_order' (attempt 2) at ")
    assert (stages["126"].status, stages["126"].run_status) == ("Canceled", "completed")

    await clock.advance(timedelta(seconds=3))  # the retry (1.5 s to 3 s) and the packing

    assert [(s.order_id, s.status) for s in await order_stages(app)] == [
        ("123", "Shipped"),
        ("124", "Shipped"),
        ("125", "BackOrdered"),
        ("126", "Canceled"),
    ]
    assert [shop.orders.statuses[o["id"]] for o in orders] == [
        "Shipped",
        "Shipped",
        "BackOrdered",
        "Canceled",
    ]


async def test_request_and_reply_share_the_orders_correlation_id(
    app: legato.App, clock: FakeClock
) -> None:
    run = await start(app, clock, ORDER_125)
    await run.result(timeout=1)

    events = [stored.event for stored in await app.list_events(correlation_id=run.run_id)]

    assert [e.type for e in events] == ["shipping.requested", "shipping.backordered"]
    request, reply = events
    assert reply.causationid == request.id
    assert request.subject == "125"


async def test_reply_finds_the_order_after_both_sides_restart(
    tmp_path: Path, clock: FakeClock, shop: Shop
) -> None:
    # Given an order waiting for its sofa to be packed, then both processes stopping.
    database = fresh_database(tmp_path)

    def build() -> legato.App:
        app = legato.App("order_shipping", database, clock=clock)
        return define_shipping(define_orchestrator(app, shop), shop)

    async with build() as first:
        await start(first, clock, ORDER_124)
        assert (await first.describe("order-124")).status is legato.RunStatus.WAITING

    # When a new worker starts and the packing time passes,
    async with build() as second:
        await clock.settle()
        await clock.advance(timedelta(seconds=2))
        result = await second.result("order-124", timeout=1)

    # then the shipping service replies and the orchestrator, replayed, ships the order.
    assert result["status"] == "Shipped"
    assert shop.effects_of("124").count("charged pay-0001 (2500 cents)") == 1


def run_script(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def table(text: str) -> dict[str, list[str]]:
    """The first stages table in ``text`` (as ``print_stages`` writes it), by order id."""
    lines = text.split("order  status", 1)[1].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line.strip():
            break
        order_id, status, run_status, next_ = line.split(maxsplit=3)
        rows[order_id] = [status, run_status, next_]
    return rows


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_main_script_moves_four_orders_to_their_stages(tmp_path: Path) -> None:
    script = REPO_ROOT / "examples" / "order_shipping" / "main.py"

    database = script_database(tmp_path, "order_shipping.db")
    done = run_script(tmp_path, database.env, str(script))

    assert done.returncode == 0, done.stderr
    moving = table(done.stdout.split("while the orders move:")[1])
    assert moving["123"][:2] == ["Shipped", "completed"]
    assert moving["126"][:2] == ["Canceled", "completed"]
    # The sofa takes two seconds to pack: 124 still waits for the shipping service.
    assert moving["124"][:2] == ["Created", "waiting"]
    assert moving["124"][2].startswith("wait for a reply")
    end = table(done.stdout.split("at the end:")[1])
    assert {order: row[0] for order, row in end.items()} == {
        "123": "Shipped",
        "124": "Shipped",
        "125": "BackOrdered",
        "126": "Canceled",
    }
    assert "126: created; charged pay-0003 (2500 cents); canceled; refunded pay-0003" in done.stdout

    # Another process sees the same stages, from the database alone.
    stages = run_script(
        tmp_path,
        database.env,
        str(REPO_ROOT / "examples" / "order_shipping" / "stages.py"),
        *("--database", database.url),
    )
    assert stages.returncode == 0, stages.stderr
    assert table(stages.stdout) == end

    # And the CLI shows both sides' runs: four orders, four shipping runs started by events.
    cli = Cli(database.url)
    runs = cli.json("runs", "list")
    assert sorted((r["workflow"], r["status"]) for r in runs) == [
        *[("fulfil_order", "completed")] * 4,
        *[("shipping_service", "completed")] * 4,
    ]

    # Each order's flow is its request and one reply; the reply reached the run, not a
    # subscription, so the log lists it as unrouted (as the README says).
    flows: dict[str, list[tuple[str, int]]] = {}
    for stored in cli.json("events", "list"):
        order_id = stored["event"]["correlationid"].split("-")[1]
        flows.setdefault(order_id, []).append((stored["event"]["type"], stored["routed"]))
    assert flows == {
        "123": [("shipping.requested", 1), ("shipping.shipped", 0)],
        "124": [("shipping.requested", 1), ("shipping.shipped", 0)],
        "125": [("shipping.requested", 1), ("shipping.backordered", 0)],
        "126": [("shipping.requested", 1), ("shipping.out_of_stock", 0)],
    }
