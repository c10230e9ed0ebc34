"""Signals: ``legato.wait_for_signal`` and ``app.signal`` / ``AsyncClient.signal``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import legato
from legato.errors import WaitTimeout
from legato.model import EventKind, RunStatus
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome
from tests.fixtures.waiting import (
    BEFORE_TODAY,
    DAY,
    SECOND,
    claim_due,
    engine_of,
    harness_at,
    is_live,
    row,
    status,
)


def waiter(names: list[str], *, sleep_first: timedelta | None = None):
    """Wait for signals ``names`` in order (after an optional sleep); return the payloads."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="waiter")
        async def flow() -> list[Any]:
            if sleep_first is not None:
                await legato.sleep(sleep_first)
            return [await legato.wait_for_signal(name) for name in names]

        return SimpleNamespace(flow=flow)

    return define


def escalation(log: list[str]):
    """Sleep three days, wait two days for "approve", else escalate (the issue's example)."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="remind")
        async def remind() -> None:
            log.append("remind")

        @app.step(name="escalate")
        async def escalate() -> str:
            log.append("escalate")
            return "escalated"

        @app.workflow(name="escalation")
        async def flow() -> str:
            await legato.sleep(3 * DAY)
            await remind()
            try:
                approval = await legato.wait_for_signal("approve", timeout=2 * DAY)
            except WaitTimeout:
                return await escalate()
            return f"approved by {approval['by']}"

        return SimpleNamespace(flow=flow)

    return define


async def test_signal_sent_before_the_run_waits_is_delivered(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["go"], sleep_first=DAY))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "go", {"n": 1})
    await advance(clock, DAY)
    assert await outcome(handle) == [{"n": 1}]


async def test_signals_of_one_name_are_consumed_once_each_in_send_order(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["item", "item"], sleep_first=DAY))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    for payload in ("first", "second", "third"):
        await harness.running.signal(handle.run_id, "item", payload)
    await advance(clock, DAY)
    assert await outcome(handle) == ["first", "second"]
    history = await harness.running.history(handle.run_id)
    received = of_kind(history, EventKind.SIGNAL_RECEIVED)
    assert len({event.data["signal_id"] for event in received}) == 2


async def test_signal_of_another_name_does_not_satisfy_the_wait(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["approve"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "reject", "no")
    await advance(clock, DAY)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await harness.running.signal(handle.run_id, "approve", "yes")
    await claim_due(clock)
    assert await outcome(handle) == ["yes"]


async def test_signal_wakes_a_run_evicted_while_waiting(harness: Harness, clock: FakeClock) -> None:
    defs = await harness.start(waiter(["go"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert not is_live(harness.running, handle.run_id)
    await harness.running.signal(handle.run_id, "go", 42)
    await claim_due(clock)
    assert await outcome(handle) == [42]


async def test_app_signal_resumes_an_evicted_run_without_waiting_for_a_poll(
    harness: Harness, clock: FakeClock
) -> None:
    # The engine in this process sent the signal: it knows the run is due now.
    defs = await harness.start(waiter(["go"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "go", 42)
    await clock.settle()
    assert await status(harness.store, handle.run_id) is RunStatus.COMPLETED


async def test_waiting_run_is_stored_as_waiting_with_no_owner_and_no_wake_time(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["go"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    run = await row(harness.store, handle.run_id)
    assert (run.status, run.owner, run.wake_at) == (RunStatus.WAITING, None, None)
    description = await handle.describe()
    assert description.status is RunStatus.WAITING
    assert "signal 'go'" in description.next


async def test_wait_times_out_after_its_timeout_and_not_before(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(escalation(log))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 5 * DAY - SECOND)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    assert log == ["remind"]
    await advance(clock, SECOND)
    assert await outcome(handle) == "escalated"
    assert log == ["remind", "escalate"]


async def test_signal_within_the_timeout_takes_the_normal_path(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(escalation(log))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 4 * DAY)
    await harness.running.signal(handle.run_id, "approve", {"by": "ann"})
    await claim_due(clock)
    assert await outcome(handle) == "approved by ann"
    await advance(clock, 2 * DAY)
    assert log == ["remind"]


async def test_three_day_sleep_and_two_day_timeout_take_milliseconds_of_wall_time(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(escalation(log))
    started = time.perf_counter()
    handle = await harness.running.start(defs.flow)
    await clock.advance(5 * DAY)
    assert await outcome(handle) == "escalated"
    # Generous: it takes milliseconds; the bound only catches real waiting.
    assert time.perf_counter() - started < 1.0


async def test_recorded_timeout_replays_as_a_timeout_after_a_restart(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a run that timed out waiting and now sleeps on its escalation path
    calls: Counter[str] = Counter()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="path")
        async def path(which: str) -> str:
            calls[which] += 1
            return which

        @app.workflow(name="late")
        async def flow() -> str:
            try:
                await legato.wait_for_signal("go", timeout=DAY)
                taken = await path("normal")
            except WaitTimeout:
                taken = await path("escalated")
            await legato.sleep(DAY)
            return taken

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, DAY)
    # When the process restarts, and a late signal arrives meanwhile
    await harness.restart(define)
    await harness.running.signal(handle.run_id, "go", "late")
    await advance(clock, DAY)
    # Then replay takes the recorded timeout again: the escalated path, run once
    assert await outcome(harness.running.handle(handle.run_id)) == "escalated"
    assert calls == Counter(escalated=1)


async def test_async_client_signal_from_outside_wakes_an_evicted_run(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["go"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    client = legato.AsyncClient(harness.store)
    # The client has no engine: the worker finds the signal by looking at the store.
    await client.signal(handle.run_id, "go", {"from": "outside"})
    await claim_due(clock)
    assert await outcome(handle) == [{"from": "outside"}]


async def test_signal_sent_while_no_worker_runs_is_delivered_after_start(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter(["go"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.stop()
    await legato.AsyncClient(harness.store).signal(handle.run_id, "go", "meanwhile")
    await harness.start(waiter(["go"]))
    await clock.settle()
    assert await outcome(harness.running.handle(handle.run_id)) == ["meanwhile"]


async def test_signal_without_payload_delivers_none(harness: Harness, clock: FakeClock) -> None:
    defs = await harness.start(waiter(["ping"]))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    await harness.running.signal(handle.run_id, "ping")
    await claim_due(clock)
    assert await outcome(handle) == [None]


async def test_two_thousand_waiting_runs_are_evicted_and_all_complete_when_signalled(
    harness: Harness, clock: FakeClock
) -> None:
    # Given 2,000 runs waiting for a signal
    defs = await harness.start(waiter(["go"]))
    handles = await asyncio.gather(*(harness.running.start(defs.flow) for _ in range(2000)))
    await clock.settle()
    # Then none is held in memory, and every one is stored as waiting
    assert engine_of(harness.running).live == {}
    waiting = await harness.store.list_runs(status="waiting", limit=5000)
    assert len(waiting) == 2000
    # When each is signalled, every one completes with its own payload
    await asyncio.gather(
        *(harness.running.signal(h.run_id, "go", n) for n, h in enumerate(handles))
    )
    await claim_due(clock)
    assert [await outcome(h) for h in handles] == [[n] for n in range(2000)]
    assert engine_of(harness.running).live == {}


async def test_wait_timeout_keeps_its_deadline_across_a_restart(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a run one day into its two-day wait for "approve"
    log: list[str] = []
    defs = await harness.start(escalation(log))
    handle = await harness.running.start(defs.flow)
    await advance(clock, 4 * DAY)
    # When the process restarts
    await harness.restart(escalation(log))
    # Then the wait still times out at its original deadline, not two days from now
    await advance(clock, DAY - SECOND)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await advance(clock, SECOND)
    assert await outcome(harness.running.handle(handle.run_id)) == "escalated"
    assert log == ["remind", "escalate"]


async def test_signal_to_a_run_no_worker_has_picked_up_yet_is_kept_for_it(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a run started by a client while no worker runs (status pending)
    await harness.start(waiter(["go"]))
    await harness.stop()
    client = legato.AsyncClient(harness.store)
    handle = await client.start("waiter")
    assert await status(harness.store, handle.run_id) is RunStatus.PENDING
    # When it is signalled before any worker has run it
    await client.signal(handle.run_id, "go", "early")
    # Then the worker that picks it up delivers the signal to its first wait
    await harness.start(waiter(["go"]))
    await clock.settle()
    assert await outcome(harness.running.handle(handle.run_id)) == ["early"]


async def test_run_waiting_for_a_signal_still_times_out_at_its_workflow_deadline(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="bounded", timeout=DAY)
        async def flow() -> Any:
            return await legato.wait_for_signal("never")

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await advance(clock, DAY - SECOND)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await advance(clock, SECOND)
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.WorkflowTimeout")


async def test_signal_from_outside_at_any_moment_around_parking_is_never_lost(
    harness: Harness, clock: FakeClock
) -> None:
    # A client's signal does not tell the engine; the store must wake the run whether
    # the signal lands before it reads its signals, while it parks, or after it left.
    defs = await harness.start(waiter(["go"]))
    client = legato.AsyncClient(harness.store)
    handles = []
    for turns in range(40):
        handle = await harness.running.start(defs.flow)
        for _ in range(turns):
            await asyncio.sleep(0)
        await client.signal(handle.run_id, "go", turns)
        handles.append(handle)
    await clock.settle()
    await claim_due(clock)
    await claim_due(clock)
    statuses = [await status(harness.store, h.run_id) for h in handles]
    assert statuses == [RunStatus.COMPLETED] * 40
    assert [await outcome(h) for h in handles] == [[n] for n in range(40)]


@settings(max_examples=25, deadline=None)
@given(
    sends=st.lists(st.sampled_from(["a", "b"]), max_size=6),
    waits=st.lists(st.sampled_from(["a", "b"]), max_size=6),
)
def test_each_wait_gets_the_oldest_unconsumed_signal_of_its_name(
    sends: list[str], waits: list[str]
) -> None:
    # Model: per name, a queue in send order; a wait pops its name's queue or times out.
    queues: dict[str, list[int]] = {"a": [], "b": []}
    for n, name in enumerate(sends):
        queues[name].append(n)
    expected = [queues[name].pop(0) if queues[name] else "timeout" for name in waits]

    async def scenario() -> Any:
        clock = FakeClock()
        app = legato.App("test", MemoryStore(), clock=clock)

        @app.workflow(name="drain")
        async def drain() -> list[Any]:
            await legato.sleep(DAY)
            got: list[Any] = []
            for name in waits:
                try:
                    got.append(await legato.wait_for_signal(name, timeout=SECOND))
                except WaitTimeout:
                    got.append("timeout")
            return got

        async with app:
            handle = await app.start(drain)
            await clock.settle()
            for n, name in enumerate(sends):
                await app.signal(handle.run_id, name, n)
            await advance(clock, DAY + SECOND * (len(waits) + 1))
            return await outcome(handle)

    assert asyncio.run(scenario()) == expected


async def test_app_signal_wakes_an_evicted_run_when_the_clock_is_set_before_today() -> None:
    # The engine's clock says 2020: "due now" must mean the engine's now, not the wall's.
    async with harness_at(BEFORE_TODAY) as harness:
        defs = await harness.start(waiter(["go"]))
        handle = await harness.running.start(defs.flow)
        await harness.clock.settle()
        await harness.running.signal(handle.run_id, "go", "hi")
        await advance(harness.clock, SECOND)
        assert await status(harness.store, handle.run_id) is RunStatus.COMPLETED
