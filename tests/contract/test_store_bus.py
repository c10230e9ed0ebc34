"""The Store contract for the event bus: ``NewEvent``, ``UpdateDelivery``,
``ReplayDelivery``, the registry, delivery claims and the event reads, on every adapter."""

from __future__ import annotations

import orjson
import pytest

from legato.errors import ConcurrencyConflict
from legato.model.deliveries import DeliveryStatus, SubscriptionKind
from legato.model.events import Event
from legato.storage.base import (
    NewDelivery,
    NewEvent,
    NewSubscription,
    ReplayDelivery,
    Store,
    UpdateDelivery,
)
from tests.contract.ops import T0, append, at, new_run


def new_event(
    event_id: str,
    *,
    source: str = "/test",
    type: str = "order.placed",
    to: tuple[str, ...] = (),
    key: str | None = None,
    owner: str | None = None,
    due: float = T0,
    correlation: str | None = None,
    causation: str | None = None,
    run_id: str = "",
    ts: float = T0,
    registry: int | None = None,
    replies: list[str] | None = None,
) -> NewEvent:
    event = Event(id=event_id, source=source, type=type, data={"n": event_id})
    return NewEvent(
        run_id,
        source,
        event_id,
        type,
        None,
        correlation,
        causation,
        event.to_json().encode(),
        ts,
        tuple(NewDelivery(s, due, key, owner) for s in to),
        published_by=run_id or None,
        call_key="3" if run_id else None,
        reply_types=None if replies is None else orjson.dumps(replies),
        registry=registry,
    )


def settle(
    sub: str,
    seq: int,
    status: str = "done",
    *,
    owner: str | None = "w1",
    attempts: int = 1,
    due: float | None = None,
    error: object = None,
    required: bool = True,
    if_status: str | None = None,
    redriven_by: str | bool | None = False,
) -> UpdateDelivery:
    return UpdateDelivery(
        "",
        sub,
        seq,
        status,
        attempts,
        due,
        None if error is None else orjson.dumps(error),
        T0 + 5,
        if_owner=owner,
        if_status=if_status,
        required=required,
        redrive=redriven_by is not False,
        redriven_by=None if redriven_by is False else redriven_by,  # type: ignore[arg-type]
    )


async def publish(store: Store, *ops: NewEvent) -> list[int]:
    await store.write(list(ops))
    return [op.seq for op in ops if op.seq is not None]


@pytest.fixture
async def worker(store: Store) -> str:
    await store.register_worker("w1", "host", 1, T0)
    await store.register_worker("w2", "host", 2, T0)
    return "w1"


# -- NewEvent ----


async def test_new_event_is_stored_with_its_origin_and_gets_a_seq(store: Store) -> None:
    op = new_event("e1", run_id="r1", correlation="c1", replies=["a.done"], to=("s1",))
    await store.write([op])
    assert isinstance(op.seq, int)
    stored = await store.get_event(op.seq)
    assert stored is not None
    assert stored.event == Event(id="e1", source="/test", type="order.placed", data={"n": "e1"})
    assert (stored.run_id, stored.call_key, stored.routed) == ("r1", "3", 1)
    assert stored.reply_types == ("a.done",)
    assert stored.recorded_at == at(T0)
    assert [e.seq for e in await store.find_events("e1")] == [op.seq]


async def test_events_get_increasing_seqs_in_commit_order(store: Store) -> None:
    first = await publish(store, new_event("a"), new_event("b"))
    second = await publish(store, new_event("c"))
    assert first[0] < first[1] < second[0]


async def test_duplicate_source_and_id_writes_nothing_not_even_deliveries(store: Store) -> None:
    [seq] = await publish(store, new_event("e1", to=("s1",)))
    again = new_event("e1", to=("s1", "s2"), type="other.type")
    await store.write([again])
    assert again.seq is None
    assert [d.subscription for d in await store.deliveries(seq)] == ["s1"]
    assert [e.event.type for e in await store.list_events()] == ["order.placed"]


async def test_same_id_from_another_source_is_another_event(store: Store) -> None:
    seqs = await publish(store, new_event("e1", source="/a"), new_event("e1", source="/b"))
    assert len(seqs) == 2
    assert sorted(e.event.source for e in await store.find_events("e1")) == ["/a", "/b"]


async def test_new_event_writes_one_pending_delivery_per_subscription(store: Store) -> None:
    [seq] = await publish(store, new_event("e1", to=("b", "a"), key="k1", due=T0 + 2))
    deliveries = await store.deliveries(seq)
    assert [d.subscription for d in deliveries] == ["a", "b"]
    for d in deliveries:
        assert (d.status, d.attempts, d.owner) == (DeliveryStatus.PENDING, 0, None)
        assert (d.due_at, d.ordering_key, d.replay, d.error) == (at(T0 + 2), "k1", False, None)


