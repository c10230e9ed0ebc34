"""examples/order_to_cash on the time-skipping test kit: every path, in milliseconds.

Each test builds its own app with ``define(app, shop)``: fresh fake services, a
``FakeClock``, and a store (in memory, or a SQLite file for the paths that wait). Hours
of review deadlines pass with ``await clock.advance(...)``; nothing sleeps for real.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from examples.order_to_cash.app import BIG_ORDER, DECLINED_ORDER, SMALL_ORDER, define
from examples.order_to_cash.services import Shop

import legato
from legato.testing import FakeClock
from tests.acceptance.cli_driver import script_database
from tests.fixtures.db import fresh_database

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture
def shop() -> Shop:
    """Fresh fake payment gateway, inventory, shipping provider and mailer."""
    return Shop()


@pytest.fixture(params=["memory", "sql"])
async def app(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, shop: Shop
) -> AsyncIterator[legato.App]:
    """The order-to-cash app on the fake clock, its engine running in the test's loop."""
    database = "memory://" if request.param == "memory" else fresh_database(tmp_path)
    app = define(legato.App("order_to_cash", database, clock=clock), shop)
    async with app:
        yield app


@pytest.fixture
def inbox(app: legato.App) -> legato.AsyncClient:
    """A client on the app's store, to list human tasks (it is not closed: the app owns it)."""
    return legato.AsyncClient(app.store)


async def open_task(inbox: legato.AsyncClient, run: legato.RunHandle) -> legato.Task:
    """The one open task of ``run``."""
    tasks = await inbox.list_tasks(run_id=run.run_id)
    assert len(tasks) == 1, tasks
    return tasks[0]


async def start(app: legato.App, clock: FakeClock, order: dict[str, Any]) -> legato.RunHandle:
    """Start ``process_order`` and let it run until it waits (no time passes)."""
    run = await app.start("process_order", order, run_id=f"order-{order['id']}")
    await clock.settle()
    return run


async def test_small_order_ships_without_review(
    app: legato.App, clock: FakeClock, shop: Shop, inbox: legato.AsyncClient
) -> None:
    run = await start(app, clock, SMALL_ORDER)

    result = await run.result(timeout=1)
    assert result["review"] is None
    assert result["shipping"] == {"carrier": "parcel-express", "cost_cents": 590}
    assert await inbox.list_tasks(status=None) == []
    assert shop.effects_of("o-1001") == [
        "charged ch-0001 (3000 cents)",
        "reserved res-0001",
        "mailed msg-0001 to ada@example.com",
    ]


async def test_big_order_approved_by_the_first_reviewer(
    app: legato.App, clock: FakeClock, shop: Shop, inbox: legato.AsyncClient
) -> None:
    run = await start(app, clock, BIG_ORDER)

    # Charged and reserved, then waiting for a person.
    assert (await run.describe()).status is legato.RunStatus.WAITING
    assert shop.effects_of("o-1002") == ["charged ch-0001 (260000 cents)", "reserved res-0001"]
    task = await open_task(inbox, run)
    assert (task.name, task.assignee) == ("fraud_review", "reviewer-1")
    assert task.data["amount_cents"] == 260_000
    assert task.due_at == clock.now() + timedelta(hours=4)

    # An answer outside the form is refused and the task stays open.
    with pytest.raises(legato.errors.InvalidTaskResponse):
        await app.complete_task(task.task_id, {"decision": "maybe"})
    await app.complete_task(task.task_id, {"decision": "approve", "note": "known customer"})
    await clock.settle()  # the answer wakes the run; it finishes without time passing

    result = await run.result(timeout=1)
    assert result["review"] == {
        "decision": "approve",
        "note": "known customer",
        "reviewer": "reviewer-1",
    }
    assert shop.effects_of("o-1002")[-1] == "mailed msg-0001 to grace@example.com"
    with pytest.raises(legato.errors.TaskClosed):
        await app.complete_task(task.task_id, {"decision": "reject"})


async def test_rejected_order_is_compensated_in_reverse_order(
    app: legato.App, clock: FakeClock, shop: Shop, inbox: legato.AsyncClient
) -> None:
    run = await start(app, clock, BIG_ORDER)
    task = await open_task(inbox, run)

    await app.complete_task(task.task_id, {"decision": "reject", "note": "stolen card"})
    await clock.settle()

    with pytest.raises(legato.errors.RunFailed) as failed:
        await run.result(timeout=1)
    assert failed.value.status == "compensated"
    assert failed.value.error_type == "examples.order_to_cash.app.OrderRejected"
    assert "stolen card" in failed.value.error_message
    # Inventory released first (reserved last), then the payment refunded.
    assert shop.effects_of("o-1002") == [
        "charged ch-0001 (260000 cents)",
        "reserved res-0001",
        "released res-0001",
        "refunded ch-0001",
    ]
    assert not shop.inventory.is_reserved("o-1002")
    assert shop.inventory.stock["laptop"] == 50
    description = await run.describe()
    assert sorted(description.compensations_done) == ["reserve_inventory", "validate_payment"]
    assert description.compensations_pending == []


async def test_review_escalates_to_the_second_reviewer_after_four_hours(
    app: legato.App, clock: FakeClock, shop: Shop, inbox: legato.AsyncClient
) -> None:
    run = await start(app, clock, BIG_ORDER)
    first = await open_task(inbox, run)

    await clock.advance(timedelta(hours=4) - timedelta(seconds=1))
    assert (await open_task(inbox, run)).task_id == first.task_id  # not due yet

    await clock.advance(timedelta(seconds=1))
    expired = await inbox.get_task(first.task_id)
    assert expired.status is legato.TaskStatus.EXPIRED
    second = await open_task(inbox, run)
    assert second.assignee == "reviewer-2"
    assert second.data["escalated_from"] == "reviewer-1"
    assert second.due_at == clock.now() + timedelta(days=1)
    with pytest.raises(legato.errors.TaskClosed):  # too late for the first reviewer
        await app.complete_task(first.task_id, {"decision": "approve"})

    await app.complete_task(second.task_id, {"decision": "approve"})
    await clock.settle()

    result = await run.result(timeout=1)
    assert result["review"] == {"decision": "approve", "note": "", "reviewer": "reviewer-2"}
    assert [c.refunded for c in shop.payments.charges_for("o-1002")] == [False]


