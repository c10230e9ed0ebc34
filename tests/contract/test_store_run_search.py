"""Run search on every store: a time range, a correlation id, a run id prefix, and pages
that follow one another with no run left out or listed twice."""

from __future__ import annotations

import dataclasses

from legato.storage.base import RunSearch, Store
from tests.contract.ops import T0, new_run


async def seeded(store: Store) -> None:
    ops = [
        new_run("order-1", created=T0),
        new_run("order-2", created=T0 + 10, status="failed"),
        new_run("Order-3", created=T0 + 20),
        new_run("order_4", created=T0 + 20),  # the same second as Order-3
        new_run("refund-1", created=T0 + 30, workflow="refund"),
        dataclasses.replace(new_run("child-1", created=T0 + 40), correlation_id="order-1"),
    ]
    await store.write(ops)


def ids(runs: list) -> list[str]:
    return [r.run_id for r in runs]


async def test_a_time_range_takes_its_start_and_leaves_its_end(store: Store) -> None:
    await seeded(store)
    search = RunSearch(created_after=T0 + 10, created_before=T0 + 30)
    assert ids(await store.list_runs(search=search)) == ["order_4", "Order-3", "order-2"]


async def test_a_correlation_id_finds_the_run_it_names_and_those_that_carry_it(
    store: Store,
) -> None:
    await seeded(store)
    found = await store.list_runs(search=RunSearch(correlation_id="order-1"))
    assert ids(found) == ["child-1", "order-1"]


async def test_a_prefix_is_matched_exactly_case_and_wildcards_included(store: Store) -> None:
    await seeded(store)
    assert ids(await store.list_runs(search=RunSearch(run_id_prefix="order-"))) == [
        "order-2",
        "order-1",
    ]
    assert ids(await store.list_runs(search=RunSearch(run_id_prefix="order_"))) == ["order_4"]
    assert ids(await store.list_runs(search=RunSearch(run_id_prefix="%"))) == []


async def test_search_combines_with_status_and_workflow(store: Store) -> None:
    await seeded(store)
    search = RunSearch(run_id_prefix="order")
    assert ids(await store.list_runs(status="failed", search=search)) == ["order-2"]
    assert ids(await store.list_runs(workflow="refund", search=RunSearch())) == ["refund-1"]


async def test_pages_after_a_position_list_every_run_once_in_order(store: Store) -> None:
    await seeded(store)
    everything = ids(await store.list_runs())
    seen: list[str] = []
    before = None
    while True:
        page = await store.list_runs(limit=2, search=RunSearch(before=before))
        if not page:
            break
        seen += ids(page)
        last = page[-1]
        before = (last.created_at.timestamp(), last.run_id)
    assert seen == everything and len(seen) == 6


async def test_pages_follow_runs_whose_times_have_more_digits_than_a_datetime(
    store: Store,
) -> None:
    # time.time() has sub-microsecond digits; a Run's created_at (a datetime) does not.
    await store.write([new_run(f"r{i}", created=T0 + i + 0.123_456_789) for i in range(4)])
    seen: list[str] = []
    before = None
    for _ in range(5):
        page = await store.list_runs(limit=1, search=RunSearch(before=before))
        if not page:
            break
        seen += ids(page)
        before = (page[-1].created_at.timestamp(), page[-1].run_id)
    assert seen == ["r3", "r2", "r1", "r0"]