async def test_event_with_no_subscription_is_kept_and_listed_unrouted(store: Store) -> None:
    await publish(store, new_event("routed", to=("s1",)), new_event("lonely"))
    assert [e.event.id for e in await store.list_events(unrouted=True)] == ["lonely"]
    [lonely] = await store.list_events(unrouted=True)
    assert lonely.routed == 0


async def test_a_conflict_elsewhere_in_the_batch_writes_no_event(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    op = new_event("e1", to=("s1",))
    with pytest.raises(ConcurrencyConflict):
        await store.write([op, append("r1", 1)])
    assert await store.list_events() == []
    assert await store.find_events("e1") == []


# -- the registry ----


def sub(name: str, pattern: object = "order.*", ordered_by: str | None = None) -> NewSubscription:
    return NewSubscription(name, "handler", orjson.dumps(pattern), ordered_by)


async def test_registering_subscriptions_moves_the_version_only_on_change(store: Store) -> None:
    v0, subs = await store.subscriptions()
    assert subs == []
    v1 = await store.register_subscriptions([sub("a"), sub("b", {"type": ["x"]})], T0)
    assert v1 > v0
    assert await store.register_subscriptions([sub("a")], T0 + 1) == v1
    v2 = await store.register_subscriptions([sub("a", "order.placed")], T0 + 2)
    assert v2 > v1
    version, subs = await store.subscriptions()
    assert version == v2
    assert [(s.name, s.kind, s.pattern, s.ordered_by) for s in subs] == [
        ("a", SubscriptionKind.HANDLER, "order.placed", None),
        ("b", SubscriptionKind.HANDLER, {"type": ["x"]}, None),
    ]
    assert subs[0].registered_at == at(T0 + 2)


async def test_publish_routed_by_a_stale_registry_conflicts_and_writes_nothing(
    store: Store,
) -> None:
    v1 = await store.register_subscriptions([sub("a")], T0)
    await store.register_subscriptions([sub("b")], T0)
    with pytest.raises(ConcurrencyConflict, match="subscriptions changed"):
        await store.write([new_run("r1"), new_event("e1", to=("a",), registry=v1)])
    assert await store.list_events() == []
    assert await store.get_run("r1") is None


async def test_removing_a_subscription_drops_its_deliveries_and_moves_the_version(
    store: Store, worker: str
) -> None:
    version = await store.register_subscriptions([sub("gone"), sub("kept")], T0)
    seqs = await publish(
        store,
        new_event("e1", to=("gone", "kept"), registry=version),
        new_event("e2", to=("gone",), registry=version),
    )
    await store.claim_deliveries(worker, T0, 1, ["gone"])  # one in flight, one pending
    assert await store.remove_subscription("gone") == 2
    after, subs = await store.subscriptions()
    assert after > version
    assert [s.name for s in subs] == ["kept"]
    assert [d.subscription for d in await store.deliveries(seqs[0])] == ["kept"]
    assert await store.deliveries(seqs[1]) == []
    assert await store.claim_deliveries(worker, T0, 10, ["gone"]) == []
    # What was routed by the registry that still had it is refused: routed again.
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_event("e3", to=("gone",), registry=version)])
    # Nothing of it holds an old event back from pruning now.
    assert await store.prune_events(T0 + 1, 10) == 1  # e2; e1 waits for "kept"
    assert await store.remove_subscription("gone") is None
    assert await store.registry_version() == after


async def test_publish_routed_by_the_current_registry_is_written(store: Store) -> None:
    version = await store.register_subscriptions([sub("a")], T0)
    assert await publish(store, new_event("e1", to=("a",), registry=version))


# -- claims ----


