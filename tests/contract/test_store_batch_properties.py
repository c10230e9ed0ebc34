"""Properties of ``Store.write`` over generated batches, on every adapter.

``BATCH_ORDER`` lets an adapter apply a batch's ops in another order than given, within
limits. These tests prove the freedom unobservable: a batch ends in the state its ops
reach applied one at a time in order, or, when one of them would conflict there, writes
nothing. A second test runs the same batches on every adapter and compares what they
hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from legato.errors import ConcurrencyConflict
from legato.model import EventKind
from legato.storage.base import (
    KEEP,
    Append,
    CloseTasks,
    NewRun,
    NewSignal,
    NewTask,
    SetRun,
    Store,
    UpdateRun,
    UpdateTask,
    Write,
)
from tests.contract.ops import T0, State, snapshot
from tests.fixtures.db import BACKENDS, new_store

RUN_IDS = ("r1", "r2", "r3")
"""Few ids, so that ops of one batch often meet on the same run or task."""
TASK_IDS = ("t1", "t2")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible, not flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

runs = st.sampled_from(RUN_IDS)
tasks = st.sampled_from(TASK_IDS)
owners = st.sampled_from([None, "w1", "w2"])
times = st.sampled_from([T0 + i for i in range(5)])
maybe_times = st.none() | times
statuses = st.sampled_from(["pending", "running", "waiting", "sleeping", "blocked", "completed"])
payloads = st.sampled_from([None, b"1", b'"x"', b'{"k": [1, 2]}'])
errors = st.sampled_from([None, b'{"type": "E", "message": "m", "step": "s"}'])


def new_runs_of(run_ids: st.SearchStrategy[str]) -> st.SearchStrategy[NewRun]:
    return st.builds(
        NewRun,
        run_ids,
        st.sampled_from(["wf", "other"]),
        statuses,
        st.sampled_from([b"[1]", b'["a"]']),
        times,
        maybe_times,
        owners,
        parent_run_id=st.none() | runs,
    )


new_runs = new_runs_of(runs)
appends = st.builds(
    Append,
    runs,
    st.integers(1, 3),
    st.sampled_from([EventKind.STEP_STARTED.value, EventKind.STEP_COMPLETED.value]),
    st.sampled_from([None, "1"]),
    st.sampled_from([None, "a"]),
    st.integers(0, 2),
    payloads,
    times,
)
set_runs = st.builds(
    SetRun,
    runs,
    statuses,
    payloads,
    errors,
    times,
    maybe_times,
    release=st.booleans(),
    owner=st.sampled_from([None, None, "w1", "w2"]),  # a guarded write often conflicts
)


def update_runs(signal_after: st.SearchStrategy[int]) -> st.SearchStrategy[UpdateRun]:
    """Updates asking up to two conditions: with every condition drawn at random an
    update would hardly ever match, and would show little."""
    conditions: dict[str, st.SearchStrategy[Any]] = {
        "if_status": st.lists(statuses, min_size=1, max_size=3, unique=True).map(tuple),
        "if_owner": st.sampled_from(["w1", "w2"]),
        "if_unowned": st.just(True),
        "if_cancel_requested": st.booleans(),
        "if_signal_after": signal_after,
        "if_wake_after": times,
    }

    @st.composite
    def build(draw: st.DrawFn) -> UpdateRun:
        asked = draw(st.lists(st.sampled_from(sorted(conditions)), max_size=2, unique=True))
        return UpdateRun(
            draw(runs),
            **{name: draw(conditions[name]) for name in asked},
            status=draw(st.none() | statuses),
            wake_at=draw(st.sampled_from([KEEP, None]) | times),
            cancel_requested=draw(st.none() | st.booleans()),
            clear_error=draw(st.booleans()),
            updated_at=draw(maybe_times),
            required=draw(st.sampled_from([False, False, True])),  # one required often conflicts
        )

    return build()


new_signals = st.builds(NewSignal, runs, st.sampled_from(["a", "b"]), payloads, times)


def new_tasks_of(task_ids: st.SearchStrategy[str]) -> st.SearchStrategy[NewTask]:
    return st.builds(
        NewTask,
        runs,
        task_ids,
        st.sampled_from(["approve", "review"]),
        payloads,
        st.sampled_from([None, "ann"]),
        st.sampled_from([None, b'{"type": "object"}']),
        times,
        maybe_times,
    )


new_tasks = new_tasks_of(tasks)
close_tasks = st.builds(
    CloseTasks, runs, st.none() | tasks, st.sampled_from(["cancelled", "expired"]), times
)
update_tasks = st.builds(
    UpdateTask,
    runs,
    tasks,
    st.sampled_from(["open", "completed"]),
    st.sampled_from(["completed", "expired"]),
    payloads,
    times,
)


def write_ops(signal_after: st.SearchStrategy[int]) -> st.SearchStrategy[Write]:
    return st.one_of(
        new_runs,
        appends,
        set_runs,
        update_runs(signal_after),
        new_signals,
        new_tasks,
        close_tasks,
        update_tasks,
    )


def batches(
    signal_after: st.SearchStrategy[int], min_size: int = 0
) -> st.SearchStrategy[list[Write]]:
    return st.lists(write_ops(signal_after), min_size=min_size, max_size=8)


def worlds(signal_after: st.SearchStrategy[int]) -> st.SearchStrategy[list[list[Write]]]:
    """Batches that build a store's state: every run and task first (so that most ops
    meet a row), then anything."""
    first: st.SearchStrategy[list[Write]] = st.tuples(
        *(new_runs_of(st.just(run_id)) for run_id in RUN_IDS),
        *(new_tasks_of(st.just(task_id)) for task_id in TASK_IDS),
    ).map(list)
    rest = st.lists(batches(signal_after, min_size=1), max_size=4)
    return st.tuples(first, rest).map(lambda fr: [fr[0], *fr[1]])


async def write_or_conflict(store: Store, ops: Sequence[Write]) -> dict[str, str] | None:
    """What ``write`` returns, or None if it raised ``ConcurrencyConflict``."""
    try:
        return await store.write(ops)
    except ConcurrencyConflict:
        return None


async def opened(backend: str, directory: Path) -> Store:
    store = new_store(backend, directory)
    await store.open()
    return store


def comparable(state: State) -> State:
    """``state`` without signal ids, each run's signals still in id order.

    ``BATCH_ORDER`` fixes the order of one run's signals only: between runs of a batch
    ids may go either way, and a batch rolled back may use up ids in one adapter (a
    sequence) and not in another.
    """
    return dataclasses.replace(
        state,
        signals={
            rid: [dataclasses.replace(s, id=0) for s in signals]
            for rid, signals in state.signals.items()
        },
    )


async def resolved(store: Store, ops: Sequence[Write]) -> list[Write]:
    """``ops`` with each ``if_signal_after`` read as "above the run's k-th signal".

    Generated as a position (0: any signal), resolved against the signals the store
    holds before the batch: an absolute id would name, in one store or order, a signal
    that in another is another run's (see ``comparable``). Past the last signal it is
    the last one, so that it asks for a signal of this batch.
    """
    out: list[Write] = []
    for op in ops:
        if type(op) is UpdateRun and op.if_signal_after:
            ids = [s.id for s in await store.signals(op.run_id)]
            k = min(op.if_signal_after, len(ids))
            op = dataclasses.replace(op, if_signal_after=ids[k - 1] if k else 0)
        out.append(op)
    return out


async def state(store: Store) -> State:
    return comparable(await snapshot(store, RUN_IDS))


# -- a batch is its ops, one at a time ----


async def check_batch_is_its_ops_in_order(
    backend: str, world: list[list[Write]], batch: list[Write]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "whole").mkdir()
        (Path(tmp) / "one").mkdir()
        whole = await opened(backend, Path(tmp) / "whole")
        one_by_one = await opened(backend, Path(tmp) / "one")
        try:
            # Given two stores in the same state
            for ops in world:
                assert await write_or_conflict(
                    whole, await resolved(whole, ops)
                ) == await write_or_conflict(one_by_one, await resolved(one_by_one, ops))
            before = await state(whole)
            assert await state(one_by_one) == before
            # When one gets the batch whole and the other its ops one at a time, in order
            reported = await write_or_conflict(whole, await resolved(whole, batch))
            expected: dict[str, str] | None = {}
            for op in await resolved(one_by_one, batch):
                found = await write_or_conflict(one_by_one, [op])
                if found is None:
                    expected = None  # the batch should have conflicted here
                    break
                assert expected is not None
                expected.update(found)
            # Then the batch did what its ops did, or, if one conflicted, nothing
            event("conflicted" if expected is None else f"applied {len(batch)} ops")
            assert reported == expected
            assert await state(whole) == (before if expected is None else await state(one_by_one))
        finally:
            await whole.close()
            await one_by_one.close()


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(world=worlds(st.integers(0, 3)), batch=batches(st.integers(0, 3), min_size=2))
def test_batch_ends_as_its_ops_applied_one_at_a_time_or_writes_nothing(
    backend: str, world: list[list[Write]], batch: list[Write]
) -> None:
    asyncio.run(check_batch_is_its_ops_in_order(backend, world, batch))


# -- every adapter holds the same after the same batches ----


async def reads(store: Store) -> dict[str, Any]:
    """What the other reads say about the state, claims last (a claim writes)."""
    found: dict[str, Any] = {
        "next_due": await store.next_due(["wf", "other"]),
        "last_pos": [await store.last_pos(rid) for rid in RUN_IDS],
        "cancel_requests": [sorted(await store.cancel_requests(w)) for w in ("w1", "w2")],
        "open_tasks": await store.list_tasks(),
    }
    await store.register_worker("w3", "h", 1, T0)
    claimed = await store.claim_runs("w3", T0 + 2, 100, ["wf"])
    found["claimed"] = sorted(r.run_id for r in claimed)
    found["released"] = await store.release_orphaned_runs()
    return found


async def check_adapters_agree(history: list[list[Write]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores = []
        for backend in BACKENDS:
            (Path(tmp) / backend).mkdir()
            stores.append(await opened(backend, Path(tmp) / backend))
        try:
            for ops in history:
                outcomes = [await write_or_conflict(s, await resolved(s, ops)) for s in stores]
                assert all(o == outcomes[0] for o in outcomes), (ops, outcomes)
                states = [await state(s) for s in stores]
                assert all(s == states[0] for s in states), ops
            found = [await reads(s) for s in stores]
            assert all(f == found[0] for f in found)
        finally:
            for store in stores:
                await store.close()


@SETTINGS
@given(history=worlds(st.integers(0, 3)))
def test_every_adapter_holds_the_same_after_the_same_batches(
    history: list[list[Write]],
) -> None:
    asyncio.run(check_adapters_agree(history))
