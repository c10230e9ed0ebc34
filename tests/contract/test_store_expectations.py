"""The Store contract for expectations: ``NewExpectation``, ``UpdateExpectation``,
``NewArrival`` and their reads, on every adapter."""

from __future__ import annotations

import orjson
import pytest

from legato.errors import ConcurrencyConflict
from legato.model.expectations import ExpectationStatus
from legato.storage.base import NewArrival, NewExpectation, Store, UpdateExpectation
from tests.contract.ops import T0, at, new_run


def opened(
    instance: str,
    *,
    key: str = "k-1",
    expectation: str = "paid",
    missing: tuple[int, ...] = (0,),
    opened_at: float = T0,
    within: float = 300.0,
    status: str = "open",
) -> NewExpectation:
    return NewExpectation(
        f"\x00exp {instance}",
        expectation,
        instance,
        key,
        status,
        orjson.dumps(list(missing)),
        7,
        "corr-1",
        opened_at,
        opened_at + within,
        closed_at=None if status == "open" else opened_at,
        closed_by=None if status == "open" else 3,
    )


def update(
    instance: str, status: str, *, if_status: str = "open", missing: tuple[int, ...] = ()
) -> UpdateExpectation:
    return UpdateExpectation(
        f"\x00exp {instance}",
        "paid",
        instance,
        status,
        orjson.dumps(list(missing)),
        if_status,
        closed_at=T0 + 10,
        closed_by=9,
    )


async def test_a_new_instance_is_read_back_as_written(store: Store) -> None:
    await store.write([opened("/shop e-1")])
    [inst] = await store.expectation_instances("paid", ["k-1"])
    assert inst.expectation == "paid"
    assert inst.instance == "/shop e-1"
    assert inst.status is ExpectationStatus.OPEN
    assert inst.missing == (0,)
    assert inst.trigger_seq == 7
    assert inst.correlation_id == "corr-1"
    assert inst.opened_at == at(T0)
    assert inst.deadline == at(T0 + 300)
    assert inst.closed_at is None and inst.closed_by is None and inst.violation_id is None


async def test_a_duplicate_instance_writes_nothing(store: Store) -> None:
    await store.write([opened("/shop e-1", missing=(0, 1))])
    await store.write([opened("/shop e-1", missing=(), status="fulfilled")])
    [inst] = await store.expectation_instances("paid", ["k-1"])
    assert inst.status is ExpectationStatus.OPEN and inst.missing == (0, 1)


async def test_an_update_applies_only_while_the_status_is_as_expected(store: Store) -> None:
    await store.write([opened("/shop e-1")])
    await store.write([update("/shop e-1", "fulfilled")])
    [inst] = await store.expectation_instances("paid", ["k-1"])
    assert inst.status is ExpectationStatus.FULFILLED
    assert inst.missing == ()
    assert inst.closed_at == at(T0 + 10) and inst.closed_by == 9
    # A second decision made on the old status is refused, and its whole batch with it.
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_run("r-1"), update("/shop e-1", "violated")])
    assert await store.get_run("r-1") is None
    assert (await store.expectation_instances("paid", ["k-1"]))[0].status.value == "fulfilled"
    with pytest.raises(ConcurrencyConflict):
        await store.write([update("/shop unknown", "fulfilled")])


async def test_a_violation_keeps_its_event_id_and_a_late_fulfilment_keeps_it(
    store: Store,
) -> None:
    await store.write([opened("/shop e-1")])
    violated = UpdateExpectation(
        "\x00exp /shop e-1", "paid", "/shop e-1", "violated", b"[0]", "open", violation_id="v-1"
    )
    await store.write([violated])
    [inst] = await store.expectation_instances("paid", ["k-1"])
    assert inst.status is ExpectationStatus.VIOLATED
    assert inst.violation_id == "v-1" and inst.closed_at is None
    await store.write([update("/shop e-1", "late_fulfilled", if_status="violated")])
    [inst] = await store.expectation_instances("paid", ["k-1"])
    assert inst.status is ExpectationStatus.LATE_FULFILLED
    assert inst.violation_id == "v-1" and inst.closed_by == 9


async def test_due_instances_are_the_open_ones_past_their_deadline_earliest_first(
    store: Store,
) -> None:
    await store.write(
        [
            opened("/shop late", opened_at=T0 + 100),
            opened("/shop early", opened_at=T0),
            opened("/shop done", opened_at=T0, status="fulfilled", missing=()),
            opened("/shop other", expectation="other", opened_at=T0),
        ]
    )
    assert await store.due_expectations(["paid"], T0 + 299, 10) == []
    due = await store.due_expectations(["paid"], T0 + 400, 10)
    assert [i.instance for i in due] == ["/shop early", "/shop late"]
    assert [i.instance for i in await store.due_expectations(["paid"], T0 + 400, 1)] == [
        "/shop early"
    ]
    assert await store.due_expectations([], T0 + 400, 10) == []
    assert await store.next_expectation_due(["paid"]) == T0 + 300
    assert await store.next_expectation_due(["paid", "other"]) == T0 + 300
    assert await store.next_expectation_due(["nobody"]) is None


