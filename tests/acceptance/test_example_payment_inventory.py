"""examples/payment_inventory_notification: one flow, orchestrated and choreographed.

Both variants get the same failure (the item is out of stock after the payment was
authorized) and must end in the same consistent state: refunded exactly once, the
customer told once. The choreography's expectation, ``authorized-payment-is-settled``,
flags the order whose flow stops before either. In-process tests build each variant with
its ``define(app, shop)`` on fresh fake services and a ``FakeClock``; the last tests run
``main.py`` as a user does and read the database back with the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from examples.payment_inventory_notification import choreographed, orchestrated
from examples.payment_inventory_notification.choreographed import EXPECTATION, SETTLE_WITHIN
from examples.payment_inventory_notification.services import (
    HAPPY_ORDER,
    OUT_OF_STOCK_ORDER,
    Shop,
)

import legato
from legato.bus.alerts import DEFAULT_ALERT_INTERVAL
from legato.bus.expectations import VIOLATED
from legato.testing import FakeClock, received
from tests.acceptance.cli_driver import REPO_ROOT, Cli, script_database
from tests.fixtures.db import fresh_database

pytestmark = pytest.mark.timeout(10)

FAILURE_CHAIN = ["order.placed", "payment.authorized", "inventory.failed", "payment.refunded"]
CANCELLATION = "order o-2 canceled (gpu is out of stock); payment pay-0001 refunded"  # choreography


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shop() -> Shop:
    """Fresh fake payment, inventory and notification services."""
    return Shop()


@pytest.fixture(params=["memory", "sql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """In memory, or a SQLite file (a PostgreSQL schema in the PostgreSQL pass)."""
    return "memory://" if request.param == "memory" else fresh_database(tmp_path)


@pytest.fixture
async def saga(database: str, clock: FakeClock, shop: Shop) -> AsyncIterator[legato.App]:
    """The orchestrated variant, its engine running in the test's loop."""
    async with orchestrated.define(legato.App("saga", database, clock=clock), shop) as app:
        yield app


@pytest.fixture
async def chain(database: str, clock: FakeClock, shop: Shop) -> AsyncIterator[legato.App]:
    """The choreographed variant, its engine running in the test's loop."""
    async with choreographed.define(legato.App("chain", database, clock=clock), shop) as app:
        yield app


async def place_saga_order(app: legato.App, clock: FakeClock, order: dict[str, str]) -> str:
    """Run ``place_order`` for ``order`` as far as it goes without time passing."""
    run = await app.start("place_order", order, run_id=f"saga-{order['id']}")
    await clock.settle()
    return run.run_id


async def place_chain_order(app: legato.App, clock: FakeClock, order: dict[str, str]) -> str:
    """Publish ``order.placed`` and let the services react as far as they go."""
    correlation_id = f"chain-{order['id']}"
    await choreographed.place_order(app, order, correlation_id)
    await clock.settle()
    return correlation_id


async def types_of(app: legato.App, correlation_id: str) -> list[str]:
    return [stored.event.type for stored in await app.list_events(correlation_id=correlation_id)]


async def the_settlement(app: legato.App) -> legato.ExpectationInstance:
    """The one instance of ``authorized-payment-is-settled``."""
    [instance] = await app.list_expectations(name=EXPECTATION)
    return instance


async def violated_alerts(app: legato.App) -> list[legato.Alert]:
    return await app.list_alerts(kind="expectation_violated")


# -- orchestrated ---------------------------------------------------------------------------


