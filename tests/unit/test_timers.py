"""Durable timers: ``legato.sleep`` and ``legato.sleep_until`` on a fake clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta, timezone
from types import SimpleNamespace

import legato
from legato.model import EventKind, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome, seconds
from tests.fixtures.waiting import BEFORE_TODAY, DAY, SECOND, at, harness_at, is_live, row, status


def sleeper(calls: Counter[str], duration: timedelta = 3 * DAY):
    """``before`` (a step), sleep ``duration``, ``after`` (a step)."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="before")
        async def before() -> str:
            calls["before"] += 1
            return "B"

        @app.step(name="after")
        async def after() -> str:
            calls["after"] += 1
            return "A"

        @app.workflow(name="sleeper")
        async def flow() -> list[str]:
            first = await before()
            await legato.sleep(duration)
            return [first, await after()]

        return SimpleNamespace(flow=flow)

    return define


async def test_sleep_of_three_days_does_not_wake_a_second_early(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 3 * DAY - SECOND)
    assert await status(harness.store, handle.run_id) is RunStatus.SLEEPING
    assert calls["after"] == 0


async def test_sleep_of_three_days_wakes_after_exactly_three_days(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 3 * DAY - SECOND)
    await advance(clock, SECOND)
    assert await outcome(handle) == ["B", "A"]
    assert calls == Counter(before=1, after=1)


async def test_sleep_until_an_aware_datetime_wakes_at_that_time(
    harness: Harness, clock: FakeClock
) -> None:
    wake = at(clock, timedelta(hours=30))
    woke: list[float] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="mark")
        async def mark() -> None:
            woke.append(clock.time())

        @app.workflow(name="until")
        async def flow() -> None:
            await legato.sleep_until(wake)
            await mark()

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, timedelta(hours=30) - SECOND)
    assert woke == []
    await advance(clock, SECOND)
    assert await outcome(handle) is None
    assert woke == [wake.timestamp()]


async def test_sleeping_run_is_evicted_with_its_wake_time_in_its_row(
    harness: Harness, clock: FakeClock
) -> None:
    due = at(clock, 3 * DAY)
    defs = await harness.start(sleeper(Counter()))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    run = await row(harness.store, handle.run_id)
    assert (run.status, run.owner, run.wake_at) == (RunStatus.SLEEPING, None, due)
    assert not is_live(harness.running, handle.run_id)


async def test_describe_of_a_sleeping_run_says_until_when(
    harness: Harness, clock: FakeClock
) -> None:
    due = at(clock, 3 * DAY)
    defs = await harness.start(sleeper(Counter()))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    description = await handle.describe()
    assert description.status is RunStatus.SLEEPING
    assert due.isoformat() in description.next


async def test_evicted_sleeper_resumes_by_replay_without_rerunning_recorded_steps(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert not is_live(harness.running, handle.run_id)
    await advance(clock, 3 * DAY)
    assert await outcome(handle) == ["B", "A"]
    assert calls == Counter(before=1, after=1)
    history = await harness.running.history(handle.run_id)
    assert len(of_kind(history, EventKind.TIMER_STARTED)) == 1
    assert len(of_kind(history, EventKind.TIMER_FIRED)) == 1


async def test_sleeper_wakes_on_time_after_a_restart(harness: Harness, clock: FakeClock) -> None:
    # Given a run one day into a three-day sleep
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls))
    handle = await harness.running.start(defs.flow)
    await advance(clock, DAY)
    # When the process stops and a new one starts on the same store
    await harness.restart(sleeper(calls))
    await advance(clock, 2 * DAY - SECOND)
    # Then the run still sleeps until its original due time, and wakes then
    assert await status(harness.store, handle.run_id) is RunStatus.SLEEPING
    await advance(clock, SECOND)
    assert await outcome(harness.running.handle(handle.run_id)) == ["B", "A"]
    assert calls == Counter(before=1, after=1)


async def test_short_sleep_stays_hot_and_wakes_on_time(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls, duration=timedelta(milliseconds=500)))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert is_live(harness.running, handle.run_id), "a sub-2 s timer keeps the run in memory"
    await advance(clock, timedelta(milliseconds=499))
    assert calls["after"] == 0
    await advance(clock, timedelta(milliseconds=1))
    assert await outcome(handle) == ["B", "A"]


async def test_sleep_of_zero_returns_at_once(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls, duration=timedelta(0)))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert await outcome(handle) == ["B", "A"]


async def test_sleeps_in_sequence_add_up(harness: Harness, clock: FakeClock) -> None:
    stamps: list[float] = []
    start = clock.time()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="stamp")
        async def stamp() -> None:
            stamps.append(clock.time() - start)

        @app.workflow(name="twice")
        async def flow() -> None:
            await legato.sleep(seconds(1))
            await stamp()
            await legato.sleep(timedelta(hours=5))
            await stamp()

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, timedelta(hours=6))
    assert await outcome(handle) is None
    assert stamps == [1.0, 1.0 + 5 * 3600]


async def test_short_sleep_interrupted_by_a_restart_still_wakes_on_time(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls, duration=timedelta(milliseconds=1500)))
    handle = await harness.running.start(defs.flow)
    await advance(clock, timedelta(milliseconds=500))
    await harness.restart(sleeper(calls, duration=timedelta(milliseconds=1500)))
    await advance(clock, timedelta(milliseconds=999))
    assert calls["after"] == 0
    await advance(clock, timedelta(milliseconds=1))
    assert await outcome(harness.running.handle(handle.run_id)) == ["B", "A"]
    assert calls == Counter(before=1, after=1)


async def test_sleeper_due_while_no_worker_ran_wakes_when_a_worker_starts(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(sleeper(calls))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.stop()
    await clock.advance(4 * DAY)  # nobody watches the clock: no worker is running
    await harness.start(sleeper(calls))
    await clock.settle()
    assert await outcome(harness.running.handle(handle.run_id)) == ["B", "A"]
    assert calls == Counter(before=1, after=1)


async def test_twenty_sleepers_each_wake_at_their_own_hour(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="hours")
        async def flow(hours: int) -> int:
            await legato.sleep(timedelta(hours=hours))
            return hours

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handles = [await harness.running.start(defs.flow, h) for h in range(20, 0, -1)]
    for hour in range(1, 21):
        await advance(clock, timedelta(hours=1))
        done = await harness.store.list_runs(status="completed", limit=100)
        assert sorted(r.output for r in done) == list(range(1, hour + 1))
    assert [await outcome(h) for h in handles] == list(range(20, 0, -1))


async def test_sleep_until_a_datetime_in_another_time_zone_wakes_at_that_instant(
    harness: Harness, clock: FakeClock
) -> None:
    plus_five = timezone(timedelta(hours=5))
    wake = at(clock, timedelta(hours=7)).astimezone(plus_five)
    woke: list[float] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="mark")
        async def mark() -> None:
            woke.append(clock.time())

        @app.workflow(name="until_tz")
        async def flow() -> None:
            await legato.sleep_until(wake)
            await mark()

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, timedelta(hours=7) - SECOND)
    assert woke == []
    await advance(clock, SECOND)
    assert await outcome(handle) is None
    assert woke == [wake.timestamp()]


async def test_app_cancel_stops_a_sleeping_run_when_the_clock_is_set_before_today() -> None:
    async with harness_at(BEFORE_TODAY) as harness:
        defs = await harness.start(sleeper(Counter()))
        handle = await harness.running.start(defs.flow)
        await harness.clock.settle()
        await harness.running.cancel(handle.run_id)
        await advance(harness.clock, SECOND)
        assert await status(harness.store, handle.run_id) is RunStatus.CANCELLED
