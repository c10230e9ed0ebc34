"""Durable waits where they touch storage: on every backend, and on the test's own database
(a SQLite file; a PostgreSQL schema in the PostgreSQL pass).

Timers, signals, human tasks, child runs and parallel branches, each checked through
what the store holds (run rows, signals, tasks) and across restarts on the same store.
SQL stores work in threads, so checks of stored state poll with a bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.fixtures.db import BACKENDS, new_store
from tests.fixtures.engine import Harness, advance, of_kind, outcome, poll_until
from tests.fixtures.waiting import DAY, SECOND, at, claim_due, engine_of, is_live, row

import legato
from legato.errors import InvalidTaskResponse, RunFinished, RunNotFound, TaskClosed, WaitTimeout
from legato.model import EventKind, RunStatus, TaskStatus
from legato.storage import open_store
from legato.storage.postgres import PostgresStore
from legato.storage.sqlite import SqliteStore
from legato.testing import FakeClock

FORM = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(params=BACKENDS)
async def any_harness(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Restartable apps on a fake clock, on each backend."""
    h = Harness(new_store(request.param, tmp_path), clock)
    try:
        yield h
    finally:
        await h.stop()


async def stored_status(harness: Harness, run_id: str, expected: RunStatus) -> None:
    """Wait (bounded) until the stored run has ``expected`` status."""

    async def reached() -> bool:
        run = await harness.store.get_run(run_id)
        return run is not None and run.status is expected

    await poll_until(reached)


def waits(calls: Counter[str]):
    """Workflows for these tests; ``calls`` counts step executions."""

    def define(app: legato.App) -> SimpleNamespace:
        def counted(name: str) -> Any:
            @app.step(name=name)
            async def step() -> str:
                calls[name] += 1
                return name

            return step

        before, after, a, b = (counted(n) for n in ("before", "after", "a", "b"))

        @app.workflow(name="sleeper")
        async def sleeper() -> list[str]:
            first = await before()
            await legato.sleep(3 * DAY)
            return [first, await after()]

        @app.workflow(name="collector")
        async def collector(count: int) -> list[Any]:
            await legato.sleep(DAY)
            return [await legato.wait_for_signal("item") for _ in range(count)]

        @app.workflow(name="review")
        async def review(timeout_days: int | None) -> Any:
            timeout = None if timeout_days is None else timeout_days * DAY
            try:
                return await legato.human_task(
                    "review", {"n": 1}, assignee="bob", form=FORM, timeout=timeout
                )
            except WaitTimeout:
                return "escalated"

        @app.workflow(name="kid")
        async def kid(n: int) -> int:
            await legato.sleep(DAY)
            return n * 2

        @app.workflow(name="parent")
        async def parent(n: int) -> list[Any]:
            await before()
            return list(await asyncio.gather(a(), b(), legato.child(kid, n)))

        return SimpleNamespace(**locals())

    return define


async def test_sleeping_run_is_parked_in_its_row_and_wakes_on_time_after_a_restart(
    any_harness: Harness, clock: FakeClock
) -> None:
    # Given a run sleeping three days, parked in its row and not held in memory
    calls: Counter[str] = Counter()
    due = at(clock, 3 * DAY)
    defs = await any_harness.start(waits(calls))
    handle = await any_harness.running.start(defs.sleeper)
    await stored_status(any_harness, handle.run_id, RunStatus.SLEEPING)
    run = await row(any_harness.store, handle.run_id)
    assert (run.owner, run.wake_at) == (None, due)
    assert not is_live(any_harness.running, handle.run_id)
    # When the process restarts a day later
    await advance(clock, DAY)
    await any_harness.restart(waits(calls))
    await advance(clock, 2 * DAY - SECOND)
    # Then it sleeps until its due time, and wakes then without re-running "before"
    assert (await row(any_harness.store, handle.run_id)).status is RunStatus.SLEEPING
    await advance(clock, SECOND)
    assert await outcome(any_harness.running.handle(handle.run_id)) == ["before", "after"]
    assert calls == Counter(before=1, after=1)


async def test_signals_sent_before_the_wait_are_kept_and_consumed_in_order(
    any_harness: Harness, clock: FakeClock
) -> None:
    defs = await any_harness.start(waits(Counter()))
    handle = await any_harness.running.start(defs.collector, 2)
    await stored_status(any_harness, handle.run_id, RunStatus.SLEEPING)
    for payload in ("one", "two", "three"):
        await any_harness.running.signal(handle.run_id, "item", payload)
    stored = await any_harness.store.signals(handle.run_id)
    assert [(s.name, s.payload) for s in stored] == [
        ("item", "one"),
        ("item", "two"),
        ("item", "three"),
    ]
    await advance(clock, DAY)
    assert await outcome(handle) == ["one", "two"]
    received = of_kind(await any_harness.running.history(handle.run_id), EventKind.SIGNAL_RECEIVED)
    assert [e.data["signal_id"] for e in received] == [s.id for s in stored[:2]]


