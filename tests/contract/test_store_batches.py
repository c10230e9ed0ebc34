"""The Store contract for batches: ops apply in the order given (``BATCH_ORDER``), each op
sees the ones before it, and a conflict anywhere writes nothing of the batch."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from legato.errors import ConcurrencyConflict
from legato.model import RunStatus, TaskStatus
from legato.storage.base import Store, UpdateRun, Write
from legato.storage.memory import MemoryStore
from tests.contract.ops import (
    T0,
    append,
    at,
    close_tasks,
    new_run,
    new_signal,
    new_task,
    set_run,
    snapshot,
    update_task,
)

# -- each op sees the ops before it, and only those ----


async def test_update_after_a_set_run_sees_the_status_it_set(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write(
        [set_run("r1", "waiting"), UpdateRun("r1", if_status=("waiting",), status="sleeping")]
    )
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.SLEEPING


async def test_set_run_after_an_update_overwrites_what_it_changed(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write(
        [
            UpdateRun("r1", status="waiting", wake_at=T0 + 5),
            set_run("r1", "running", wake_at=T0 + 50),
        ]
    )
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.RUNNING, at(T0 + 50))


async def test_update_before_the_new_run_it_names_conflicts(store: Store) -> None:
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [UpdateRun("r1", if_status=("pending",), status="running"), new_run("r1")]
        )
    assert await store.get_run("r1") is None


async def test_update_after_the_new_run_it_names_applies(store: Store) -> None:
    await store.write(
        [new_run("r1", status="pending"), UpdateRun("r1", if_status=("pending",), status="running")]
    )
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.RUNNING


async def test_set_run_before_the_new_run_it_names_changes_nothing(store: Store) -> None:
    await store.write([set_run("r1", "completed", output=1), new_run("r1", status="pending")])
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.output) == (RunStatus.PENDING, None)


async def test_new_run_after_a_set_run_of_its_id_reports_the_first(store: Store) -> None:
    conflicts = await store.write(
        [
            new_run("r1", workflow="first"),
            set_run("r1", "sleeping"),
            new_run("r1", workflow="second"),
        ]
    )
    assert conflicts == {"r1": "first"}
    run = await store.get_run("r1")
    assert run is not None and (run.workflow, run.status) == ("first", RunStatus.SLEEPING)


def _wake_on_signal() -> UpdateRun:
    return UpdateRun("r1", if_signal_after=0, status="running", wake_at=T0 + 5, required=False)


async def test_update_sees_a_signal_written_before_it_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write([set_run("r1", "waiting", wake_at=None)])
    await store.write([new_signal("r1"), _wake_on_signal()])
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.RUNNING, at(T0 + 5))


async def test_update_does_not_see_a_signal_written_after_it_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write([set_run("r1", "waiting", wake_at=None)])
    await store.write([_wake_on_signal(), new_signal("r1")])
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.WAITING, None)
    assert len(await store.signals("r1")) == 1


async def test_required_update_before_the_signal_it_expects_conflicts(store: Store) -> None:
    await store.write([new_run("r1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write([UpdateRun("r1", if_signal_after=0), new_signal("r1")])
    assert await store.signals("r1") == []


async def test_flag_guard_sees_a_flag_set_earlier_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write(
        [
            UpdateRun("r1", cancel_requested=True),
            UpdateRun("r1", if_cancel_requested=True, status="compensating"),
        ]
    )
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.COMPENSATING


async def test_wake_guard_sees_a_wake_set_earlier_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write([set_run("r1", "waiting", wake_at=None)])
    await store.write(
        [
            UpdateRun("r1", wake_at=T0 + 1),
            # Would apply to the run as it was before the batch (wake_at NULL).
            UpdateRun("r1", if_wake_after=T0 + 5, status="running", required=False),
        ]
    )
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.WAITING, at(T0 + 1))


async def test_unowned_guard_sees_a_release_earlier_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1", owner="w1")])
    await store.write(
        [
            set_run("r1", "waiting", wake_at=None, release=True, owner="w1"),
            UpdateRun("r1", if_unowned=True, wake_at=T0 + 5, required=False),
        ]
    )
    run = await store.get_run("r1")
    assert run is not None and (run.owner, run.wake_at) == (None, at(T0 + 5))


async def test_unowned_guard_before_the_release_in_its_batch_does_not_apply(
    store: Store,
) -> None:
    await store.write([new_run("r1", owner="w1")])
    await store.write(
        [
            UpdateRun("r1", if_unowned=True, wake_at=T0 + 5, required=False),
            set_run("r1", "waiting", wake_at=None, release=True, owner="w1"),
        ]
    )
    run = await store.get_run("r1")
    assert run is not None and (run.owner, run.wake_at) == (None, None)


async def test_owner_guard_after_a_release_in_its_batch_conflicts(store: Store) -> None:
    await store.write([new_run("r1", owner="w1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                set_run("r1", "waiting", release=True, owner="w1"),
                UpdateRun("r1", if_owner="w1", cancel_requested=True),
            ]
        )
    run = await store.get_run("r1")
    assert run is not None and (run.owner, run.status) == ("w1", RunStatus.RUNNING)


async def test_update_task_after_the_new_task_in_its_batch_applies(store: Store) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1"), update_task("r1", "t1", response=1)])
    task = await store.get_task("t1")
    assert task is not None and (task.status, task.response) == (TaskStatus.COMPLETED, 1)


async def test_update_task_before_the_new_task_in_its_batch_conflicts(store: Store) -> None:
    await store.write([new_run("r1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write([update_task("r1", "t1", response=1), new_task("r1", "t1")])
    assert await store.get_task("t1") is None


async def test_update_task_after_close_tasks_in_its_batch_conflicts(store: Store) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write([close_tasks("r1"), update_task("r1", "t1", response=1)])
    task = await store.get_task("t1")
    assert task is not None and task.status is TaskStatus.OPEN


async def test_close_tasks_after_update_task_in_its_batch_leaves_it_completed(
    store: Store,
) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1"), new_task("r1", "t2")])
    await store.write(
        [update_task("r1", "t1", response=1, ts=T0 + 2), close_tasks("r1", ts=T0 + 3)]
    )
    statuses = {t.task_id: (t.status, t.completed_at) for t in await store.list_tasks(status=None)}
    assert statuses == {
        "t1": (TaskStatus.COMPLETED, at(T0 + 2)),
        "t2": (TaskStatus.CANCELLED, at(T0 + 3)),
    }


async def test_second_update_of_one_task_in_a_batch_conflicts(store: Store) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write([update_task("r1", "t1", response=1), update_task("r1", "t1")])
    task = await store.get_task("t1")
    assert task is not None and (task.status, task.response) == (TaskStatus.OPEN, None)


async def test_new_task_of_an_id_that_another_run_opened_earlier_in_the_batch_is_ignored(
    store: Store,
) -> None:
    # Task ids are global: the first NewTask of an id wins, whichever run it names.
    await store.write([new_run("r1"), new_run("r2")])
    await store.write(
        [
            new_signal("r1"),
            new_task("r1", "t", name="first"),
            new_task("r2", "t", name="second"),
        ]
    )
    task = await store.get_task("t")
    assert task is not None and (task.run_id, task.name) == ("r1", "first")


# -- the allowed reorderings ----


async def test_append_before_the_new_run_of_its_run_is_as_after_it(store: Store) -> None:
    await store.write([append("r1", 1), new_run("r1"), new_run("r2"), append("r2", 1)])
    assert [e.pos for e in await store.history("r1")] == [1]
    assert [e.pos for e in await store.history("r2")] == [1]
    assert {r.run_id for r in await store.list_runs()} == {"r1", "r2"}


async def test_appends_between_other_ops_read_back_in_pos_order(store: Store) -> None:
    await store.write(
        [
            new_run("r1"),
            append("r1", 2, key="2"),
            set_run("r1", "sleeping"),
            append("r1", 1, key="1"),
            UpdateRun("r1", status="running"),
            append("r1", 3, key="3"),
        ]
    )
    assert [(e.pos, e.key) for e in await store.history("r1")] == [(1, "1"), (2, "2"), (3, "3")]


# -- a conflict anywhere writes nothing ----


async def _world(store: Store) -> None:
    await store.write(
        [
            new_run("r1", owner="w1"),
            append("r1", 1),
            new_task("r1", "t1"),
            new_task("r1", "t3"),
            new_task("r1", "done"),
            new_signal("r1", "old"),
        ]
    )
    await store.write([update_task("r1", "done", response="yes")])


def _every_kind() -> list[Write]:
    """A batch with an op of every kind, each of which would apply to ``_world``."""
    return [
        new_run("r2"),
        append("r1", 2),
        append("r2", 1),
        set_run("r1", "sleeping", wake_at=T0 + 9, owner="w1"),
        UpdateRun("r1", if_status=("sleeping",), cancel_requested=True, wake_at=T0 + 3),
        new_signal("r1", "new"),
        new_task("r1", "t2"),
        close_tasks("r1", "t1"),
        update_task("r1", "t3", response="no"),
        new_run("r3"),
    ]


CONFLICTS: dict[str, Write] = {
    "append-collides": append("r1", 1, name="b"),
    "set-run-of-another-owner": set_run("r1", "completed", owner="w2"),
    "required-update-fails": UpdateRun("r1", if_status=("completed",), status="failed"),
    "required-update-of-unknown-run": UpdateRun("ghost", status="failed"),
    "update-task-not-open": update_task("r1", "done", response="again"),
}


async def test_batch_of_every_kind_applies_to_the_world(store: Store) -> None:
    await _world(store)
    await store.write(_every_kind())
    r1 = await store.get_run("r1")
    assert r1 is not None and (r1.status, r1.cancel_requested) == (RunStatus.SLEEPING, True)
    assert r1.wake_at == at(T0 + 3)
    assert [e.pos for e in await store.history("r1")] == [1, 2]
    assert [s.name for s in await store.signals("r1")] == ["old", "new"]
    statuses = {t.task_id: t.status for t in await store.list_tasks(status=None)}
    assert statuses == {
        "t1": TaskStatus.CANCELLED,
        "t2": TaskStatus.OPEN,
        "t3": TaskStatus.COMPLETED,
        "done": TaskStatus.COMPLETED,
    }


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("conflict", list(CONFLICTS), ids=list(CONFLICTS))
async def test_conflict_anywhere_in_a_batch_writes_nothing_of_it(
    store: Store, conflict: str, where: str
) -> None:
    await _world(store)
    before = await snapshot(store, ["r1", "r2", "r3", "ghost"])
    ops = _every_kind()
    ops.insert({"first": 0, "middle": len(ops) // 2, "last": len(ops)}[where], CONFLICTS[conflict])
    with pytest.raises(ConcurrencyConflict):
        await store.write(ops)
    assert await snapshot(store, ["r1", "r2", "r3", "ghost"]) == before
    # And the store goes on: the same batch without the conflict applies.
    await store.write(_every_kind())
    assert await store.get_run("r3") is not None


async def test_concurrent_batches_are_each_atomic(store: Store) -> None:
    await _world(store)
    bad: list[Any] = [new_run("lost"), new_signal("r1", "lost"), append("r1", 1)]
    good: list[Any] = [new_run("kept"), new_signal("r1", "kept"), append("r1", 2)]
    results = await asyncio.gather(store.write(bad), store.write(good), return_exceptions=True)
    assert isinstance(results[0], ConcurrencyConflict) and results[1] == {}
    assert await store.get_run("lost") is None and await store.get_run("kept") is not None
    assert [s.name for s in await store.signals("r1")] == ["old", "kept"]
    assert [e.pos for e in await store.history("r1")] == [1, 2]


async def test_concurrent_starts_are_each_told_their_own_conflicts(store: Store) -> None:
    # Starts queued together are written as one insert (the group commit joins them):
    # each must still hear only about its own run ids, and two starts of one run id are
    # still one run, the second told of the first.
    await store.write([new_run("taken", workflow="billing")])
    starts = [[new_run(f"s-{n}", args=[n])] for n in range(30)]
    starts += [[new_run("taken")], [new_run("s-7", workflow="other")], [new_run("s-8")]]
    starts += [[new_run("pair-a"), new_run("pair-b", workflow="other")]]
    results = await asyncio.gather(*(store.write(ops) for ops in starts))
    assert results[:30] == [{}] * 30
    assert results[30:] == [{"taken": "billing"}, {"s-7": "wf"}, {"s-8": "wf"}, {}]
    for n in range(30):
        run = await store.get_run(f"s-{n}")
        assert run is not None and run.input == [n] and run.workflow == "wf"
    pair_b = await store.get_run("pair-b")
    assert pair_b is not None and pair_b.workflow == "other"


async def test_a_start_that_fails_fails_alone_when_joined_with_others(store: Store) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("the memory store has no group commit: nothing is joined")
    bad = [dataclasses.replace(new_run("bad"), status=None)]  # NOT NULL: the database refuses
    good = [[new_run(f"ok-{n}")] for n in range(5)]
    results = await asyncio.gather(
        *(store.write(ops) for ops in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == [results[2]]
    for n in range(5):
        assert await store.get_run(f"ok-{n}") is not None
    assert await store.get_run("bad") is None
