"""Parallel branches: ``asyncio.gather`` of steps, waits and children inside a workflow."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import legato
from legato.model import EventKind, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome
from tests.fixtures.waiting import DAY, claim_due, is_live, status

HOUR = timedelta(hours=1)


def fan_out(calls: Counter[str]):
    """``first``, then gather(a, b then b2, child sleeping a day), then ``last``."""

    def define(app: legato.App) -> SimpleNamespace:
        def counted(name: str) -> Any:
            @app.step(name=name)
            async def step() -> str:
                calls[name] += 1
                return name.upper()

            return step

        first, a, b, b2, last = (counted(n) for n in ("first", "a", "b", "b2", "last"))

        @app.workflow(name="kid")
        async def kid() -> str:
            await legato.sleep(DAY)
            return "KID"

        async def b_then_b2() -> list[str]:
            return [await b(), await b2()]

        @app.workflow(name="fan_out")
        async def flow() -> list[Any]:
            await first()
            both = await asyncio.gather(a(), b_then_b2(), legato.child(kid))
            return [*both, await last()]

        return SimpleNamespace(flow=flow)

    return define


async def test_gather_branches_get_keys_under_the_call_that_spawned_them(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(fan_out(Counter()))
    handle = await harness.running.start(defs.flow)
    await advance(clock, DAY)
    await claim_due(clock)
    assert await outcome(handle) == ["A", ["B", "B2"], "KID", "LAST"]
    history = await harness.running.history(handle.run_id)
    steps = {e.key: e.name for e in of_kind(history, EventKind.STEP_COMPLETED)}
    assert steps == {"1": "first", "2.1": "a", "3.1": "b", "3.2": "b2", "5": "last"}
    assert [e.key for e in of_kind(history, EventKind.CHILD_STARTED)] == ["4.1"]


async def test_gather_replays_deterministically_after_a_restart_mid_way(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a run whose step branches are done while its child branch sleeps
    calls: Counter[str] = Counter()
    defs = await harness.start(fan_out(calls))
    handle = await harness.running.start(defs.flow)
    await advance(clock, HOUR)
    assert calls == Counter(first=1, a=1, b=1, b2=1)
    # When the process restarts and the child wakes
    await harness.restart(fan_out(calls))
    await advance(clock, DAY)
    await claim_due(clock)
    # Then replay takes every recorded branch call from history and nothing re-runs
    assert await outcome(harness.running.handle(handle.run_id)) == [
        "A",
        ["B", "B2"],
        "KID",
        "LAST",
    ]
    assert calls == Counter(first=1, a=1, b=1, b2=1, last=1)
    assert len(await harness.store.list_runs(workflow="kid")) == 1


def staggered(log: list[str], *, end_together: bool = True):
    """Branches complete their steps in the order b, c, a; then ``boom`` fails.

    Each branch sleeps before its step (b not at all, c an hour, a two hours). With
    ``end_together`` each then sleeps until the third hour, so all three end together;
    otherwise a branch ends as soon as its step does, while the others still sleep.
    """

    def define(app: legato.App) -> SimpleNamespace:
        def compensable(name: str) -> Any:
            @app.step(name=name)
            async def do() -> str:
                log.append(name)
                return name

            @do.compensate
            async def undo(result: str) -> None:
                log.append(f"undo {name}")

            return do

        first, a, b, c = (compensable(n) for n in ("first", "a", "b", "c"))

        @app.step(name="boom", retry=legato.Retry(max_attempts=1))
        async def boom() -> None:
            raise RuntimeError("after the gather")

        async def at_hour(hour: int, step: Any) -> str:
            if hour:
                await legato.sleep(hour * HOUR)
            done = str(await step())
            if end_together:
                await legato.sleep((3 - hour) * HOUR)
            return done

        @app.workflow(name="staggered")
        async def flow() -> None:
            await first()
            await asyncio.gather(at_hour(2, a), at_hour(0, b), at_hour(1, c))
            await boom()

        return SimpleNamespace(flow=flow)

    return define


async def test_failure_after_gather_compensates_every_branch_in_reverse_completion_order(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(staggered(log))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 3 * HOUR)
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("compensated", "RuntimeError")
    assert log == ["first", "b", "c", "a", "undo a", "undo c", "undo b", "undo first"]


async def test_branches_ending_at_different_times_compensate_in_reverse_completion_order(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(staggered(log, end_together=False))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 2 * HOUR)
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("compensated", "RuntimeError")
    assert log == ["first", "b", "c", "a", "undo a", "undo c", "undo b", "undo first"]


async def test_compensation_order_after_a_gather_survives_a_restart(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(staggered(log))
    handle = await harness.running.start(defs.flow)
    await advance(clock, HOUR + timedelta(minutes=30))
    assert log == ["first", "b", "c"]
    await harness.restart(staggered(log))
    await advance(clock, 2 * HOUR)
    failed = await outcome(harness.running.handle(handle.run_id))
    assert failed.status == "compensated"
    assert log == ["first", "b", "c", "a", "undo a", "undo c", "undo b", "undo first"]


async def test_branches_waiting_for_different_signals_each_get_their_own(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="pair")
        async def flow() -> list[Any]:
            return list(
                await asyncio.gather(
                    legato.wait_for_signal("left"), legato.wait_for_signal("right")
                )
            )

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "right", "R")
    await claim_due(clock)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await harness.running.signal(handle.run_id, "left", "L")
    await claim_due(clock)
    assert await outcome(handle) == ["L", "R"]


async def test_branch_sleeping_while_another_waits_for_a_signal_wakes_on_time(
    harness: Harness, clock: FakeClock
) -> None:
    woke: list[float] = []
    start = clock.time()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="mark")
        async def mark() -> None:
            woke.append(clock.time() - start)

        async def nap() -> None:
            await legato.sleep(DAY)
            await mark()

        @app.workflow(name="mixed")
        async def flow() -> Any:
            _, got = await asyncio.gather(nap(), legato.wait_for_signal("go"))
            return got

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, DAY)
    assert woke == [DAY.total_seconds()]
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await harness.running.signal(handle.run_id, "go", "ok")
    await claim_due(clock)
    assert await outcome(handle) == "ok"


async def test_run_is_evicted_once_a_branch_step_ends_while_another_branch_sleeps(
    harness: Harness, clock: FakeClock
) -> None:
    # Given one branch sleeping a day and another in a step that outlasts the first check
    gate = asyncio.Event()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="slow")
        async def slow() -> str:
            await gate.wait()
            return "S"

        @app.workflow(name="nap_and_step")
        async def flow() -> list[Any]:
            return list(await asyncio.gather(legato.sleep(DAY), slow()))

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert is_live(harness.running, handle.run_id), "a step in flight keeps the run here"
    # When the step ends, leaving only the day-long sleep
    gate.set()
    await clock.settle(limit=1.0)
    # Then the run has nothing to do but wait, so it is evicted
    assert not is_live(harness.running, handle.run_id)
    assert await status(harness.store, handle.run_id) is RunStatus.SLEEPING


async def test_branches_waiting_for_the_same_signal_name_each_consume_a_different_one(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="twins")
        async def flow() -> list[Any]:
            return list(
                await asyncio.gather(legato.wait_for_signal("item"), legato.wait_for_signal("item"))
            )

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "item", "p1")
    await claim_due(clock)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await harness.running.signal(handle.run_id, "item", "p2")
    await claim_due(clock)
    assert sorted(await outcome(handle)) == ["p1", "p2"]
