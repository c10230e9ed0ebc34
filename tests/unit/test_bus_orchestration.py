"""Events and runs together: ``legato.publish`` in workflow code and steps, triggers
(``@app.workflow(on=...)``), and request/reply (``legato.request`` / ``legato.reply``)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest

import legato
from legato.errors import WaitTimeout
from legato.model import EventKind
from legato.model.deliveries import DeliveryStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome

DAY = timedelta(days=1)


# -- publishing from a run ------------------------------------------------------------------


def publisher(seen: list[legato.Event]):
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="purchase")
        async def purchase(order: dict) -> str:
            event = await legato.publish("purchase.completed", order, subject=order["id"])
            await legato.wait_for_signal("go")  # evicted here; replay comes back through
            return event.id

        @app.on("purchase.*", name="receipt")
        async def receipt(event: legato.Event) -> None:
            seen.append(event)

        return SimpleNamespace(purchase=purchase)

    return define


async def test_a_workflow_publishes_once_even_when_replayed_after_a_restart(
    harness: Harness, clock: FakeClock
) -> None:
    seen: list[legato.Event] = []
    defs = await harness.start(publisher(seen))
    await harness.running.start(defs.purchase, {"id": "p-1"}, run_id="run-1")
    await clock.settle()
    defs = await harness.restart(publisher(seen))  # the run resumes by replay
    await harness.running.signal("run-1", "go")
    result = await outcome(harness.running.handle("run-1"))
    events = await harness.running.list_events()
    history = await harness.running.history("run-1")
    assert result == "run-1:1"
    assert [e.event.id for e in events] == ["run-1:1"]
    assert [e.id for e in seen] == ["run-1:1"]
    assert len(of_kind(history, EventKind.EVENT_PUBLISHED)) == 1
    [stored] = events
    assert (stored.run_id, stored.call_key) == ("run-1", "1")


async def test_a_runs_events_carry_its_correlation_id_and_say_who_published_them(
    harness: Harness, clock: FakeClock
) -> None:
    seen: list[legato.Event] = []
    defs = await harness.start(publisher(seen))
    await harness.running.start(defs.purchase, {"id": "p-1"}, run_id="run-1")
    await clock.settle()
    [event] = seen
    assert event.correlationid == "run-1"  # a run started directly is its own flow
    assert event.source == "/test/purchase"
    assert event.subject == "p-1" and event.data == {"id": "p-1"}
    description = await harness.running.describe("run-1")
    assert [(p.type, p.event_id) for p in description.published] == [
        ("purchase.completed", "run-1:1")
    ]


async def test_an_event_published_by_a_failed_run_attempt_is_not_published_again_on_retry(
    harness: Harness, clock: FakeClock
) -> None:
    # A step that publishes, then fails once: its retry publishes the same event id,
    # which the log keeps once.
    calls = Counter[str]()
    seen: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(
            name="charge",
            retry=legato.Retry(max_attempts=2, initial_interval=timedelta(seconds=1)),
        )
        async def charge(order: dict) -> str:
            await legato.publish("payment.charged", order)
            calls["charge"] += 1
            if calls["charge"] == 1:
                raise ConnectionError("lost the gateway's answer")
            return "pay-1"

        @app.workflow(name="buy")
        async def buy(order: dict) -> str:
            return await charge(order)

        @app.on("payment.charged", name="ledger")
        async def ledger(event: legato.Event) -> None:
            seen.append(event.id)

        return SimpleNamespace(buy=buy)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.buy, {"id": "o"}, run_id="buy-1")
    await advance(clock, timedelta(seconds=5))
    assert await outcome(handle) == "pay-1"
    assert calls["charge"] == 2
    assert len(seen) == 1
    [event] = await harness.running.list_events()
    assert event.event.correlationid == "buy-1"
    assert (event.run_id, event.call_key) == ("buy-1", "1")  # the step's call, as a run's
    # describe() (and legato runs show) lists it with the step that published it.
    [published] = (await harness.running.describe("buy-1")).published
    assert (published.key, published.step, published.event_id) == ("1", "charge", event.event.id)


# -- triggers ----------------------------------------------------------------------------------


def triggered(started: list[legato.Event]):
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="fulfil", on={"type": ["order.placed"], "data": {"express": [True]}})
        async def fulfil(event: legato.Event) -> str:
            started.append(event)
            await legato.publish("order.fulfilled", {"order": event.data["id"]})
            return event.data["id"]

        return SimpleNamespace(fulfil=fulfil)

    return define


async def test_a_matching_event_starts_one_run_that_receives_it(
    harness: Harness, clock: FakeClock
) -> None:
    started: list[legato.Event] = []
    await harness.start(triggered(started))
    app = harness.running
    order = await app.publish("order.placed", {"id": "o-1", "express": True}, correlationid="c-1")
    await app.publish("order.placed", {"id": "o-2", "express": False})
    await advance(clock, timedelta(seconds=1))
    runs = await app.list_runs()
    assert [r.workflow for r in runs] == ["fulfil"]
    [run] = runs
    assert run.run_id == f"fulfil:{order.source}:{order.id}"
    assert run.correlation == "c-1"
    assert await outcome(app.handle(run.run_id)) == "o-1"
    assert [e.id for e in started] == [order.id]
    assert isinstance(started[0], legato.Event)
    fulfilled = [e.event for e in await app.list_events(type="order.fulfilled")]
    assert [(e.correlationid, e.causationid) for e in fulfilled] == [("c-1", order.id)]


async def test_an_event_delivered_twice_to_a_trigger_still_starts_one_run(
    harness: Harness, clock: FakeClock
) -> None:
    started: list[legato.Event] = []
    await harness.start(triggered(started))
    app = harness.running
    order = await app.publish("order.placed", {"id": "o-1", "express": True})
    await advance(clock, timedelta(seconds=1))
    # Deliver it again, as a crash between the run's creation and the settle would.
    assert await app.replay("workflow:fulfil", since=order.time - timedelta(seconds=1)) == 1
    await advance(clock, timedelta(seconds=1))
    assert len(await app.list_runs()) == 1
    assert len(started) == 1
    [delivery] = await app.deliveries(order.id, order.source)
    assert (delivery.status, delivery.replay) == (DeliveryStatus.DONE, True)


# -- request / reply ---------------------------------------------------------------------------


def shipping(replies: dict[str, str], timeout: timedelta = DAY):
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="order")
        async def order(order_id: str) -> str:
            reply = await legato.request(
                "shipping.requested",
                {"order": order_id},
                reply=("shipping.shipped", "shipping.backordered"),
                timeout=timeout,
            )
            return f"{reply.type}:{reply.data['order']}"

        @app.on("shipping.requested", name="shipper")
        async def shipper(event: legato.Event) -> None:
            answer = replies.get(event.data["order"])
            if answer is not None:
                await legato.reply(event, answer, {"order": event.data["order"]})

        return SimpleNamespace(order=order)

    return define


async def test_request_returns_the_correlated_reply(harness: Harness, clock: FakeClock) -> None:
    defs = await harness.start(shipping({"o-1": "shipping.shipped"}))
    handle = await harness.running.start(defs.order, "o-1", run_id="order-1")
    assert await outcome(handle) == "shipping.shipped:o-1"
    [request] = await harness.running.list_events(type="shipping.requested")
    [reply] = await harness.running.list_events(type="shipping.shipped")
    assert reply.event.causationid == request.event.id
    assert reply.event.correlationid == "order-1"


async def test_a_request_waits_durably_across_a_restart_for_a_late_reply(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(shipping({}))
    await harness.running.start(defs.order, "o-1", run_id="order-1")
    await clock.settle()
    description = await harness.running.describe("order-1")
    assert "wait for a reply (shipping.shipped or shipping.backordered)" in description.next
    await harness.restart(shipping({}))
    [request] = await harness.running.list_events(type="shipping.requested")
    # The shipping service answers hours later, from outside (a client, another app).
    await advance(clock, timedelta(hours=3))
    await harness.running.publish(
        "shipping.backordered",
        {"order": "o-1"},
        causationid=request.event.id,
        correlationid=request.event.correlationid,
    )
    assert await outcome(harness.running.handle("order-1")) == "shipping.backordered:o-1"


async def test_a_reply_of_another_type_or_to_another_request_does_not_wake_the_run(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(shipping({}))
    await harness.running.start(defs.order, "o-1", run_id="order-1")
    await clock.settle()
    [request] = await harness.running.list_events(type="shipping.requested")
    await harness.running.publish("shipping.lost", {"order": "o-1"}, causationid=request.event.id)
    await harness.running.publish("shipping.shipped", {"order": "o-1"}, causationid="other")
    await advance(clock, timedelta(minutes=5))
    run = await harness.running.get_run("order-1")
    assert run.status.value == "waiting"


async def test_a_request_without_a_reply_in_time_raises_wait_timeout(
    harness: Harness, clock: FakeClock
) -> None:
    caught: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="order")
        async def order(order_id: str) -> str:
            try:
                await legato.request(
                    "shipping.requested", {}, reply="shipping.shipped", timeout=timedelta(hours=1)
                )
            except WaitTimeout as exc:
                caught.append(str(exc))
                return "cancelled"
            return "shipped"

        return SimpleNamespace(order=order)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.order, "o-1", run_id="order-1")
    await advance(clock, timedelta(hours=2))
    assert await outcome(handle) == "cancelled"
    assert caught and "reply" in caught[0]


async def test_a_request_with_no_reply_type_is_refused_before_anything_is_published(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="order")
        async def order() -> str:
            await legato.request("shipping.requested", {}, reply=())
            return "never"

        return SimpleNamespace(order=order)

    defs = await harness.start(define)
    result = await outcome(await harness.running.start(defs.order, run_id="order-1"))
    assert isinstance(result, legato.errors.RunFailed)
    assert result.error_type == "legato.errors.DefinitionError"
    assert await harness.running.list_events() == []


async def test_request_outside_workflow_code_says_where_it_belongs() -> None:
    with pytest.raises(legato.errors.OutsideWorkflow, match="workflow code"):
        await legato.request("shipping.requested", {}, reply="shipping.shipped")


async def test_a_reply_published_while_no_engine_runs_is_kept_for_the_run(
    harness: Harness, clock: FakeClock, memory_store: object
) -> None:
    defs = await harness.start(shipping({}))
    await harness.running.start(defs.order, "o-1", run_id="order-1")
    await clock.settle()
    [request] = await harness.running.list_events(type="shipping.requested")
    await harness.stop()
    # Shipping answers while the orchestrator is down: nothing is waiting in memory.
    async with legato.AsyncClient(harness.store) as client:  # type: ignore[arg-type]
        await client.publish(
            "shipping.shipped",
            {"order": "o-1"},
            causationid=request.event.id,
            correlationid=request.event.correlationid,
        )
    await harness.start(shipping({}))
    assert await outcome(harness.running.handle("order-1")) == "shipping.shipped:o-1"


async def test_a_trigger_run_and_a_woken_reply_need_no_poll_to_go_on(
    harness: Harness, clock: FakeClock
) -> None:
    started: list[legato.Event] = []
    await harness.start(triggered(started))
    await harness.running.publish("order.placed", {"id": "o-1", "express": True})
    await clock.settle()  # no time passes, and no poll interval either
    [run] = await harness.running.list_runs()
    assert run.status.value == "completed"