async def test_sync_client_on_another_connection_signals_an_evicted_run(
    database_harness: Harness, database_url: str
) -> None:
    # Given a run waiting for a signal in a database
    defs = await database_harness.start(waits(Counter()))
    handle = await database_harness.running.start(defs.collector, 1)
    await advance(database_harness.clock, DAY)
    await stored_status(database_harness, handle.run_id, RunStatus.WAITING)

    # When a script with its own connection signals it (blocking client, in a thread)
    def script() -> None:
        with legato.Client(database_url) as client:
            client.signal(handle.run_id, "item", {"from": "script"})

    await asyncio.to_thread(script)
    # Then the worker notices it in the database and the run completes
    await stored_status(database_harness, handle.run_id, RunStatus.COMPLETED)
    assert await outcome(handle) == [{"from": "script"}]


async def test_sync_client_on_another_connection_answers_a_task(
    database_harness: Harness, database_url: str
) -> None:
    defs = await database_harness.start(waits(Counter()))
    handle = await database_harness.running.start(defs.review, None)
    await stored_status(database_harness, handle.run_id, RunStatus.WAITING)

    def reviewer() -> tuple[list[str], str]:
        with legato.Client(database_url) as client:
            (task,) = client.list_tasks(assignee="bob")
            with pytest.raises(InvalidTaskResponse) as refused:
                client.complete_task(task.task_id, {"ok": 1})
            client.complete_task(task.task_id, {"ok": False})
            return [t.task_id for t in client.list_tasks(assignee="bob")], refused.value.reason

    still_open, reason = await asyncio.to_thread(reviewer)
    assert still_open == []
    assert "is not of type 'boolean'" in reason
    await stored_status(database_harness, handle.run_id, RunStatus.COMPLETED)
    assert await outcome(handle) == {"ok": False}


async def test_human_task_round_trip_through_the_store(
    any_harness: Harness, clock: FakeClock
) -> None:
    defs = await any_harness.start(waits(Counter()))
    handle = await any_harness.running.start(defs.review, None)
    await stored_status(any_harness, handle.run_id, RunStatus.WAITING)
    inbox = legato.AsyncClient(any_harness.store)
    (task,) = await inbox.list_tasks(assignee="bob")
    assert (task.run_id, task.data, task.form) == (handle.run_id, {"n": 1}, FORM)
    with pytest.raises(InvalidTaskResponse, match="is not of type 'boolean'"):
        await any_harness.running.complete_task(task.task_id, {"ok": "sure"})
    assert (await inbox.get_task(task.task_id)).status is TaskStatus.OPEN
    assert await any_harness.store.signals(handle.run_id) == []
    await any_harness.running.complete_task(task.task_id, {"ok": True})
    await claim_due(clock)
    assert await outcome(handle) == {"ok": True}
    with pytest.raises(TaskClosed, match="completed"):
        await any_harness.running.complete_task(task.task_id, {"ok": False})
    assert (await inbox.get_task(task.task_id)).response == {"ok": True}


async def test_human_task_expires_on_timeout_and_refuses_a_late_response(
    any_harness: Harness, clock: FakeClock
) -> None:
    defs = await any_harness.start(waits(Counter()))
    handle = await any_harness.running.start(defs.review, 2)
    await stored_status(any_harness, handle.run_id, RunStatus.WAITING)
    (task,) = await legato.AsyncClient(any_harness.store).list_tasks(run_id=handle.run_id)
    assert task.due_at == at(clock, 2 * DAY)
    await advance(clock, 2 * DAY)
    assert await outcome(handle) == "escalated"
    assert (await legato.AsyncClient(any_harness.store).get_task(task.task_id)).status is (
        TaskStatus.EXPIRED
    )
    with pytest.raises(TaskClosed, match="expired"):
        await any_harness.running.complete_task(task.task_id, {"ok": True})


async def test_cancelled_run_cancels_its_open_task(any_harness: Harness, clock: FakeClock) -> None:
    defs = await any_harness.start(waits(Counter()))
    handle = await any_harness.running.start(defs.review, None)
    await stored_status(any_harness, handle.run_id, RunStatus.WAITING)
    await any_harness.running.cancel(handle.run_id)
    await claim_due(clock)
    assert (await outcome(handle)).status == "cancelled"
    (task,) = await legato.AsyncClient(any_harness.store).list_tasks(status=None)
    assert task.status is TaskStatus.CANCELLED


