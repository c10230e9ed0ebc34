"""What a cancel, a resume, a signal and a task answer mean (``legato.lifecycle``), on
every store: the rules live once, above the store's primitives."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

import pytest

from legato import lifecycle
from legato.errors import ConcurrencyConflict
from legato.model import EventKind, RunStatus, TaskStatus
from legato.model.runs import TERMINAL_STATUSES
from legato.storage.base import Store, UpdateRun
from tests.contract.ops import (
    T0,
    append,
    at,
    close_tasks,
    new_run,
    new_signal,
    new_task,
    set_run,
)

Move = Callable[[Store], Awaitable[Any]]

ENDED = sorted(s.value for s in TERMINAL_STATUSES if s is not RunStatus.BLOCKED)


class Interleaved:
    """A real store on which something else writes just before some calls reach it.

    ``Interleaved(store, write=[claim])`` runs ``claim`` on the store right before the
    first ``write``: whatever the caller read is then stale, as when a worker claims or
    releases the run between a client's read and its write.
    """

    def __init__(self, store: Store, **before: Iterable[Move]) -> None:
        self._store = store
        self._before: dict[str, Iterator[Move]] = {name: iter(m) for name, m in before.items()}
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        moves = self._before.get(name)
        if moves is None:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            move = next(moves, None)
            if move is not None:
                await move(self._store)
            return await target(*args, **kwargs)

        return call

    def as_store(self) -> Store:
        return cast(Store, self)


async def claim(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    assert await store.claim_runs("w1", T0 + 100, 10, ["wf"])


async def release_parked(store: Store) -> None:
    await store.write([set_run("r1", "sleeping", wake_at=T0 + 30, release=True, owner="w1")])


async def complete(store: Store) -> None:
    await store.write([set_run("r1", "completed", output=1, release=True, owner="w1")])


async def parked(
    store: Store, status: str, wake_at: float | None, owner: str | None = None
) -> None:
    await store.write([new_run("r1", owner=owner), append("r1", 1)])
    await store.write([set_run("r1", status, wake_at=wake_at)])


# -- request_cancel ----


async def test_request_cancel_of_pending_unowned_run_cancels_it_outright(store: Store) -> None:
    await store.write(
        [
            new_run("r1", status="pending"),
            append("r1", 1, EventKind.RUN_STARTED, key=None, name=None),
        ]
    )
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run is not None
    assert run.status is RunStatus.CANCELLED and run.cancel_requested
    assert (run.wake_at, run.updated_at) == (None, at(T0 + 5))
    assert await store.get_run("r1") == run
    history = await store.history("r1")
    assert [(e.pos, e.kind) for e in history] == [
        (1, EventKind.RUN_STARTED),
        (2, EventKind.CANCEL_REQUESTED),
        (3, EventKind.RUN_CANCELLED),
    ]
    assert history[-1].at == at(T0 + 5)
    # A cancelled run is finished: nobody may claim it.
    await store.register_worker("me", "h", 1, T0)
    assert await store.claim_runs("me", T0 + 10, 10, ["wf"]) == []


async def test_request_cancel_of_owned_run_only_sets_the_flag(store: Store) -> None:
    await store.write([new_run("r1", owner="w1"), append("r1", 1)])
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run is not None
    assert run.status is RunStatus.RUNNING and run.cancel_requested
    assert [e.pos for e in await store.history("r1")] == [1]
    assert await store.cancel_requests("w1") == ["r1"]


async def test_request_cancel_of_owned_run_leaves_its_wake_and_owner(store: Store) -> None:
    await parked(store, "sleeping", T0 + 30, owner="w1")
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run is not None
    assert (run.owner, run.wake_at, run.updated_at) == ("w1", at(T0 + 30), at(T0 + 5))


async def test_request_cancel_of_owned_pending_run_only_sets_the_flag(store: Store) -> None:
    await store.write([new_run("r1", status="pending", owner="w1")])
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run is not None
    assert run.status is RunStatus.PENDING and run.cancel_requested
    assert await store.history("r1") == []


@pytest.mark.parametrize(
    ("status", "wake_at"),
    [("waiting", None), ("waiting", T0 + 300), ("sleeping", T0 + 30), ("running", T0)],
    ids=["waiting-for-an-event", "waiting-with-a-timeout", "sleeping", "running-released"],
)
async def test_request_cancel_of_unowned_parked_run_flags_it_and_makes_it_due(
    store: Store, status: str, wake_at: float | None
) -> None:
    await parked(store, status, wake_at)
    run = await lifecycle.request_cancel(store, "r1", T0 + 5, "ann")
    assert run is not None
    assert (run.status.value, run.cancel_requested) == (status, True)
    assert (run.wake_at, run.updated_at, run.owner) == (at(T0 + 5), at(T0 + 5), None)
    # Recorded now, with who asked (no worker holds the run to append to its history).
    [_, requested] = await store.history("r1")
    assert (requested.pos, requested.kind, requested.data) == (
        2,
        EventKind.CANCEL_REQUESTED,
        {"by": "ann"},
    )
    await store.register_worker("w1", "h", 1, T0)
    [claimed] = await store.claim_runs("w1", T0 + 5, 10, ["wf"])
    assert claimed.run_id == "r1" and await store.cancel_requests("w1") == ["r1"]


async def test_request_cancel_of_blocked_run_makes_it_running_and_due(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    await store.write([set_run("r1", "blocked", error={"type": "E"}, wake_at=None)])
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run is not None
    assert (run.status, run.cancel_requested) == (RunStatus.RUNNING, True)
    assert (run.wake_at, run.updated_at) == (at(T0 + 5), at(T0 + 5))
    [_, requested] = await store.history("r1")
    assert (requested.kind, requested.data) == (EventKind.CANCEL_REQUESTED, None)  # by: unknown
    assert await store.next_due(["wf"]) == T0 + 5


@pytest.mark.parametrize("status", ENDED)
async def test_request_cancel_of_ended_run_changes_nothing(store: Store, status: str) -> None:
    await store.write([new_run("r1"), append("r1", 1), set_run("r1", status, output=1)])
    before = await store.get_run("r1")
    run = await lifecycle.request_cancel(store, "r1", T0 + 5)
    assert run == before
    assert run is not None and not run.cancel_requested
    assert await store.get_run("r1") == before
    assert [e.pos for e in await store.history("r1")] == [1]


async def test_request_cancel_of_unknown_run_is_none(store: Store) -> None:
    assert await lifecycle.request_cancel(store, "nope", T0) is None
    assert await store.get_run("nope") is None


async def test_request_cancel_of_run_claimed_meanwhile_flags_it_for_its_owner(
    store: Store,
) -> None:
    # Given a parked run that a worker claims between the cancel's read and its write
    await parked(store, "sleeping", T0 + 30)
    moving = Interleaved(store, write=[claim])
    # When the cancel is requested
    run = await lifecycle.request_cancel(moving.as_store(), "r1", T0 + 5)
    # Then its first write conflicted; it read again, and left the run to its new owner
    assert moving.calls["write"] == 2
    assert run is not None and run == await store.get_run("r1")
    assert (run.status, run.owner, run.cancel_requested) == (RunStatus.SLEEPING, "w1", True)
    assert run.wake_at == at(T0 + 30)
    assert await store.cancel_requests("w1") == ["r1"]


async def test_request_cancel_of_pending_run_claimed_meanwhile_records_nothing(
    store: Store,
) -> None:
    await store.write([new_run("r1", status="pending")])
    run = await lifecycle.request_cancel(Interleaved(store, write=[claim]).as_store(), "r1", T0 + 5)
    assert run is not None
    assert (run.status, run.owner, run.cancel_requested) == (RunStatus.PENDING, "w1", True)
    assert await store.history("r1") == []  # its owner records the cancellation


async def test_request_cancel_of_run_released_meanwhile_makes_it_due(store: Store) -> None:
    await store.write([new_run("r1", owner="w1"), append("r1", 1)])
    moving = Interleaved(store, write=[release_parked])
    run = await lifecycle.request_cancel(moving.as_store(), "r1", T0 + 5)
    assert run is not None
    assert (run.status, run.owner, run.cancel_requested) == (RunStatus.SLEEPING, None, True)
    assert run.wake_at == at(T0 + 5)


async def test_request_cancel_of_run_that_ended_meanwhile_leaves_it(store: Store) -> None:
    await store.write([new_run("r1", owner="w1"), append("r1", 1)])
    run = await lifecycle.request_cancel(
        Interleaved(store, write=[complete]).as_store(), "r1", T0 + 5
    )
    assert run is not None
    assert (run.status, run.cancel_requested) == (RunStatus.COMPLETED, False)


async def test_request_cancel_gives_up_on_a_run_that_moves_after_every_read(
    store: Store,
) -> None:
    await parked(store, "sleeping", T0 + 30)

    async def release(s: Store) -> None:
        await s.release_runs("w1")

    moving = Interleaved(store, write=itertools.cycle([claim, release]))
    with pytest.raises(ConcurrencyConflict):
        await lifecycle.request_cancel(moving.as_store(), "r1", T0 + 5)
    assert moving.calls["write"] > 2
    run = await store.get_run("r1")
    assert run is not None and not run.cancel_requested


# -- resume_blocked ----


async def test_resume_blocked_makes_it_running_and_due_and_records_it(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1), append("r1", 2)])
    await store.write([set_run("r1", "blocked", error={"type": "E"}, wake_at=None)])
    run = await lifecycle.resume_blocked(store, "r1", T0 + 5)
    assert run is not None and run == await store.get_run("r1")
    assert (run.status, run.error) == (RunStatus.RUNNING, None)
    assert (run.wake_at, run.updated_at, run.cancel_requested) == (at(T0 + 5), at(T0 + 5), False)
    [*_, last] = await store.history("r1")
    assert (last.pos, last.kind, last.at) == (3, EventKind.RUN_RESUMED, at(T0 + 5))
    await store.register_worker("w1", "h", 1, T0)
    assert [r.run_id for r in await store.claim_runs("w1", T0 + 5, 10, ["wf"])] == ["r1"]


@pytest.mark.parametrize("status", ["running", "waiting", "completed", "failed", "cancelled"])
async def test_resume_of_a_run_that_is_not_blocked_changes_nothing(
    store: Store, status: str
) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    await store.write([set_run("r1", status, error={"type": "E"})])
    before = await store.get_run("r1")
    assert await lifecycle.resume_blocked(store, "r1", T0 + 5) == before
    assert await store.get_run("r1") == before
    assert [e.pos for e in await store.history("r1")] == [1]


async def test_resume_of_unknown_run_is_none(store: Store) -> None:
    assert await lifecycle.resume_blocked(store, "nope", T0) is None
    assert await store.get_run("nope") is None


async def test_resume_of_run_resumed_meanwhile_records_one_resume(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    await store.write([set_run("r1", "blocked", error={"type": "E"})])

    async def resume_elsewhere(s: Store) -> None:
        await lifecycle.resume_blocked(s, "r1", T0 + 4)

    moving = Interleaved(store, write=[resume_elsewhere])
    run = await lifecycle.resume_blocked(moving.as_store(), "r1", T0 + 5)
    assert run is not None and (run.status, run.wake_at) == (RunStatus.RUNNING, at(T0 + 4))
    kinds = [e.kind for e in await store.history("r1")]
    assert kinds.count(EventKind.RUN_RESUMED) == 1


# -- send_signal ----


async def test_send_signal_to_unknown_run_sends_nothing(store: Store) -> None:
    assert await lifecycle.send_signal(store, "nope", "go", b"1", T0) == (None, False)
    assert await store.signals("nope") == []


@pytest.mark.parametrize("status", sorted(s.value for s in TERMINAL_STATUSES))
async def test_send_signal_to_ended_run_sends_nothing(store: Store, status: str) -> None:
    await store.write([new_run("r1"), set_run("r1", status)])
    before = await store.get_run("r1")
    assert await lifecycle.send_signal(store, "r1", "go", b"1", T0 + 5) == (before, False)
    assert await store.signals("r1") == []
    assert await store.get_run("r1") == before


async def test_send_signal_stores_it(store: Store) -> None:
    await parked(store, "waiting", None, owner="w1")
    _, sent = await lifecycle.send_signal(store, "r1", "go", b'{"n": 1}', T0 + 5)
    assert sent is True
    [signal] = await store.signals("r1")
    assert (signal.name, signal.payload, signal.sent_at) == ("go", {"n": 1}, at(T0 + 5))


@pytest.mark.parametrize("wake_at", [None, T0 + 300], ids=["no-timeout", "later-timeout"])
async def test_send_signal_makes_an_unowned_waiting_run_due(
    store: Store, wake_at: float | None
) -> None:
    await parked(store, "waiting", wake_at)
    await lifecycle.send_signal(store, "r1", "go", None, T0 + 5)
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.WAITING, at(T0 + 5))
    assert await store.next_due(["wf"]) == T0 + 5


async def test_send_signal_never_postpones_an_earlier_wake(store: Store) -> None:
    await parked(store, "waiting", T0 + 2)
    await lifecycle.send_signal(store, "r1", "go", None, T0 + 5)
    run = await store.get_run("r1")
    assert run is not None and run.wake_at == at(T0 + 2)


async def test_send_signal_leaves_the_wake_of_an_owned_run(store: Store) -> None:
    await parked(store, "waiting", None, owner="w1")
    await lifecycle.send_signal(store, "r1", "go", None, T0 + 5)
    run = await store.get_run("r1")
    assert run is not None and (run.wake_at, run.owner) == (None, "w1")
    assert len(await store.signals("r1")) == 1


@pytest.mark.parametrize("status", ["sleeping", "running", "pending"])
async def test_send_signal_wakes_only_a_run_waiting_for_an_event(store: Store, status: str) -> None:
    await parked(store, status, T0 + 30)
    await lifecycle.send_signal(store, "r1", "go", None, T0 + 5)
    run = await store.get_run("r1")
    assert run is not None and run.wake_at == at(T0 + 30)
    assert len(await store.signals("r1")) == 1


async def test_send_signal_to_run_that_ended_meanwhile_sends_nothing(store: Store) -> None:
    await store.write([new_run("r1", owner="w1")])
    moving = Interleaved(store, write=[complete])
    run, sent = await lifecycle.send_signal(moving.as_store(), "r1", "go", None, T0 + 5)
    assert sent is False
    assert run is not None and run.status is RunStatus.COMPLETED
    assert await store.signals("r1") == []


async def test_send_signal_to_blocked_run_resumed_meanwhile_sends_it(store: Store) -> None:
    # Given a blocked run that an operator resumes while a signal is being refused
    await store.write([new_run("r1"), append("r1", 1), set_run("r1", "blocked")])

    async def resume(s: Store) -> None:
        await lifecycle.resume_blocked(s, "r1", T0 + 4)

    moving = Interleaved(store, get_run=[resume])
    # When the signal is sent
    _, sent = await lifecycle.send_signal(moving.as_store(), "r1", "go", None, T0 + 5)
    # Then it reaches the running run, once
    assert sent is True
    assert [s.name for s in await store.signals("r1")] == ["go"]


# -- complete_task ----


async def _asked(store: Store, *, owner: str | None = None, status: str = "waiting") -> None:
    await store.write([new_run("r1", owner=owner), new_task("r1", "r1:2", created=T0)])
    await store.write([set_run("r1", status, wake_at=None)])


async def test_complete_task_stores_the_answer_and_signals_and_wakes_the_run(
    store: Store,
) -> None:
    await _asked(store)
    task, completed = await lifecycle.complete_task(store, "r1:2", b'{"ok": true}', T0 + 5)
    assert completed is True
    assert task is not None and task == await store.get_task("r1:2")
    assert (task.status, task.response, task.completed_at) == (
        TaskStatus.COMPLETED,
        {"ok": True},
        at(T0 + 5),
    )
    [signal] = await store.signals("r1")
    assert (signal.name, signal.payload) == (lifecycle.task_signal("r1:2"), {"ok": True})
    run = await store.get_run("r1")
    assert run is not None and run.wake_at == at(T0 + 5)


def test_task_signals_of_two_tasks_differ() -> None:
    assert lifecycle.task_signal("r1:2") != lifecycle.task_signal("r1:3")


async def test_complete_task_twice_keeps_the_first_answer(store: Store) -> None:
    await _asked(store)
    await lifecycle.complete_task(store, "r1:2", b'"first"', T0 + 5)
    task, completed = await lifecycle.complete_task(store, "r1:2", b'"second"', T0 + 6)
    assert completed is False
    assert task is not None and (task.response, task.completed_at) == ("first", at(T0 + 5))
    assert [s.payload for s in await store.signals("r1")] == ["first"]


async def test_complete_unknown_task_does_nothing(store: Store) -> None:
    assert await lifecycle.complete_task(store, "nope", b"1", T0) == (None, False)


async def test_complete_closed_task_does_nothing(store: Store) -> None:
    await _asked(store)
    await store.write([close_tasks("r1", "r1:2", status="expired")])
    task, completed = await lifecycle.complete_task(store, "r1:2", b"1", T0 + 5)
    assert completed is False
    assert task is not None and (task.status, task.response) == (TaskStatus.EXPIRED, None)
    assert await store.signals("r1") == []


async def test_complete_task_of_owned_run_leaves_its_wake(store: Store) -> None:
    await _asked(store, owner="w1")
    assert (await lifecycle.complete_task(store, "r1:2", b"1", T0 + 5))[1] is True
    run = await store.get_run("r1")
    assert run is not None and (run.wake_at, run.owner) == (None, "w1")
    assert len(await store.signals("r1")) == 1


async def test_complete_task_closed_meanwhile_does_nothing(store: Store) -> None:
    await _asked(store)

    async def close(s: Store) -> None:
        await s.write([close_tasks("r1")])

    moving = Interleaved(store, write=[close])
    task, completed = await lifecycle.complete_task(moving.as_store(), "r1:2", b"1", T0 + 5)
    assert completed is False
    assert task is not None and task.status is TaskStatus.CANCELLED
    assert await store.signals("r1") == []


async def test_complete_task_answered_meanwhile_keeps_the_other_answer(store: Store) -> None:
    await _asked(store)

    async def answer(s: Store) -> None:
        await lifecycle.complete_task(s, "r1:2", b'"theirs"', T0 + 4)

    moving = Interleaved(store, write=[answer])
    task, completed = await lifecycle.complete_task(moving.as_store(), "r1:2", b'"ours"', T0 + 5)
    assert completed is False
    assert task is not None and task.response == "theirs"
    assert [s.payload for s in await store.signals("r1")] == ["theirs"]


# -- after_release ----


async def _release(
    store: Store,
    watermark: int | None,
    *,
    status: str = "waiting",
    wake_at: float | None = None,
    release: bool = True,
    first: bool = False,
) -> None:
    """The owner w1 parks r1 and lets go of it, with ``after_release`` in the batch."""
    park = set_run("r1", status, wake_at=wake_at, release=release, owner="w1")
    follow = lifecycle.after_release("r1", T0 + 5, watermark)
    await store.write([*follow, park] if first else [park, *follow])


async def _owned(store: Store, *, cancel: bool = False, signals: int = 0) -> list[int]:
    await store.write([new_run("r1", owner="w1"), append("r1", 1)])
    ops: list[Any] = [new_signal("r1", f"s{i}") for i in range(signals)]
    if cancel:
        ops.append(UpdateRun("r1", cancel_requested=True))
    await store.write(ops)
    return [s.id for s in await store.signals("r1")]


async def _wake_at(store: Store) -> object:
    run = await store.get_run("r1")
    assert run is not None
    return run.wake_at


async def test_after_release_makes_a_run_with_a_cancel_request_due(store: Store) -> None:
    await _owned(store, cancel=True)
    await _release(store, None)
    assert await _wake_at(store) == at(T0 + 5)


async def test_after_release_moves_a_later_wake_of_a_run_to_be_cancelled(store: Store) -> None:
    await _owned(store, cancel=True)
    await _release(store, None, status="sleeping", wake_at=T0 + 300)
    assert await _wake_at(store) == at(T0 + 5)


async def test_after_release_leaves_a_run_with_nothing_waiting(store: Store) -> None:
    await _owned(store)
    await _release(store, None)
    assert await _wake_at(store) is None


async def test_after_release_makes_a_run_with_a_newer_signal_due(store: Store) -> None:
    ids = await _owned(store, signals=2)
    await _release(store, ids[0])
    assert await _wake_at(store) == at(T0 + 5)


@pytest.mark.parametrize("seen", ["last", "none-sent"])
async def test_after_release_leaves_a_run_that_saw_every_signal(store: Store, seen: str) -> None:
    ids = await _owned(store, signals=2 if seen == "last" else 0)
    await _release(store, ids[-1] if ids else 0)
    assert await _wake_at(store) is None


async def test_after_release_without_a_watermark_ignores_signals(store: Store) -> None:
    await _owned(store, signals=1)
    await _release(store, None, status="sleeping", wake_at=T0 + 300)
    assert await _wake_at(store) == at(T0 + 300)


async def test_after_release_leaves_a_run_still_owned(store: Store) -> None:
    ids = await _owned(store, cancel=True, signals=1)
    await _release(store, ids[0] - 1, release=False)
    run = await store.get_run("r1")
    assert run is not None and (run.owner, run.wake_at) == ("w1", None)


async def test_after_release_leaves_a_run_that_ended(store: Store) -> None:
    ids = await _owned(store, cancel=True, signals=1)
    await _release(store, ids[0] - 1, status="completed")
    assert await _wake_at(store) is None


async def test_after_release_before_the_release_in_the_batch_wakes_nothing(
    store: Store,
) -> None:
    await _owned(store, cancel=True)
    await _release(store, None, first=True)
    assert await _wake_at(store) is None