async def test_claimed_deadlines_are_held_from_other_workers_until_the_hold_ends(
    store: Store,
) -> None:
    await store.write(
        [
            opened("/shop late", opened_at=T0 + 100),
            opened("/shop early", opened_at=T0),
            opened("/shop done", opened_at=T0, status="fulfilled", missing=()),
            opened("/shop other", expectation="other", opened_at=T0),
        ]
    )
    now = T0 + 400
    assert await store.claim_due_expectations(["paid"], T0 + 299, 10, T0 + 304) == []
    # One worker takes the earliest; another, at once, takes what is left, then nothing
    first = await store.claim_due_expectations(["paid"], now, 1, now + 5)
    assert [i.instance for i in first] == ["/shop early"]
    second = await store.claim_due_expectations(["paid", "other"], now, 10, now + 5)
    assert [i.instance for i in second] == ["/shop other", "/shop late"]
    assert await store.claim_due_expectations(["paid", "other"], now + 4, 10, now + 9) == []
    # The hold ends (the worker died before deciding): another worker takes them over
    again = await store.claim_due_expectations(["paid"], now + 6, 10, now + 11)
    assert [i.instance for i in again] == ["/shop early", "/shop late"]
    # A claim reads like any instance, and does not close it
    assert all(i.status is ExpectationStatus.OPEN for i in again)
    assert await store.claim_due_expectations([], now, 10, now + 5) == []


async def test_instances_are_listed_newest_first_and_filtered(store: Store) -> None:
    await store.write(
        [
            opened("/shop a", key="k-1", opened_at=T0),
            opened("/shop b", key="k-2", opened_at=T0 + 1),
            opened("/shop c", key="k-1", opened_at=T0 + 2, status="cancelled"),
            opened("/shop d", key="k-1", expectation="other", opened_at=T0 + 3),
        ]
    )
    assert [i.instance for i in await store.list_expectations()] == [
        "/shop d",
        "/shop c",
        "/shop b",
        "/shop a",
    ]
    assert [i.instance for i in await store.list_expectations(expectation="paid", key="k-1")] == [
        "/shop c",
        "/shop a",
    ]
    assert [i.instance for i in await store.list_expectations(status="open", limit=2)] == [
        "/shop d",
        "/shop b",
    ]
    assert [
        i.instance for i in await store.expectation_instances("paid", ["k-1"], ["cancelled"])
    ] == ["/shop c"]
    assert len(await store.list_expectations(correlation_id="corr-1")) == 4
    assert await store.list_expectations(correlation_id="corr-2") == []


async def test_arrivals_are_recorded_once_and_read_from_a_time(store: Store) -> None:
    arrival = NewArrival("\x00arr", "paid", "k-1", "then:0", 4, T0)
    await store.write([arrival, NewArrival("\x00arr", "paid", "k-1", "unless", 5, T0 + 60)])
    await store.write([arrival])  # recorded already: nothing new
    found = await store.arrivals("paid", ["k-1"], T0)
    assert [(a.role, a.seq, a.at) for a in found] == [("then:0", 4, T0), ("unless", 5, T0 + 60)]
    assert [a.seq for a in await store.arrivals("paid", ["k-1"], T0 + 1)] == [5]
    assert await store.arrivals("paid", ["k-2"], T0) == []
    assert await store.arrivals("other", ["k-1"], T0) == []
    await store.write([NewArrival("\x00arr", "paid", "k-2", "then:0", 6, T0)])
    both = await store.arrivals("paid", ["k-1", "k-2", "k-1"], T0)
    assert [(a.key, a.seq) for a in both] == [("k-1", 4), ("k-1", 5), ("k-2", 6)]


async def test_instances_of_several_keys_are_read_at_once(store: Store) -> None:
    await store.write(
        [
            opened("/shop a", key="k-1", opened_at=T0 + 1),
            opened("/shop b", key="k-2", opened_at=T0),
            opened("/shop c", key="k-3", opened_at=T0 + 2),
        ]
    )
    found = await store.expectation_instances("paid", ["k-1", "k-2", "k-9"])
    assert [i.instance for i in found] == ["/shop b", "/shop a"]
    assert await store.expectation_instances("paid", []) == []