async def test_order_is_rejected_and_compensated_when_both_reviewers_time_out(
    app: legato.App, clock: FakeClock, shop: Shop, inbox: legato.AsyncClient
) -> None:
    run = await start(app, clock, BIG_ORDER)

    await clock.advance(timedelta(hours=4) + timedelta(days=1))

    with pytest.raises(legato.errors.RunFailed) as failed:
        await run.result(timeout=1)
    assert failed.value.status == "compensated"
    assert "no reviewer decided in time" in failed.value.error_message
    tasks = await inbox.list_tasks(run_id=run.run_id, status=None)
    assert [(t.assignee, t.status) for t in tasks] == [
        ("reviewer-1", legato.TaskStatus.EXPIRED),
        ("reviewer-2", legato.TaskStatus.EXPIRED),
    ]
    assert shop.effects_of("o-1002")[-2:] == ["released res-0001", "refunded ch-0001"]


async def test_gateway_called_twice_with_the_same_key_charges_once(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    # The gateway charges but its answer is lost: the step retries after its backoff.
    shop.payments.lose_next_responses(1)
    run = await start(app, clock, SMALL_ORDER)
    assert shop.payments.calls == 1
    step = (await run.describe()).steps[0]
    assert (step.name, step.status, step.attempts) == ("validate_payment", "retrying", 1)

    await clock.advance(timedelta(seconds=1))  # first backoff: 0.5 s to 1 s with jitter

    await run.result(timeout=1)
    assert shop.payments.calls == 2
    assert len(shop.payments.charges) == 1  # one idempotency key, one charge
    assert shop.effects_of("o-1001")[0] == "charged ch-0001 (3000 cents)"


async def test_payment_retries_back_off_exponentially_up_to_a_cap(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    shop.payments.lose_next_responses(5)
    run = await start(app, clock, SMALL_ORDER)

    waits = []
    for failed_attempts in range(1, 6):
        step = (await run.describe()).steps[0]
        assert (step.status, step.attempts) == ("retrying", failed_attempts)
        assert step.retry_at is not None
        waits.append((step.retry_at - clock.now()).total_seconds())
        await clock.advance(step.retry_at - clock.now())

    await run.result(timeout=1)
    # 1 s, 2 s, 4 s, 8 s, then capped at 10 s; jitter draws from half of each to all of it.
    for wait, full in zip(waits, [1, 2, 4, 8, 10], strict=True):
        assert full / 2 <= wait <= full
    assert (shop.payments.calls, len(shop.payments.charges)) == (6, 1)


async def test_declined_card_fails_at_once_without_retrying(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    run = await start(app, clock, DECLINED_ORDER)

    with pytest.raises(legato.errors.RunFailed) as failed:
        await run.result(timeout=1)
    assert failed.value.status == "failed"
    assert failed.value.step_name == "validate_payment"
    assert failed.value.error_type == "examples.order_to_cash.services.CardDeclined"
    description = await run.describe()
    assert [(s.name, s.status, s.attempts) for s in description.steps] == [
        ("validate_payment", "failed", 1)
    ]
    assert description.last_error is not None
    assert description.last_error["step"] == "validate_payment"
    await clock.advance(timedelta(minutes=5))  # no retry is scheduled
    assert shop.payments.calls == 1
    assert shop.payments.charges == {}
    assert shop.effects_of("o-1004") == []


async def test_out_of_stock_refunds_the_payment(
    app: legato.App, clock: FakeClock, shop: Shop
) -> None:
    items = [{"sku": "cable", "quantity": 9_999, "price_cents": 1}]
    run = await start(app, clock, {**SMALL_ORDER, "id": "o-1005", "items": items})

    with pytest.raises(legato.errors.RunFailed) as failed:
        await run.result(timeout=1)
    assert failed.value.status == "compensated"
    assert failed.value.step_name == "reserve_inventory"
    assert shop.effects_of("o-1005") == ["charged ch-0001 (9999 cents)", "refunded ch-0001"]


async def test_settle_after_a_task_is_completed_lets_the_run_finish(
    clock: FakeClock, shop: Shop
) -> None:
    # complete_task wakes a run evicted while it waits; a long poll interval, so only
    # that wake-up (not the next poll) can resume the run.
    poll = timedelta(minutes=1)
    app = define(legato.App("order_to_cash", "memory://", clock=clock, poll_interval=poll), shop)
    async with app:
        run = await start(app, clock, BIG_ORDER)
        task = await open_task(legato.AsyncClient(app.store), run)

        await app.complete_task(task.task_id, {"decision": "approve"})
        await clock.settle()

        assert (await run.describe()).status is legato.RunStatus.COMPLETED


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_main_script_runs_four_orders_on_its_own_database(tmp_path: Path) -> None:
    env = script_database(tmp_path, "order_to_cash.db").env
    script = Path(__file__).resolve().parents[2] / "examples" / "order_to_cash" / "main.py"

    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    statuses = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("order-")]
    assert statuses == ["completed", "completed", "compensated", "failed"]
    assert "o-1003: compensated; effects: charged ch-" in done.stdout
    assert "gateway calls: 5, charges: 3" in done.stdout