async def test_saga_confirms_the_order_and_then_tells_observers(
    saga: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run_id = await place_saga_order(saga, clock, HAPPY_ORDER)

    assert await saga.result(run_id, timeout=1) == {
        "order_id": "o-1",
        "payment_id": "pay-0001",
        "reservation_id": "res-0001",
    }
    assert shop.notifications.to("ada@example.com") == ["order o-1 confirmed: keyboard reserved"]
    assert await types_of(saga, run_id) == ["order.confirmed"]
    assert [e.data["order_id"] for e in await received(saga, "sales_report")] == ["o-1"]
    assert shop.analytics.counts == {"order.confirmed": 1}


async def test_saga_refunds_exactly_once_when_inventory_fails_after_payment(
    saga: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run_id = await place_saga_order(saga, clock, OUT_OF_STOCK_ORDER)

    with pytest.raises(legato.errors.RunFailed) as failed:
        await saga.result(run_id, timeout=1)
    assert (failed.value.status, failed.value.step_name) == ("compensated", "reserve_inventory")
    [payment] = shop.payments.of_order("o-2")
    assert payment.refunds == 1
    assert shop.effects_of("o-2") == [
        "authorized pay-0001 (79900 cents)",
        "notified grace@example.com: order o-2 canceled (gpu is out of stock); "
        "payment pay-0001 is being refunded",
        "refunded pay-0001",
    ]
    description = await saga.describe(run_id)
    assert description.compensations_done == ["authorize_payment"]
    assert description.compensations_pending == []
    # Observers hear the outcome, never the steps.
    assert await types_of(saga, run_id) == ["order.canceled"]
    assert shop.analytics.counts == {"order.canceled": 1}


async def test_saga_refund_is_retried_until_the_gateway_answers(
    saga: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.payments.refund_outages = 2
    run_id = await place_saga_order(saga, clock, OUT_OF_STOCK_ORDER)
    [step] = [s for s in (await saga.describe(run_id)).steps if s.name == "authorize_payment"]
    assert step.compensation == "retrying"

    await clock.advance(timedelta(seconds=5))  # two backoffs of the compensation

    with pytest.raises(legato.errors.RunFailed) as failed:
        await saga.result(run_id, timeout=1)
    assert failed.value.status == "compensated"
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [1]


async def test_saga_whose_refund_keeps_failing_ends_compensation_failed_for_an_operator(
    saga: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.payments.refund_outages = 100
    run_id = await place_saga_order(saga, clock, OUT_OF_STOCK_ORDER)

    await clock.advance(timedelta(minutes=5))  # every attempt of the compensation

    description = await saga.describe(run_id)
    assert description.status is legato.RunStatus.COMPENSATION_FAILED
    assert description.compensations_pending == ["authorize_payment"]
    assert description.last_error is not None
    assert description.last_error["type"].endswith("GatewayDown")
    assert description.last_error["cause"]["type"].endswith("OutOfStock")
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [0]


# -- choreographed --------------------------------------------------------------------------


async def test_choreography_confirms_the_order_through_three_events(
    chain: legato.App, clock: FakeClock, shop: Shop
) -> None:
    correlation_id = await place_chain_order(chain, clock, HAPPY_ORDER)

    assert await types_of(chain, correlation_id) == [
        "order.placed",
        "payment.authorized",
        "inventory.reserved",
    ]
    assert shop.notifications.to("ada@example.com") == ["order o-1 confirmed: keyboard reserved"]
    assert [p.refunds for p in shop.payments.of_order("o-1")] == [0]
    assert await chain.list_runs() == []  # nothing owns the order: there is no run


async def test_choreographed_failure_ends_with_payment_refunded_and_a_notification(
    chain: legato.App, clock: FakeClock, shop: Shop
) -> None:
    correlation_id = await place_chain_order(chain, clock, OUT_OF_STOCK_ORDER)

    events = [s.event for s in await chain.list_events(correlation_id=correlation_id)]
    assert [e.type for e in events] == FAILURE_CHAIN
    # Each event was caused by the one before: the flow can be traced back to the order.
    assert [e.causationid for e in events[1:]] == [e.id for e in events[:-1]]
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [1]
    assert shop.notifications.to("grace@example.com") == [CANCELLATION]
    assert [e.type for e in await received(chain, "notifications.send")] == ["payment.refunded"]


async def test_choreographed_refund_is_retried_and_refunds_once(
    chain: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.payments.refund_outages = 1
    correlation_id = await place_chain_order(chain, clock, OUT_OF_STOCK_ORDER)
    assert await types_of(chain, correlation_id) == FAILURE_CHAIN[:3]  # refund failed once

    await clock.advance(timedelta(seconds=1))  # the delivery's first backoff

    assert await types_of(chain, correlation_id) == FAILURE_CHAIN
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [1]
    [failed_event] = await chain.list_events(type="inventory.failed")
    [delivery] = await chain.deliveries(failed_event.event.id, failed_event.event.source)
    assert (delivery.subscription, delivery.status, delivery.attempts) == (
        "payments.refund",
        "done",
        2,
    )


async def test_choreographed_refund_that_keeps_failing_is_a_dead_letter_nobody_else_sees(
    chain: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.payments.refund_outages = 100
    correlation_id = await place_chain_order(chain, clock, OUT_OF_STOCK_ORDER)

    await clock.advance(timedelta(minutes=5))  # every attempt of the delivery

    [dead] = await chain.list_dead_letters()
    assert (dead.subscription, dead.attempts) == ("payments.refund", 4)  # REFUND_RETRY
    assert dead.error is not None
    assert "GatewayDown" in dead.error["type"]
    # The customer paid, has nothing, and was told nothing: the flow just stops.
    assert await types_of(chain, correlation_id) == FAILURE_CHAIN[:3]
    assert shop.notifications.to("grace@example.com") == []
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [0]

    # Redriving the dead letter once the gateway is back finishes the flow.
    shop.payments.refund_outages = 0
    assert await chain.redrive(subscription="payments.refund") == 1
    await clock.settle()
    assert await types_of(chain, correlation_id) == FAILURE_CHAIN
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [1]


# -- choreographed: the expectation that notices -------------------------------------------


async def test_reserved_item_fulfils_the_settlement_and_its_deadline_passes_quietly(
    chain: legato.App, clock: FakeClock
) -> None:
    correlation_id = await place_chain_order(chain, clock, HAPPY_ORDER)

    settlement = await the_settlement(chain)
    assert (settlement.key, settlement.status) == (
        correlation_id,
        legato.ExpectationStatus.FULFILLED,
    )

    await clock.advance(SETTLE_WITHIN * 2)

    assert (await the_settlement(chain)).status is legato.ExpectationStatus.FULFILLED
    assert await chain.list_events(type=VIOLATED) == []
    assert await chain.list_alerts() == []


async def test_refund_after_out_of_stock_cancels_the_settlement(
    chain: legato.App, clock: FakeClock
) -> None:
    await place_chain_order(chain, clock, OUT_OF_STOCK_ORDER)

    assert (await the_settlement(chain)).status is legato.ExpectationStatus.CANCELLED

    await clock.advance(SETTLE_WITHIN * 2)

    assert (await the_settlement(chain)).status is legato.ExpectationStatus.CANCELLED
    assert await chain.list_events(type=VIOLATED) == []
    assert await chain.list_alerts() == []


async def test_refunds_down_for_good_violate_the_settlement_at_its_deadline_then_alert(
    chain: legato.App, clock: FakeClock, shop: Shop
) -> None:
    # Given a gateway that refuses every refund: the refund's delivery dead-letters
    shop.payments.refund_outages = 100
    correlation_id = await place_chain_order(chain, clock, OUT_OF_STOCK_ORDER)
    [authorized] = await chain.list_events(type="payment.authorized")
    await clock.advance(timedelta(minutes=5))  # every attempt of the refund's delivery
    assert [d.subscription for d in await chain.list_dead_letters()] == ["payments.refund"]
    settlement = await the_settlement(chain)
    assert settlement.status is legato.ExpectationStatus.OPEN
    assert authorized.event.recordedtime is not None
    assert settlement.deadline == authorized.event.recordedtime + SETTLE_WITHIN

    # When the clock reaches one second before the deadline: nothing yet
    await clock.advance(settlement.deadline - clock.now() - timedelta(seconds=1))
    assert (await the_settlement(chain)).status is legato.ExpectationStatus.OPEN
    assert await chain.list_events(type=VIOLATED) == []
    assert await violated_alerts(chain) == []

    # When it reaches the deadline: violated, once, in the order's flow
    await clock.advance(timedelta(seconds=1))
    assert (await the_settlement(chain)).status is legato.ExpectationStatus.VIOLATED
    [violation] = await chain.list_events(type=VIOLATED)
    assert violation.event.correlationid == correlation_id
    assert violation.event.causationid == authorized.event.id
    assert violation.event.data["missing"] == ["type inventory.reserved"]
    assert await types_of(chain, correlation_id) == [*FAILURE_CHAIN[:3], VIOLATED]
    # The look for alerts came a second ago: the alert waits for the next one.
    assert await violated_alerts(chain) == []

    # Then the next look raises the alert
    await clock.advance(DEFAULT_ALERT_INTERVAL)
    [alert] = await violated_alerts(chain)
    assert alert.status is legato.AlertStatus.RAISED
    assert alert.details["key"] == correlation_id
    assert alert.details["violation_id"] == violation.event.id
    assert f"expectation {EXPECTATION} violated for key {correlation_id}" in alert.summary
    # The customer paid and was told nothing; the violation changed no service's state.
    assert shop.notifications.to("grace@example.com") == []
    assert [p.refunds for p in shop.payments.of_order("o-2")] == [0]

    # And much later, still one violation, one alert
    await clock.advance(SETTLE_WITHIN * 2)
    assert len(await chain.list_events(type=VIOLATED)) == 1
    assert [a.times for a in await violated_alerts(chain)] == [1]


# -- the same failure, both ways ----------------------------------------------------------


@pytest.mark.parametrize("variant", ["orchestrated", "choreographed"])
async def test_out_of_stock_after_payment_ends_refunded_once_and_customer_told_once(
    variant: str, database: str, clock: FakeClock, shop: Shop
) -> None:
    define: Callable[[legato.App, Shop], legato.App] = (
        orchestrated.define if variant == "orchestrated" else choreographed.define
    )
    async with define(legato.App(variant, database, clock=clock), shop) as app:
        if variant == "orchestrated":
            await place_saga_order(app, clock, OUT_OF_STOCK_ORDER)
        else:
            await place_chain_order(app, clock, OUT_OF_STOCK_ORDER)

    assert [p.refunds for p in shop.payments.of_order("o-2")] == [1]
    [message] = shop.notifications.to("grace@example.com")
    assert message.startswith("order o-2 canceled (gpu is out of stock)")
    assert shop.inventory.reservations == {}
    assert shop.inventory.stock["gpu"] == 0


# -- the script, and what the CLI shows -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_main_script_runs_both_variants_and_the_cli_shows_their_events(tmp_path: Path) -> None:
    database = script_database(tmp_path, "payment_inventory_notification.db")
    script = REPO_ROOT / "examples" / "payment_inventory_notification" / "main.py"

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=database.env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "compensated (OutOfStock: gpu is out of stock)" in out
    assert out.count("payments: 1, refunds: 1") == 2  # the failure, in both variants
    assert out.count("payments: 1, refunds: 0") == 2  # the happy path, in both
    assert "sales report (an observer): {'order.confirmed': 1, 'order.canceled': 1}" in out
    assert f"expectation {EXPECTATION}: fulfilled (the item is reserved)" in out
    assert f"expectation {EXPECTATION}: cancelled (the payment was refunded)" in out

    cli = Cli(database.url)
    runs = cli.json("runs", "list")
    assert sorted((r["workflow"], r["status"]) for r in runs) == [
        ("place_order", "compensated"),
        ("place_order", "completed"),
    ]
    events = cli.json("events", "list")
    by_flow: dict[str, list[str]] = {}
    for stored in events:
        by_flow.setdefault(stored["event"]["correlationid"], []).append(stored["event"]["type"])
    flows = {flow.rsplit("-", 1)[0]: types for flow, types in by_flow.items()}
    assert flows == {
        "orchestrated-o-1": ["order.confirmed"],
        "orchestrated-o-2": ["order.canceled"],
        "choreographed-o-1": ["order.placed", "payment.authorized", "inventory.reserved"],
        "choreographed-o-2": FAILURE_CHAIN,
    }
    assert cli.json("deadletters", "list") == []
    expected = cli.json("expectations", "list")
    assert sorted((e["key"].rsplit("-", 1)[0], e["status"]) for e in expected) == [
        ("choreographed-o-1", "fulfilled"),
        ("choreographed-o-2", "cancelled"),
    ]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_main_script_with_refunds_down_shows_the_violation_and_its_alert(tmp_path: Path) -> None:
    database = script_database(tmp_path, "payment_inventory_notification.db")
    script = REPO_ROOT / "examples" / "payment_inventory_notification" / "main.py"

    done = subprocess.run(
        [sys.executable, str(script), "--refunds-down"],
        cwd=tmp_path,
        env=database.env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    shown = [
        "compensation_failed (GatewayDown: no answer from the gateway refunding pay-0001)",
        "inventory.failed     -> payments.refund (dead)",
        f"expectation {EXPECTATION}: open; nothing moves, its deadline is",
        f"expectation {EXPECTATION}: violated (neither happened in time)",
        f"alert raised: expectation {EXPECTATION} violated for key choreographed-o-2-",
        "dead letters: [('payments.refund', 4)]",
    ]
    positions = [out.find(line) for line in shown]
    assert -1 not in positions, out
    assert positions == sorted(positions), out

    # What an operator reads back: the violated instance, and its alert.
    client = legato.Client(database.url)
    try:
        [instance] = client.list_expectations(name=EXPECTATION)
        assert instance.status is legato.ExpectationStatus.VIOLATED
        assert instance.missing_patterns == ["type inventory.reserved"]
        [alert] = client.list_alerts(kind="expectation_violated")
        assert alert.details["key"] == instance.key
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.sqlite_only  # the script draws on a SQLite file of its own, whatever the pass
@pytest.mark.timeout(90)
def test_readme_diagrams_are_what_the_code_draws_today() -> None:
    script = REPO_ROOT / "examples" / "payment_inventory_notification" / "diagrams.py"
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}

    checked = subprocess.run(
        [sys.executable, str(script), "--check"], env=env, capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    readme = script.with_name("README.md").read_text()
    assert readme.count("```mermaid\n%% flow of correlation id") == 2
