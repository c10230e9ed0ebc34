"""The Store contract for signals and human tasks: ``NewSignal``, ``NewTask``,
``CloseTasks``, ``UpdateTask`` and the reads ``signals``, ``get_task``, ``list_tasks``."""

from __future__ import annotations

import dataclasses

import pytest

from legato.errors import ConcurrencyConflict
from legato.model import TaskStatus
from legato.storage.base import Store
from tests.contract.ops import (
    T0,
    append,
    at,
    close_tasks,
    new_run,
    new_signal,
    new_task,
    snapshot,
    update_task,
)

# -- signals ----


async def test_signal_is_stored_with_its_fields(store: Store) -> None:
    await store.write([new_run("r1"), new_signal("r1", "approve", {"ok": True}, T0 + 3)])
    [signal] = await store.signals("r1")
    assert (signal.run_id, signal.name, signal.payload) == ("r1", "approve", {"ok": True})
    assert signal.sent_at == at(T0 + 3)
    assert isinstance(signal.id, int) and signal.id > 0


async def test_signal_without_payload_reads_back_none(store: Store) -> None:
    await store.write([new_run("r1"), new_signal("r1", "ping")])
    [signal] = await store.signals("r1")
    assert signal.payload is None


async def test_signal_ids_of_a_run_grow_in_write_order(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2")])
    await store.write([new_signal("r1", "a"), new_signal("r2", "x"), new_signal("r1", "b")])
    await store.write([new_signal("r2", "y")])
    await store.write([new_signal("r1", "c"), new_signal("r1", "d")])
    for run_id, names in (("r1", ["a", "b", "c", "d"]), ("r2", ["x", "y"])):
        signals = await store.signals(run_id)
        assert [s.name for s in signals] == names
        ids = [s.id for s in signals]
        assert ids == sorted(set(ids))


async def test_signals_are_in_delivery_order_and_of_their_run_only(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2")])
    await store.write([new_signal("r1", "a"), new_signal("r2", "x"), new_signal("r1", "b")])
    await store.write([new_signal("r1", "c")])
    assert [s.name for s in await store.signals("r1")] == ["a", "b", "c"]
    assert [s.name for s in await store.signals("r2")] == ["x"]
    assert await store.signals("nope") == []


async def test_signals_after_an_id_are_only_the_later_ones(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2")])
    await store.write([new_signal("r1", "a"), new_signal("r2", "x"), new_signal("r1", "b")])
    await store.write([new_signal("r1", "c")])
    a, b, c = await store.signals("r1")
    assert await store.signals("r1", 0) == [a, b, c]
    assert await store.signals("r1", a.id) == [b, c]
    assert await store.signals("r1", b.id - 1) == [b, c]
    assert await store.signals("r1", b.id) == [c]
    assert await store.signals("r1", c.id) == []


async def test_signal_of_a_batch_that_conflicts_is_not_stored(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_signal("r1", "lost"), append("r1", 1)])
    assert await store.signals("r1") == []
    await store.write([new_signal("r1", "kept")])
    assert [s.name for s in await store.signals("r1")] == ["kept"]


# -- tasks: NewTask and the reads ----


async def test_new_task_is_open_with_its_fields(store: Store) -> None:
    await store.write(
        [
            new_run("r1"),
            new_task(
                "r1",
                "r1:3",
                name="approve",
                data={"amount": 5},
                assignee="ann",
                form={"type": "object"},
                created=T0 + 2,
                due=T0 + 100,
            ),
        ]
    )
    task = await store.get_task("r1:3")
    assert task is not None
    assert (task.task_id, task.run_id, task.name) == ("r1:3", "r1", "approve")
    assert (task.data, task.assignee, task.form) == ({"amount": 5}, "ann", {"type": "object"})
    assert (task.status, task.response, task.completed_at) == (TaskStatus.OPEN, None, None)
    assert (task.created_at, task.due_at) == (at(T0 + 2), at(T0 + 100))


async def test_new_task_without_optional_fields(store: Store) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1")])
    task = await store.get_task("t1")
    assert task is not None
    assert (task.data, task.assignee, task.form, task.due_at) == (None, None, None, None)


async def test_new_task_with_an_existing_id_is_ignored(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2"), new_task("r1", "t1", name="first")])
    await store.write([update_task("r1", "t1", response="yes")])
    await store.write([new_task("r2", "t1", name="second", created=T0 + 5), new_task("r2", "t2")])
    task = await store.get_task("t1")
    assert task is not None
    assert (task.run_id, task.name, task.status, task.response) == (
        "r1",
        "first",
        TaskStatus.COMPLETED,
        "yes",
    )
    assert await store.get_task("t2") is not None  # the rest of the batch is written


async def test_duplicate_new_task_in_one_batch_keeps_the_first(store: Store) -> None:
    await store.write(
        [new_run("r1"), new_task("r1", "t1", name="first"), new_task("r1", "t1", name="second")]
    )
    task = await store.get_task("t1")
    assert task is not None and task.name == "first"
    assert len(await store.list_tasks()) == 1


async def test_get_task_of_unknown_id_is_none(store: Store) -> None:
    assert await store.get_task("nope") is None


async def _inbox(store: Store) -> None:
    await store.write(
        [
            new_run("r1"),
            new_run("r2"),
            new_task("r1", "c", assignee="ann", created=T0 + 3),
            new_task("r1", "a", assignee="bob", created=T0 + 1),
            new_task("r2", "b", assignee="ann", created=T0 + 2),
            new_task("r2", "d", created=T0 + 4),
            new_task("r1", "e", assignee="ann", created=T0 + 5),
        ]
    )
    await store.write([update_task("r1", "e", response=1), close_tasks("r2", "d")])


async def test_list_tasks_lists_open_tasks_oldest_first(store: Store) -> None:
    await _inbox(store)
    assert [t.task_id for t in await store.list_tasks()] == ["a", "b", "c"]


async def test_list_tasks_of_any_status_or_one(store: Store) -> None:
    await _inbox(store)
    assert [t.task_id for t in await store.list_tasks(status=None)] == ["a", "b", "c", "d", "e"]
    assert [t.task_id for t in await store.list_tasks(status="completed")] == ["e"]
    assert [t.task_id for t in await store.list_tasks(status="cancelled")] == ["d"]
    assert await store.list_tasks(status="expired") == []


async def test_list_tasks_by_assignee_and_run(store: Store) -> None:
    await _inbox(store)
    assert [t.task_id for t in await store.list_tasks(assignee="ann")] == ["b", "c"]
    assert [t.task_id for t in await store.list_tasks(run_id="r1")] == ["a", "c"]
    assert [t.task_id for t in await store.list_tasks(assignee="ann", run_id="r1")] == ["c"]
    assert [
        t.task_id for t in await store.list_tasks(status=None, assignee="ann", run_id="r1")
    ] == ["c", "e"]
    assert await store.list_tasks(assignee="nobody") == []


async def test_list_tasks_respects_limit(store: Store) -> None:
    await _inbox(store)
    assert [t.task_id for t in await store.list_tasks(limit=2)] == ["a", "b"]
    assert [t.task_id for t in await store.list_tasks(status=None, limit=4)] == [
        "a",
        "b",
        "c",
        "d",
    ]


# -- tasks: CloseTasks ----


async def _open_tasks(store: Store) -> None:
    await store.write(
        [
            new_run("r1"),
            new_run("r2"),
            new_task("r1", "t1", created=T0),
            new_task("r1", "t2", created=T0 + 1),
            new_task("r1", "done", created=T0 + 2),
            new_task("r2", "other", created=T0 + 3),
        ]
    )
    await store.write([update_task("r1", "done", response="yes", ts=T0 + 4)])


async def _statuses(store: Store) -> dict[str, tuple[TaskStatus, object]]:
    return {t.task_id: (t.status, t.completed_at) for t in await store.list_tasks(status=None)}


async def test_close_tasks_closes_one_open_task(store: Store) -> None:
    await _open_tasks(store)
    await store.write([close_tasks("r1", "t2", status="expired", ts=T0 + 9)])
    assert await _statuses(store) == {
        "t1": (TaskStatus.OPEN, None),
        "t2": (TaskStatus.EXPIRED, at(T0 + 9)),
        "done": (TaskStatus.COMPLETED, at(T0 + 4)),
        "other": (TaskStatus.OPEN, None),
    }


async def test_close_tasks_closes_every_open_task_of_the_run_only(store: Store) -> None:
    await _open_tasks(store)
    await store.write([close_tasks("r1", status="cancelled", ts=T0 + 9)])
    assert await _statuses(store) == {
        "t1": (TaskStatus.CANCELLED, at(T0 + 9)),
        "t2": (TaskStatus.CANCELLED, at(T0 + 9)),
        "done": (TaskStatus.COMPLETED, at(T0 + 4)),
        "other": (TaskStatus.OPEN, None),
    }
    done = await store.get_task("done")
    assert done is not None and done.response == "yes"


async def test_close_tasks_leaves_a_closed_task_and_another_runs_task(store: Store) -> None:
    await _open_tasks(store)
    before = await _statuses(store)
    await store.write(
        [
            close_tasks("r1", "done", ts=T0 + 9),
            close_tasks("r1", "other", ts=T0 + 9),  # a task of r2
            close_tasks("r1", "ghost", ts=T0 + 9),
            close_tasks("ghost", ts=T0 + 9),
        ]
    )
    assert await _statuses(store) == before


# -- tasks: UpdateTask ----


async def test_update_task_sets_status_response_and_completion(store: Store) -> None:
    await _open_tasks(store)
    before = await store.get_task("t1")
    assert before is not None
    await store.write([update_task("r1", "t1", response={"ok": 1}, ts=T0 + 7)])
    assert await store.get_task("t1") == dataclasses.replace(
        before, status=TaskStatus.COMPLETED, response={"ok": 1}, completed_at=at(T0 + 7)
    )
    other = await store.get_task("t2")
    assert other is not None and other.status is TaskStatus.OPEN


async def test_update_task_records_who_completed_it(store: Store) -> None:
    await _open_tasks(store)
    await store.write([update_task("r1", "t1", response=1, by="token:alice")])
    done, other = await store.get_task("t1"), await store.get_task("t2")
    assert done is not None and done.completed_by == "token:alice"
    assert other is not None and other.completed_by is None


async def test_update_task_guards_on_the_status_it_is_given(store: Store) -> None:
    await _open_tasks(store)
    await store.write(
        [update_task("r1", "done", if_status="completed", status="expired", response=None)]
    )
    task = await store.get_task("done")
    assert task is not None and (task.status, task.response) == (TaskStatus.EXPIRED, None)


@pytest.mark.parametrize(
    ("run_id", "task_id", "if_status"),
    [
        ("r1", "done", "open"),  # completed already
        ("r1", "t1", "completed"),  # open, not completed
        ("r1", "ghost", "open"),  # unknown task
        ("r2", "t1", "open"),  # a task of another run
        ("ghost", "t1", "open"),  # an unknown run
    ],
    ids=["wrong-status", "open-not-completed", "unknown-task", "another-run", "unknown-run"],
)
async def test_update_task_that_does_not_match_conflicts_and_writes_nothing(
    store: Store, run_id: str, task_id: str, if_status: str
) -> None:
    await _open_tasks(store)
    before = await snapshot(store, ["r1", "r2", "r3"])
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                new_run("r3"),
                new_signal("r1", "answer"),
                close_tasks("r1", "t2"),
                update_task(run_id, task_id, if_status=if_status, response="late"),
                new_task("r1", "t3"),
            ]
        )
    assert await snapshot(store, ["r1", "r2", "r3"]) == before


# -- claim_task ---------------------------------------------------------------------------


async def test_claim_task_assigns_an_unassigned_open_task_and_again_to_the_same(
    store: Store,
) -> None:
    await store.write([new_run("r1"), new_task("r1", "t1")])
    assert await store.claim_task("t1", "ann") is True
    task = await store.get_task("t1")
    assert task is not None and task.assignee == "ann" and task.status is TaskStatus.OPEN
    assert await store.claim_task("t1", "ann") is True  # one's own task, again
    assert [t.task_id for t in await store.list_tasks(assignee="ann")] == ["t1"]


async def test_claim_task_of_someone_elses_or_a_closed_or_unknown_task_writes_nothing(
    store: Store,
) -> None:
    await store.write(
        [
            new_run("r1"),
            new_task("r1", "bobs", assignee="bob"),
            new_task("r1", "done"),
        ]
    )
    await store.write([update_task("r1", "done", response=True)])
    before = {t.task_id: t for t in await store.list_tasks(status=None)}

    assert await store.claim_task("bobs", "ann") is False
    assert await store.claim_task("done", "ann") is False
    assert await store.claim_task("ghost", "ann") is False

    assert {t.task_id: t for t in await store.list_tasks(status=None)} == before
