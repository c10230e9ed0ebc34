"""Expectations (``app.expect``): instances opened by a trigger, fulfilled, cancelled,
violated by a durable deadline exactly once, fulfilled late — on every backend, with
``FakeClock`` (no sleeps for deadlines)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

import legato
from legato.bus.expectations import RECOVERED, VIOLATED
from legato.errors import DefinitionError, InvalidPattern
from legato.model.expectations import ExpectationStatus
from legato.testing import FakeClock, received

FIVE_MIN = timedelta(minutes=5)


def paid_learner_is_enrolled(app: legato.App, **options: object) -> list[legato.Event]:
    """The expectation of our design notes, with a workflow it starts and a subscriber
    of its events; returns the list the subscriber fills."""
    started: list[legato.Event] = []

    @app.workflow(name="refund_or_enroll")
    async def refund_or_enroll(violation: legato.Event) -> str:
        started.append(violation)
        return f"handled {violation.data['key']}"

    app.expect(
        "paid-learner-is-enrolled",
        after="purchase.completed",
        then="enrollment.created",
        within=FIVE_MIN,
        unless="purchase.refunded",
        start="refund_or_enroll",
        **options,  # type: ignore[arg-type]
    )
    return started


async def instances(app: legato.App, **filters: object) -> list[legato.ExpectationInstance]:
    return await app.list_expectations(**filters)  # type: ignore[arg-type]


async def test_a_deadline_that_passes_violates_once_and_starts_the_workflow_once(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    started = paid_learner_is_enrolled(app)

    @app.on("legato.expectation.*")
    async def watch(event: legato.Event) -> None:
        pass

    async with app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.OPEN
        assert inst.key == "order-1"
        assert inst.deadline == clock.now() + FIVE_MIN

        await clock.advance(FIVE_MIN - timedelta(seconds=1))
        assert (await instances(app))[0].status is ExpectationStatus.OPEN
        assert await received(app, watch) == []

        await clock.advance(timedelta(seconds=1))
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.VIOLATED
        [violation] = await received(app, watch)
        assert violation.type == VIOLATED
        assert violation.correlationid == "order-1"
        assert violation.id == inst.violation_id
        assert violation.data["expectation"] == "paid-learner-is-enrolled"
        assert violation.data["key"] == "order-1"
        assert violation.data["missing"] == ["type enrollment.created"]
        trigger = violation.data["trigger"]  # the trigger event, whole
        assert (trigger["type"], trigger["correlationid"]) == ("purchase.completed", "order-1")
        assert trigger["data"] == {"id": 1} and trigger["seq"] == inst.trigger_seq
        assert [e.id for e in started] == [violation.id]
        runs = await app.list_runs(workflow="refund_or_enroll")
        assert [r.status for r in runs] == [legato.RunStatus.COMPLETED]
        assert runs[0].output == "handled order-1"

        # Much later, and after more upkeep passes: nothing more.
        await clock.advance(timedelta(hours=2))
        assert len(await received(app, watch)) == 1
        assert len(await app.list_runs(workflow="refund_or_enroll")) == 1


async def test_the_awaited_event_in_time_fulfils_and_nothing_fires(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    started = paid_learner_is_enrolled(app)
    async with app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.advance(timedelta(minutes=4))
        await app.publish("enrollment.created", {"id": 1}, correlationid="order-1")
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.FULFILLED
        assert inst.missing == ()
        assert inst.closed_at == clock.now()
        await clock.advance(timedelta(hours=1))
        assert (await instances(app))[0].status is ExpectationStatus.FULFILLED
    assert started == []


async def test_an_awaited_event_after_the_deadline_fulfils_late_and_publishes_recovered(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    paid_learner_is_enrolled(app)

    @app.on("legato.expectation.*")
    async def watch(event: legato.Event) -> None:
        pass

    async with app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.advance(FIVE_MIN + timedelta(minutes=1))
        await app.publish("enrollment.created", {"id": 1}, correlationid="order-1")
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.LATE_FULFILLED
        assert [e.type for e in await received(app, watch)] == [VIOLATED, RECOVERED]
        assert len(await app.list_runs(workflow="refund_or_enroll")) == 1


async def test_the_awaited_event_before_its_trigger_fulfils_the_instance_it_opens(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    started = paid_learner_is_enrolled(app)
    async with app:
        await app.publish("enrollment.created", {"id": 1}, correlationid="order-1")
        await clock.advance(timedelta(seconds=30))
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.FULFILLED
        await clock.advance(timedelta(hours=1))
    assert started == []


async def test_an_early_event_older_than_the_window_does_not_count(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    paid_learner_is_enrolled(app, early=timedelta(minutes=1))
    async with app:
        await app.publish("enrollment.created", {"id": 1}, correlationid="order-1")
        await clock.advance(timedelta(minutes=2))
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.settle()
        assert (await instances(app))[0].status is ExpectationStatus.OPEN
        await clock.advance(FIVE_MIN)
        assert (await instances(app))[0].status is ExpectationStatus.VIOLATED


async def test_a_duplicate_trigger_opens_nothing_new(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    paid_learner_is_enrolled(app)
    async with app:
        for _ in range(2):  # the same source and id: the log keeps one, and so do we
            await app.publish(
                "purchase.completed", {"id": 1}, id="p-1", source="/shop", correlationid="o-1"
            )
        await clock.settle()
        assert len(await instances(app)) == 1
        await clock.advance(FIVE_MIN)
        assert len(await app.list_runs(workflow="refund_or_enroll")) == 1


async def test_two_triggers_of_one_key_are_two_instances_and_one_event_fulfils_both(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    paid_learner_is_enrolled(app)
    async with app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await app.publish("purchase.completed", {"id": 2}, correlationid="order-1")
        await app.publish("purchase.completed", {"id": 3}, correlationid="order-2")
        await clock.settle()
        assert len(await instances(app, key="order-1")) == 2
        await app.publish("enrollment.created", {}, correlationid="order-1")
        await clock.advance(FIVE_MIN)
        by_key = {(i.key, i.status) for i in await instances(app)}
        assert by_key == {
            ("order-1", ExpectationStatus.FULFILLED),
            ("order-2", ExpectationStatus.VIOLATED),
        }
        assert len(await instances(app, status="fulfilled")) == 2


async def test_the_unless_event_cancels_the_instance(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    started = paid_learner_is_enrolled(app)
    async with app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.advance(FIVE_MIN / 2)
        await app.publish("purchase.refunded", {"id": 1}, correlationid="order-1")
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.CANCELLED
        await clock.advance(FIVE_MIN)
        assert (await instances(app))[0].status is ExpectationStatus.CANCELLED
    assert started == []


async def test_then_as_a_list_waits_for_all_of_them(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    app.expect(
        "order-is-handled",
        after="order.placed",
        then=["payment.captured", {"type": ["stock.reserved"], "data": {"ok": [True]}}],
        within=FIVE_MIN,
        key="data.order",
    )
    async with app:
        await app.publish("order.placed", {"order": "A"})
        await app.publish("payment.captured", {"order": "A"})
        await app.publish("stock.reserved", {"order": "A", "ok": False})  # does not match
        await clock.settle()
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.OPEN
        assert inst.missing == (1,)
        await clock.advance(FIVE_MIN)
        [inst] = await instances(app)
        assert inst.status is ExpectationStatus.VIOLATED
        await app.publish("stock.reserved", {"order": "A", "ok": True})
        await clock.settle()
        assert (await instances(app))[0].status is ExpectationStatus.LATE_FULFILLED


async def test_replaying_archived_triggers_never_opens_or_violates(
    memory_store: object, clock: FakeClock
) -> None:
    # Purchases from before the expectation existed, replayed to it afterwards: their
    # deadlines are long past, and still nothing may fire.
    async with legato.App("shop", memory_store, clock=clock) as before:  # type: ignore[arg-type]
        await before.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.advance(timedelta(hours=1))
    app = legato.App("shop", memory_store, clock=clock)  # type: ignore[arg-type]
    paid_learner_is_enrolled(app)
    async with app:
        count = await app.replay(
            "expectation:paid-learner-is-enrolled", since=clock.now() - timedelta(days=1)
        )
        assert count == 1
        await clock.advance(FIVE_MIN * 3)
        [delivery] = await app.store.list_deliveries(
            subscription="expectation:paid-learner-is-enrolled"
        )
        assert delivery.replay and delivery.status.value == "done"
        assert await instances(app) == []
        assert await app.list_runs(workflow="refund_or_enroll") == []


async def test_the_deadline_fires_after_a_restart_with_no_further_events(
    memory_store: object, clock: FakeClock
) -> None:
    def make() -> legato.App:
        app = legato.App("shop", memory_store, clock=clock)  # type: ignore[arg-type]
        paid_learner_is_enrolled(app)
        return app

    async with make() as app:
        await app.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        await clock.settle()
    async with make() as app:  # a new process: the deadline is in the database
        await clock.advance(FIVE_MIN)
        assert (await instances(app))[0].status is ExpectationStatus.VIOLATED
        assert len(await app.list_runs(workflow="refund_or_enroll")) == 1


def test_bad_definitions_are_refused_with_a_clear_error() -> None:
    app = legato.App("shop", "memory://")
    with pytest.raises(DefinitionError, match="positive timedelta"):
        app.expect("x", after="a", then="b", within=timedelta(0))
    with pytest.raises(DefinitionError, match="at least one pattern"):
        app.expect("x", after="a", then=[], within=FIVE_MIN)
    with pytest.raises(InvalidPattern):
        app.expect("x", after={"type": "not-a-list"}, then="b", within=FIVE_MIN)
    with pytest.raises(DefinitionError, match="key"):
        app.expect("x", after="a", then="b", within=FIVE_MIN, key="data.")
    with pytest.raises(DefinitionError, match="non-empty string"):
        app.expect("", after="a", then="b", within=FIVE_MIN)
    app.expect("x", after="a", then="b", within=FIVE_MIN)
    with pytest.raises(DefinitionError, match="already defined"):
        app.expect("x", after="a", then="b", within=FIVE_MIN)
    with pytest.raises(DefinitionError, match="expectation:"):
        app.on("a", name="expectation:mine")(lambda event: None)
    assert app.registry.expectations["x"].subscription.name == "expectation:x"


async def test_an_expectation_that_starts_an_unknown_workflow_refuses_to_start() -> None:
    app = legato.App("shop", "memory://")
    app.expect("x", after="a", then="b", within=FIVE_MIN, start="nope")
    with pytest.raises(DefinitionError, match="nope"):
        async with app:
            pass


async def test_a_thousand_flows_that_all_complete_raise_no_violation(
    tmp_path: object, clock: FakeClock
) -> None:
    app = legato.App("shop", f"sqlite:///{tmp_path}/flows.db", clock=clock)
    started = paid_learner_is_enrolled(app)

    @app.on("legato.expectation.*")
    async def watch(event: legato.Event) -> None:
        pass

    async with app:
        for i in range(1000):
            order = f"order-{i}"
            # A tenth of them arrive out of order: the enrolment before the purchase.
            first, second = ("purchase.completed", "enrollment.created")
            if i % 10 == 0:
                first, second = second, first
            await app.publish(first, {"i": i}, correlationid=order)
            await app.publish(second, {"i": i}, correlationid=order)
        await clock.settle()
        await clock.advance(FIVE_MIN * 2)
        found = await instances(app, limit=2000)
        assert len(found) == 1000
        assert {i.status for i in found} == {ExpectationStatus.FULFILLED}
        assert await received(app, watch) == []
        assert await app.list_alerts() == []  # nothing is stuck, nothing is alerted
    assert started == []


async def test_an_event_for_a_closed_instance_does_not_settle_the_next_trigger(
    backend_app: legato.App, clock: FakeClock
) -> None:
    # A duplicate awaited event, and a refund after a violation, belong to the first
    # purchase: the second purchase of the key must still be watched.
    app = backend_app
    paid_learner_is_enrolled(app)
    async with app:
        await app.publish("purchase.completed", {"n": 1}, correlationid="k")
        await app.publish("enrollment.created", {"n": 1}, correlationid="k")
        await app.publish("enrollment.created", {"n": 1}, correlationid="k")  # a duplicate
        await clock.advance(timedelta(minutes=1))
        await app.publish("purchase.completed", {"n": 2}, correlationid="k")
        await clock.settle()
        statuses = [i.status for i in await instances(app)]  # newest first
        assert statuses == [ExpectationStatus.OPEN, ExpectationStatus.FULFILLED]

        await clock.advance(FIVE_MIN)  # the second is violated
        await app.publish("purchase.refunded", {"n": 2}, correlationid="k")
        await clock.advance(timedelta(minutes=1))
        await app.publish("purchase.completed", {"n": 3}, correlationid="k")
        await clock.settle()
        statuses = [i.status for i in await instances(app)]
        assert statuses[0] is ExpectationStatus.OPEN  # not cancelled by the old refund


async def test_two_workers_racing_for_a_deadline_violate_once_and_log_no_error(
    tmp_path: object, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def worker() -> legato.App:
        app = legato.App("shop", f"sqlite:///{tmp_path}/race.db", clock=clock)

        @app.workflow(name="react")
        async def react(violation: legato.Event) -> str:
            await legato.publish("reacted", {})
            return "ok"

        for i in range(5):
            app.expect(f"e{i}", after="a", then="b", within=FIVE_MIN, start="react")
        return app

    async with worker() as one, worker() as two:
        for i in range(4):
            await one.publish("a", {}, correlationid=f"k-{i}")
        await clock.advance(FIVE_MIN)
        await clock.settle()
        assert len(await one.list_runs(workflow="react", limit=100)) == 20  # 5 x 4, once each
        violated = await two.list_expectations(status="violated", limit=100)
        assert len(violated) == 20
        # The runs a violation starts name the violation as the cause of what they publish.
        reacted = [s.event for s in await one.list_events(type="reacted", limit=100)]
        assert {e.causationid for e in reacted} == {i.violation_id for i in violated}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_bad_pattern_names_the_expectation_and_the_argument() -> None:
    app = legato.App("shop", "memory://")
    with pytest.raises(InvalidPattern, match=r"expectation 'x': then\[1\]:"):
        app.expect("x", after="a", then=["b", {"type": "c"}], within=FIVE_MIN)
    with pytest.raises(DefinitionError, match="zero or more"):
        app.expect("x", after="a", then="b", within=FIVE_MIN, early=timedelta(minutes=-1))
    with pytest.raises(DefinitionError, match=r"key='data\.' is neither"):
        app.expect("x", after="a", then="b", within=FIVE_MIN, key="data.")