async def test_parent_with_parallel_child_replays_after_a_restart_without_a_second_child(
    any_harness: Harness, clock: FakeClock
) -> None:
    # Given a parent whose branch steps are done while its child sleeps
    calls: Counter[str] = Counter()
    defs = await any_harness.start(waits(calls))
    handle = await any_harness.running.start(defs.parent, 21)
    child_id = f"{handle.run_id}/4.1"
    await stored_status(any_harness, child_id, RunStatus.SLEEPING)
    # When the process restarts
    await any_harness.restart(waits(calls))
    await advance(clock, DAY)
    await claim_due(clock)
    # Then the parent gets the child's result; nothing recorded ran twice
    assert await outcome(any_harness.running.handle(handle.run_id)) == ["a", "b", 42]
    assert calls == Counter(before=1, a=1, b=1)
    assert [r.run_id for r in await any_harness.store.list_runs(workflow="kid")] == [child_id]
    history = await any_harness.running.history(handle.run_id)
    assert [e.key for e in of_kind(history, EventKind.CHILD_STARTED)] == ["4.1"]


async def test_signals_to_unknown_or_finished_runs_are_refused_and_not_stored(
    any_harness: Harness, clock: FakeClock
) -> None:
    defs = await any_harness.start(waits(Counter()))
    with pytest.raises(RunNotFound):
        await any_harness.running.signal("nobody", "item", 1)
    assert await any_harness.store.signals("nobody") == []
    handle = await any_harness.running.start(defs.collector, 0)
    await advance(clock, DAY)
    assert await outcome(handle) == []
    with pytest.raises(RunFinished):
        await any_harness.running.signal(handle.run_id, "item", 1)
    assert await any_harness.store.signals(handle.run_id) == []


async def test_three_hundred_waiting_runs_are_evicted_then_all_complete(
    any_harness: Harness, clock: FakeClock
) -> None:
    defs = await any_harness.start(waits(Counter()))
    handles = await asyncio.gather(
        *(any_harness.running.start(defs.collector, 1) for _ in range(300))
    )
    await advance(clock, DAY)

    async def all_waiting() -> bool:
        waiting = await any_harness.store.list_runs(status="waiting", limit=1000)
        return len(waiting) == 300

    await poll_until(all_waiting)
    assert engine_of(any_harness.running).live == {}
    await asyncio.gather(
        *(any_harness.running.signal(h.run_id, "item", n) for n, h in enumerate(handles))
    )
    await claim_due(clock)
    assert [await outcome(h) for h in handles] == [[n] for n in range(300)]


async def test_timer_longer_than_the_hot_window_fires_within_a_second_on_the_real_clock(
    database_url: str,
) -> None:
    # Real time: a 2.2 s sleep outlasts the 2 s hot window, so the run is evicted to its
    # row and must be claimed again when due.
    woke: list[float] = []
    app = legato.App("test", open_store(database_url))

    @app.step(name="mark")
    async def mark() -> None:
        woke.append(time.time())

    @app.workflow(name="nap")
    async def nap() -> None:
        await legato.sleep(timedelta(seconds=2.2))
        await mark()

    async with app:
        handle = await app.start(nap)
        started = time.time()
        await poll_until(lambda: not is_live(app, handle.run_id), limit=2.0)
        assert await outcome(handle, limit=10.0) is None
    late = woke[0] - (started + 2.2)
    assert -0.05 < late < 1.0


def outside_client(harness: Harness) -> legato.AsyncClient:
    """A client as another process would have: on SQL, its own connections."""
    store = harness.store
    if isinstance(store, SqliteStore):
        return legato.AsyncClient(SqliteStore(store.path))
    if isinstance(store, PostgresStore):
        return legato.AsyncClient(PostgresStore(store.conninfo, schema=store.schema))
    return legato.AsyncClient(store)


async def test_signals_from_outside_the_engine_at_any_moment_are_never_lost(
    any_harness: Harness, clock: FakeClock
) -> None:
    # The store, not the engine, learns of these signals: a run that is reading its
    # signals, parking or already parked when one lands must still wake for it.
    defs = await any_harness.start(waits(Counter()))
    handles = []
    async with outside_client(any_harness) as client:
        for turns in range(30):
            handle = await any_harness.running.start(defs.collector, 1)
            await clock.advance(DAY)
            for _ in range(turns):
                await asyncio.sleep(0)
            await client.signal(handle.run_id, "item", turns)
            handles.append(handle)

    async def all_completed() -> bool:
        done = await any_harness.store.list_runs(status="completed", limit=100)
        return len(done) == 30

    await poll_until(all_completed)
    assert [await outcome(h) for h in handles] == [[n] for n in range(30)]


async def test_signal_resumes_an_evicted_run_within_a_second_on_the_real_clock(
    database_url: str,
) -> None:
    resumed: list[float] = []
    app = legato.App("test", open_store(database_url))

    @app.step(name="mark")
    async def mark() -> None:
        resumed.append(time.monotonic())

    @app.workflow(name="hold")
    async def hold() -> Any:
        payload = await legato.wait_for_signal("go")
        await mark()
        return payload

    async with app:
        handle = await app.start(hold)
        await poll_until(lambda: not is_live(app, handle.run_id), limit=5.0)
        sent = time.monotonic()
        await app.signal(handle.run_id, "go", "now")
        assert await outcome(handle, limit=10.0) == "now"
    assert resumed[0] - sent < 1.0
