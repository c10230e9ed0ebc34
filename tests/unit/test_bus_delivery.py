"""Delivering to ``@app.on`` handlers: at-least-once, retries with backoff, dead letters,
redrive, FIFO per key, de-duplication, unrouted events — on every backend, FakeClock."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

import legato
from legato.errors import InvalidEvent, InvalidPattern, OutsideWorkflow, UnknownSubscription
from legato.model.deliveries import DeliveryStatus
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock, received
from tests.fixtures.engine import advance, poll_until, settle_until

RETRY3 = legato.Retry(max_attempts=3, initial_interval=timedelta(seconds=10), jitter=False)


async def test_a_published_event_reaches_every_matching_subscription_once(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    seen: list[tuple[str, str]] = []

    @app.on("order.*")
    async def by_type(event: legato.Event) -> None:
        seen.append(("by_type", event.type))

    @app.on({"type": ["order.placed"], "data": {"amount": [{"numeric": [">=", 100]}]}})
    def big_orders(event: legato.Event) -> None:  # sync handlers run in a thread
        seen.append(("big_orders", event.data["id"]))

    @app.on("payment.*")
    async def payments(event: legato.Event) -> None:
        seen.append(("payments", event.type))

    async with app:
        await app.publish("order.placed", {"id": "o-1", "amount": 150})
        await app.publish("order.placed", {"id": "o-2", "amount": 50})
        await clock.settle()  # waits for the sync handler's thread too
    assert sorted(seen) == [
        ("big_orders", "o-1"),
        ("by_type", "order.placed"),
        ("by_type", "order.placed"),
    ]


async def test_settle_runs_a_chain_of_handlers_to_its_end_with_no_time_passing(
    backend_app: legato.App, clock: FakeClock
) -> None:
    # Each hop publishes from a handler (which reads the log for the event it answers)
    # and the last is a def handler on a thread: one settle() sees all of it through.
    app = backend_app
    seen: list[str] = []

    @app.on("order.placed")
    async def pay(event: legato.Event) -> None:
        await legato.publish("payment.authorized", event.data)

    @app.on("payment.authorized")
    async def reserve(event: legato.Event) -> None:
        await legato.publish("inventory.reserved", event.data)

    @app.on("inventory.reserved")
    def notify(event: legato.Event) -> None:
        seen.append(event.data["id"])

    @app.step
    def confirm(order_id: str) -> str:  # a def step: a thread too
        return f"confirmed {order_id}"

    @app.workflow
    async def checkout(order_id: str) -> str:
        await legato.publish("order.placed", {"id": order_id})
        return await confirm(order_id)

    async with app:
        began = clock.now()
        handle = await app.start(checkout, "o-1")
        await clock.settle()
        assert seen == ["o-1"]
        assert (await app.get_run(handle.run_id)).status is legato.RunStatus.COMPLETED
        assert clock.now() == began


async def test_handler_failing_twice_is_called_three_times_with_its_backoff(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)
    calls: list[tuple[float, int]] = []

    @app.on("job.run", retry=RETRY3)
    async def flaky(event: legato.Event) -> None:
        calls.append((clock.time(), legato.delivery().attempt))
        if len(calls) < 3:
            raise ConnectionError("service down")

    async with app:
        start = clock.time()
        await app.publish("job.run", {})
        await clock.settle()
        await advance(clock, timedelta(seconds=9))
        assert len(calls) == 1  # the first retry waits 10 s
        await advance(clock, timedelta(seconds=1))
        assert len(calls) == 2
        await advance(clock, timedelta(seconds=20))
        assert len(calls) == 3
        await clock.settle()
        [done] = await received(app, flaky)
        [delivery] = await app.deliveries(done.id, done.source)
    assert [attempt for _, attempt in calls] == [1, 2, 3]
    assert [at - start for at, _ in calls] == [0.0, 10.0, 30.0]  # 10 s, then 20 s
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DONE, 3)


async def test_handler_that_always_fails_is_dead_lettered_once_with_its_traceback(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    calls = Counter[str]()

    @app.on("job.run", retry=RETRY3)
    async def broken(event: legato.Event) -> None:
        calls["broken"] += 1
        raise ValueError(f"cannot handle {event.data['n']}")

    async with app:
        event = await app.publish("job.run", {"n": 7})
        await advance(clock, timedelta(minutes=5))
        [dead] = await app.list_dead_letters(subscription=broken.__qualname__)
        assert calls["broken"] == 3
        await advance(clock, timedelta(hours=1))
        assert calls["broken"] == 3  # dead letters are not retried
        dead_events = await received(app, broken, status="dead")
    assert (dead.status, dead.attempts) == (DeliveryStatus.DEAD, 3)
    assert dead.error is not None
    assert dead.error["type"] == "ValueError"
    assert dead.error["message"] == "cannot handle 7"
    assert "raise ValueError" in dead.error["traceback"]
    assert [e.id for e in dead_events] == [event.id]


async def test_redrive_delivers_a_dead_letter_again(make_app: object, clock: FakeClock) -> None:
    app = legato.App("t", "memory://", clock=clock)
    healthy = False
    handled: list[str] = []

    @app.on("job.run", retry=legato.Retry(max_attempts=1))
    async def worker(event: legato.Event) -> None:
        if not healthy:
            raise RuntimeError("down")
        handled.append(event.id)

    async with app:
        event = await app.publish("job.run", {})
        await clock.settle()
        assert len(await app.list_dead_letters()) == 1
        healthy = True
        assert await app.redrive(event.id) == 1
        await advance(clock, timedelta(seconds=1))
        assert handled == [event.id]
        assert await app.list_dead_letters() == []
        assert await app.redrive(subscription=worker.__qualname__) == 0  # nothing dead any more


async def test_redrive_of_an_unknown_subscription_is_refused_and_writes_nothing(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)

    @app.on("job.run")
    async def worker(event: legato.Event) -> None:
        pass

    async with app:
        with pytest.raises(UnknownSubscription, match="wroker"):
            await app.redrive(subscription="wroker")
        with pytest.raises(UnknownSubscription):
            await app.list_dead_letters(subscription="wroker")


async def test_each_key_is_delivered_in_order_while_other_keys_go_at_once(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)
    log: list[str] = []
    gate = asyncio.Event()

    @app.on("account.*", ordered_by="subject")
    async def ledger(event: legato.Event) -> None:
        log.append(f"start {event.subject} {event.data}")
        if event.subject == "A" and event.data == 1:
            await gate.wait()  # A's first event is slow
        log.append(f"end {event.subject} {event.data}")

    async with app:
        for subject, n in (("A", 1), ("A", 2), ("B", 1), ("B", 2), ("A", 3)):
            await app.publish("account.moved", n, subject=subject)
        await settle_until(lambda: "end B 2" in log)
        await advance(clock, timedelta(seconds=1))
        assert "start A 2" not in log  # A's second waits for its first
        gate.set()
        await settle_until(lambda: "end A 3" in log)
    a_events = [line for line in log if " A " in line]
    assert a_events == ["start A 1", "end A 1", "start A 2", "end A 2", "start A 3", "end A 3"]
    assert log.index("end B 2") < log.index("end A 1")


async def test_a_poisoned_key_blocks_only_itself_until_it_is_dead_lettered(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)
    done: list[str] = []

    @app.on("account.*", ordered_by="data.account", retry=RETRY3)
    async def ledger(event: legato.Event) -> None:
        if event.data["poison"]:
            raise ValueError("bad record")
        done.append(f"{event.data['account']}{event.data['n']}")

    async with app:
        await app.publish("account.moved", {"account": "A", "n": 1, "poison": True})
        await app.publish("account.moved", {"account": "A", "n": 2, "poison": False})
        await app.publish("account.moved", {"account": "B", "n": 1, "poison": False})
        await clock.settle()
        assert done == ["B1"]  # A2 waits behind A1's retries
        await advance(clock, timedelta(seconds=15))
        assert done == ["B1"]
        await advance(clock, timedelta(seconds=30))  # A1 runs out of attempts
        await clock.settle()
        assert done == ["B1", "A2"]
        assert len(await app.list_dead_letters()) == 1


async def test_a_second_publish_of_the_same_source_and_id_is_a_no_op(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    calls = Counter[str]()

    @app.on("order.placed")
    async def once(event: legato.Event) -> None:
        calls[event.id] += 1

    async with app:
        first = await app.publish("order.placed", {"v": 1}, id="o-1")
        again = await app.publish("order.placed", {"v": 2}, id="o-1")
        await clock.settle()
        events = await app.list_events()
    assert again == first and again.data == {"v": 1}  # the stored event comes back
    assert calls == {"o-1": 1}
    assert [e.event.id for e in events] == ["o-1"]


async def test_an_event_no_subscription_matches_is_kept_and_listed_as_unrouted(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app

    @app.on("order.*")
    async def orders(event: legato.Event) -> None:
        pass

    async with app:
        await app.publish("order.placed", {})
        lonely = await app.publish("invoice.sent", {})
        await clock.settle()
        unrouted = await app.list_events(unrouted=True)
    assert [e.event.id for e in unrouted] == [lonely.id]
    assert unrouted[0].routed == 0


async def test_a_handler_publishes_with_the_handled_events_correlation_and_id_as_cause(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    got: list[legato.Event] = []

    @app.on("order.placed")
    async def bill(event: legato.Event) -> None:
        await legato.publish("invoice.sent", {"for": event.id})

    @app.on("invoice.sent")
    async def archive(event: legato.Event) -> None:
        got.append(event)

    async with app:
        order = await app.publish("order.placed", {}, correlationid="flow-9")
        await poll_until(lambda: bool(got))  # SQLite commits on a real thread
        await clock.settle()
    [invoice] = got
    assert (invoice.correlationid, invoice.causationid) == ("flow-9", order.id)


async def test_a_redelivered_handler_publishes_the_same_event_again_which_is_deduplicated(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)
    attempts = Counter[str]()
    invoices: list[str] = []

    @app.on("order.placed", retry=RETRY3)
    async def bill(event: legato.Event) -> None:
        await legato.publish("invoice.sent", {})
        attempts["bill"] += 1
        if attempts["bill"] == 1:
            raise ConnectionError("lost the answer after publishing")

    @app.on("invoice.sent")
    async def archive(event: legato.Event) -> None:
        invoices.append(event.id)

    async with app:
        await app.publish("order.placed", {})
        await advance(clock, timedelta(minutes=1))
    assert attempts["bill"] == 2
    assert len(invoices) == 1


async def test_delivery_gives_a_stable_idempotency_key_across_attempts(
    make_app: object, clock: FakeClock
) -> None:
    app = legato.App("t", "memory://", clock=clock)
    keys: list[str] = []

    @app.on("order.placed", retry=RETRY3)
    async def bill(event: legato.Event) -> None:
        keys.append(legato.delivery().idempotency_key)
        if len(keys) < 2:
            raise ConnectionError("down")

    async with app:
        await app.publish("order.placed", {}, id="o-5", source="/shop")
        await advance(clock, timedelta(minutes=1))
    assert keys == [f"{bill.__qualname__}:/shop:o-5"] * 2


async def test_legato_delivery_and_publish_outside_a_handler_say_where_they_belong() -> None:
    with pytest.raises(OutsideWorkflow, match="handler"):
        legato.delivery()
    with pytest.raises(OutsideWorkflow, match=r"app\.publish"):
        await legato.publish("x.y", {})


async def test_an_invalid_event_is_refused_and_nothing_is_written(
    backend_app: legato.App,
) -> None:
    app = backend_app
    async with app:
        with pytest.raises(InvalidEvent, match="type"):
            await app.publish("", {})
        with pytest.raises(InvalidEvent, match="JSON"):
            await app.publish("order.placed", {"when": object()})
        with pytest.raises(InvalidEvent, match=r"NaN|JSON"):
            await app.publish("order.placed", {"amount": float("nan")})
        assert await app.list_events() == []


def test_a_pattern_that_does_not_parse_is_refused_when_the_handler_is_defined() -> None:
    app = legato.App("t", "memory://")
    with pytest.raises(InvalidPattern, match="numeric"):

        @app.on({"data": {"amount": [{"numeric": [">>", 1]}]}})
        async def never(event: legato.Event) -> None:
            pass

    assert app.registry.subscriptions == {}


async def test_a_subscription_registered_later_receives_what_a_stale_publisher_sends(
    clock: FakeClock,
) -> None:
    # A client read the registry before the subscription existed; its next publish is
    # refused for the stale registry and routed again, to the new subscription too.
    store = MemoryStore()
    client = legato.AsyncClient(store)
    await client.publish("order.placed", {"n": 0})
    app = legato.App("t", store, clock=clock)
    got: list[int] = []

    @app.on("order.placed")
    async def late(event: legato.Event) -> None:
        got.append(event.data["n"])

    async with app:
        await client.publish("order.placed", {"n": 1})
        await advance(clock, timedelta(seconds=1))
        await settle_until(lambda: got == [1])


async def test_an_id_two_sources_published_asks_for_the_source(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    async with app:
        await app.publish("order.placed", {"n": 1}, id="e-1", source="/shop")
        await app.publish("order.placed", {"n": 2}, id="e-1", source="/erp")
        with pytest.raises(legato.errors.AmbiguousEvent) as caught:
            await app.get_event("e-1")
        assert sorted(caught.value.sources) == ["/erp", "/shop"]
        assert "source=" in str(caught.value)
        assert (await app.get_event("e-1", source="/erp")).event.data == {"n": 2}


async def test_a_subscription_whose_handler_is_gone_is_removed_and_stops_holding_events(
    tmp_path: Path, clock: FakeClock
) -> None:
    database = f"sqlite:///{tmp_path}/shop.db"
    old = legato.App("shop", database, clock=clock)

    @old.on("order.placed", name="legacy_export")
    async def legacy_export(event: legato.Event) -> None:
        raise ConnectionError("the old export service is gone")

    async with old:
        pass  # registers legacy_export, as the old version's worker did
    new = legato.App("shop", database, clock=clock)

    @new.on("order.placed", name="receipts")
    async def receipts(event: legato.Event) -> None:
        pass

    async with new:
        placed = await new.publish("order.placed", {"id": "o-1"})
        await clock.advance(timedelta(days=8))
        assert await new.prune_events(timedelta(days=7)) == 0  # held for legacy_export
        with pytest.raises(legato.errors.DefinitionError, match="defined by this app"):
            await new.remove_subscription("receipts")
        with pytest.raises(UnknownSubscription):
            await new.remove_subscription("nope")

        assert await new.remove_subscription("legacy_export") == 1
        assert [s.name for s in await new.list_subscriptions()] == ["receipts"]
        later = await new.publish("order.placed", {"id": "o-2"})
        assert [d.subscription for d in await new.deliveries(later.id)] == ["receipts"]
        assert await new.prune_events(timedelta(days=7)) == 1
        with pytest.raises(legato.errors.EventNotFound):
            await new.get_event(placed.id)