async def test_claim_takes_due_deliveries_of_the_served_subscriptions(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a", "b")))
    [later] = await publish(store, new_event("e2", to=("a",), due=T0 + 60))
    claimed = await store.claim_deliveries(worker, T0 + 1, 10, ["a"])
    assert [(c.subscription, c.seq, c.attempts, c.replay) for c in claimed] == [
        ("a", seq, 0, False)
    ]
    assert Event.from_json(claimed[0].event).id == "e1"
    assert [d.owner for d in await store.deliveries(seq)] == ["w1", None]
    assert await store.claim_deliveries("w2", T0 + 1, 10, ["a"]) == []  # taken
    assert [c.seq for c in await store.claim_deliveries("w2", T0 + 61, 10, ["a"])] == [later]


async def test_claim_respects_the_limit_and_gives_oldest_first(store: Store, worker: str) -> None:
    seqs = await publish(store, *(new_event(f"e{i}", to=("a",)) for i in range(5)))
    claimed = await store.claim_deliveries(worker, T0, 3, ["a"])
    assert [c.seq for c in claimed] == seqs[:3]


async def test_claim_takes_nothing_for_a_worker_without_a_row(store: Store) -> None:
    await publish(store, new_event("e1", to=("a",)))
    assert await store.claim_deliveries("ghost", T0, 10, ["a"]) == []
    assert await store.claim_deliveries("w1", T0, 10, []) == []


async def test_ordered_key_gives_only_its_oldest_pending_delivery(
    store: Store, worker: str
) -> None:
    k1 = await publish(
        store,
        new_event("a1", to=("s",), key="k1"),
        new_event("a2", to=("s",), key="k1"),
        new_event("b1", to=("s",), key="k2"),
        new_event("u", to=("s",)),
    )
    first = await store.claim_deliveries(worker, T0, 10, ["s"])
    assert [c.seq for c in first] == [k1[0], k1[2], k1[3]]  # a2 waits behind a1
    assert await store.claim_deliveries(worker, T0, 10, ["s"]) == []
    await store.write([settle("s", k1[0])])
    assert [c.seq for c in await store.claim_deliveries(worker, T0, 10, ["s"])] == [k1[1]]


async def test_a_key_waiting_for_its_retry_blocks_only_itself_until_dead(
    store: Store, worker: str
) -> None:
    seqs = await publish(
        store,
        new_event("a1", to=("s",), key="k1"),
        new_event("a2", to=("s",), key="k1"),
        new_event("b1", to=("s",), key="k2"),
    )
    await store.claim_deliveries(worker, T0, 10, ["s"])
    await store.write([settle("s", seqs[0], "pending", due=T0 + 100, error={"type": "E"})])
    await store.write([settle("s", seqs[2])])
    assert await store.claim_deliveries(worker, T0 + 1, 10, ["s"]) == []  # a2 behind a1
    [retry] = await store.claim_deliveries(worker, T0 + 100, 10, ["s"])
    assert retry.seq == seqs[0] and retry.attempts == 1
    await store.write([settle("s", seqs[0], "dead", attempts=2)])
    assert [c.seq for c in await store.claim_deliveries(worker, T0 + 100, 10, ["s"])] == [seqs[1]]


async def test_keys_are_per_subscription(store: Store, worker: str) -> None:
    await publish(store, new_event("a1", to=("s", "t"), key="k"))
    claimed = await store.claim_deliveries(worker, T0, 10, ["s", "t"])
    assert sorted(c.subscription for c in claimed) == ["s", "t"]


async def test_delivery_written_owned_is_not_claimable(store: Store, worker: str) -> None:
    await publish(store, new_event("e1", to=("a",), owner="w1"))
    assert await store.claim_deliveries("w2", T0, 10, ["a"]) == []
    assert await store.release_deliveries("w1") == 1
    assert len(await store.claim_deliveries("w2", T0, 10, ["a"])) == 1


async def test_next_delivery_due_is_the_earliest_free_pending_one(store: Store) -> None:
    assert await store.next_delivery_due(["a"]) is None
    await publish(store, new_event("e1", to=("a",), due=T0 + 9), new_event("e2", to=("b",)))
    await publish(store, new_event("e3", to=("a",), due=T0 + 4, owner="w1"))
    assert await store.next_delivery_due(["a"]) == T0 + 9
    assert await store.next_delivery_due([]) is None


async def test_next_delivery_due_skips_deliveries_waiting_behind_their_key(
    store: Store, worker: str
) -> None:
    await publish(store, new_event("a1", to=("s",), key="k", due=T0 + 50))
    await publish(store, new_event("a2", to=("s",), key="k", due=T0))
    assert await store.next_delivery_due(["s"]) == T0 + 50


async def test_a_removed_worker_lets_go_of_its_deliveries(store: Store, worker: str) -> None:
    [seq] = await publish(store, new_event("e1", to=("a", "b")))
    await store.claim_deliveries("w1", T0, 1, ["a"])
    await store.claim_deliveries("w2", T0, 1, ["b"])
    await store.remove_workers(["w1"])
    assert [d.owner for d in await store.deliveries(seq)] == [None, "w2"]


async def test_deliveries_owned_by_a_worker_without_a_row_are_released(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",), owner="ghost"))
    [mine] = await publish(store, new_event("e2", to=("a",), owner="w1"))
    await store.release_orphaned_runs()
    assert [d.owner for d in await store.deliveries(seq)] == [None]
    assert [d.owner for d in await store.deliveries(mine)] == ["w1"]


# -- settling deliveries ----


async def test_update_delivery_settles_and_lets_go(store: Store, worker: str) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write(
        [settle("a", seq, "dead", attempts=3, error={"type": "E", "message": "boom"})]
    )
    [d] = await store.deliveries(seq)
    assert (d.status, d.attempts, d.owner) == (DeliveryStatus.DEAD, 3, None)
    assert d.error == {"type": "E", "message": "boom"}
    assert d.updated_at == at(T0 + 5)


async def test_update_delivery_of_another_owner_conflicts_and_writes_nothing(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries("w2", T0, 1, ["a"])
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_run("r1"), settle("a", seq, owner="w1")])
    assert await store.get_run("r1") is None
    [d] = await store.deliveries(seq)
    assert (d.status, d.owner) == (DeliveryStatus.PENDING, "w2")


async def test_update_delivery_not_required_changes_nothing_when_it_does_not_match(
    store: Store,
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.write([settle("a", seq, "pending", owner=None, if_status="dead", required=False)])
    await store.write([settle("a", 999, owner=None, required=False)])
    [d] = await store.deliveries(seq)
    assert (d.status, d.attempts) == (DeliveryStatus.PENDING, 0)


async def test_many_delivery_updates_in_one_batch_all_apply(store: Store, worker: str) -> None:
    seqs = await publish(store, *(new_event(f"e{i}", to=("a", "b")) for i in range(20)))
    await store.claim_deliveries(worker, T0, 100, ["a", "b"])
    await store.write([settle(s, seq) for seq in seqs for s in ("a", "b")])
    assert await store.list_deliveries(status="done", limit=1000) != []
    assert await store.list_deliveries(status="pending") == []


async def test_updates_of_one_delivery_in_one_batch_apply_in_order(
    store: Store, worker: str
) -> None:
    seqs = await publish(store, *(new_event(f"e{i}", to=("a",)) for i in range(10)))
    await store.claim_deliveries(worker, T0, 100, ["a"])
    ops = [settle("a", seq, "pending", due=T0 + 1) for seq in seqs]
    ops += [settle("a", seqs[0], "dead", owner=None, attempts=7)]
    await store.write(ops)
    [d] = await store.deliveries(seqs[0])
    assert (d.status, d.attempts) == (DeliveryStatus.DEAD, 7)


# -- replay and redrive ----


async def test_replay_makes_a_done_delivery_pending_again_marked_as_replay(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write([settle("a", seq, attempts=2)])
    await store.write([ReplayDelivery("", "a", seq, T0 + 10)])
    [d] = await store.deliveries(seq)
    assert (d.status, d.attempts, d.replay, d.due_at) == (
        DeliveryStatus.PENDING,
        0,
        True,
        at(T0 + 10),
    )
    [claimed] = await store.claim_deliveries(worker, T0 + 10, 1, ["a"])
    assert claimed.replay is True


async def test_replay_to_a_new_subscription_adds_its_delivery(store: Store) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.write([ReplayDelivery("", "late", seq, T0 + 1, ordering_key="k")])
    assert [(d.subscription, d.replay, d.ordering_key) for d in await store.deliveries(seq)] == [
        ("a", False, None),
        ("late", True, "k"),
    ]


async def test_replay_leaves_a_pending_delivery_alone(store: Store, worker: str) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write([ReplayDelivery("", "a", seq, T0 + 10)])
    [d] = await store.deliveries(seq)
    assert (d.owner, d.replay, d.due_at) == ("w1", False, at(T0))


async def test_redrive_of_a_dead_letter_makes_it_pending_from_the_first_attempt(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write([settle("a", seq, "dead", attempts=3, error={"type": "E"})])
    await store.write(
        [settle("a", seq, "pending", owner=None, attempts=0, due=T0 + 9, if_status="dead")]
    )
    [d] = await store.deliveries(seq)
    assert (d.status, d.attempts, d.due_at) == (DeliveryStatus.PENDING, 0, at(T0 + 9))
    assert d.error == {"type": "E"}  # the last failure stays visible
    assert (d.redriven_at, d.redriven_by) == (None, None)  # not marked as a redrive


async def test_a_redrive_records_when_and_who_and_a_settle_keeps_it(
    store: Store, worker: str
) -> None:
    seqs = await publish(store, new_event("e1", to=("a",)), new_event("e2", to=("a",)))
    await store.claim_deliveries(worker, T0, 2, ["a"])
    await store.write([settle("a", s, "dead", attempts=3) for s in seqs])
    await store.write(
        [
            settle("a", seqs[0], "pending", owner=None, attempts=0, due=T0, redriven_by="alice"),
            settle("a", seqs[1], "pending", owner=None, attempts=0, due=T0, redriven_by=None),
        ]
    )
    first, second = [(await store.deliveries(s))[0] for s in seqs]
    assert (first.redriven_at, first.redriven_by) == (at(T0 + 5), "alice")
    assert (second.redriven_at, second.redriven_by) == (at(T0 + 5), None)
    await store.claim_deliveries(worker, T0 + 6, 1, ["a"])
    await store.write([settle("a", seqs[0], "dead", attempts=1)])  # it died again
    [again] = await store.deliveries(seqs[0])
    assert (again.status, again.redriven_by) == (DeliveryStatus.DEAD, "alice")


async def test_a_delivery_that_succeeds_after_a_failure_keeps_the_failure(
    store: Store, worker: str
) -> None:
    [seq] = await publish(store, new_event("e1", to=("a",)))
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write([settle("a", seq, "pending", due=T0, error={"type": "Down"})])
    await store.claim_deliveries(worker, T0, 1, ["a"])
    await store.write([settle("a", seq, attempts=2)])
    [d] = await store.deliveries(seq)
    assert (d.status, d.attempts, d.error) == (DeliveryStatus.DONE, 2, {"type": "Down"})


# -- reads ----


async def test_list_events_filters(store: Store) -> None:
    await publish(
        store,
        new_event("a", type="x.one", correlation="c1", ts=T0),
        new_event("b", type="x.two", correlation="c1", run_id="r1", ts=T0 + 10),
        new_event("c", type="x.one", correlation="c2", ts=T0 + 20),
    )

    async def ids(**filters: object) -> list[str]:
        return [e.event.id for e in await store.list_events(**filters)]  # type: ignore[arg-type]

    assert await ids() == ["a", "b", "c"]
    assert await ids(type="x.one") == ["a", "c"]
    assert await ids(correlation_id="c1") == ["a", "b"]
    assert await ids(run_id="r1") == ["b"]
    assert await ids(since=T0 + 10) == ["b", "c"]
    assert await ids(until=T0 + 10) == ["a"]
    assert await ids(limit=2) == ["a", "b"]
    [first] = await store.list_events(limit=1)
    assert await ids(after_seq=first.seq) == ["b", "c"]


async def test_list_deliveries_filters_by_status_and_subscription(
    store: Store, worker: str
) -> None:
    seqs = await publish(store, new_event("a", to=("s", "t")), new_event("b", to=("s",)))
    await store.claim_deliveries(worker, T0, 10, ["s"])
    await store.write([settle("s", seqs[0], "dead")])
    dead = await store.list_deliveries(status="dead")
    assert [(d.subscription, d.seq) for d in dead] == [("s", seqs[0])]
    assert [d.seq for d in await store.list_deliveries(subscription="s")] == seqs
    assert [d.subscription for d in await store.list_deliveries(after_seq=seqs[0])] == ["s"]


async def test_prune_removes_old_settled_events_and_keeps_undelivered_ones(
    store: Store, worker: str
) -> None:
    seqs = await publish(
        store,
        new_event("old-done", to=("s",), ts=T0),
        new_event("old-pending", to=("s",), ts=T0),
        new_event("old-unrouted", ts=T0),
        new_event("new", to=("s",), ts=T0 + 100),
    )
    await store.claim_deliveries(worker, T0, 1, ["s"])
    await store.write([settle("s", seqs[0])])
    assert await store.prune_events(T0 + 50, 100) == 2
    assert [e.event.id for e in await store.list_events()] == ["old-pending", "new"]
    assert await store.deliveries(seqs[0]) == []
    assert await store.prune_events(T0 + 50, 100) == 0
    # its id is free again once pruned
    assert await publish(store, new_event("old-done"))


async def test_a_duplicate_within_one_batch_is_written_once(store: Store) -> None:
    first, second = new_event("e1", to=("s1",)), new_event("e1", to=("s1", "s2"))
    await store.write([first, new_event("e2"), second])
    assert first.seq is not None and second.seq is None
    assert [d.subscription for d in await store.deliveries(first.seq)] == ["s1"]
    assert [e.event.id for e in await store.list_events()] == ["e1", "e2"]
