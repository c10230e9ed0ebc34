"""``describe()``: for every status, what step, what failed, and what happens next."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import pytest

import legato
from legato.model import RunStatus
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, outcome, seconds, settle_until


def shop(calls: Counter[str], gate: asyncio.Event, *, ship_fails: int = 0, refund_fails: int = 0):
    """reserve (undo: release) -> charge (undo: refund) -> ship, which may fail."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve() -> str:
            calls["reserve"] += 1
            return "R"

        @reserve.compensate
        async def release(result: str) -> None:
            calls["release"] += 1

        @app.step(name="charge")
        async def charge() -> str:
            calls["charge"] += 1
            return "C"

        @charge.compensate(
            retry=legato.Retry(max_attempts=2, initial_interval=seconds(60), jitter=False)
        )
        async def refund(result: str) -> None:
            calls["refund"] += 1
            if calls["refund"] <= refund_fails:
                raise ConnectionError("bank down")

        @app.step(
            name="ship",
            retry=legato.Retry(max_attempts=2, initial_interval=seconds(30), jitter=False),
        )
        async def ship() -> str:
            calls["ship"] += 1
            await gate.wait()
            if calls["ship"] <= ship_fails:
                raise ValueError("no truck")
            return "S"

        @app.workflow(name="order")
        async def order() -> str:
            await reserve()
            await charge()
            return await ship()

        return SimpleNamespace(order=order)

    return define


async def _start(
    harness: Harness, calls: Counter[str], gate: asyncio.Event, **failures: int
) -> legato.RunHandle:
    defs = await harness.start(shop(calls, gate, **failures))
    return await harness.running.start(defs.order)


async def test_describe_completed_run(harness: Harness) -> None:
    gate = asyncio.Event()
    gate.set()
    handle = await _start(harness, Counter(), gate)
    await outcome(handle)
    d = await handle.describe()
    assert d.status is RunStatus.COMPLETED
    assert d.current_step is None
    assert d.completed_steps == ["reserve", "charge", "ship"]
    assert (d.compensations_done, d.compensations_pending) == ([], [])
    assert d.output == "S"
    assert "completed" in d.next and "nothing" in d.next


async def test_describe_run_in_a_step(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    handle = await _start(harness, calls, asyncio.Event())
    await settle_until(lambda: calls["ship"] == 1)
    await clock.settle()  # the step_started record is written in the background
    d = await handle.describe()
    assert d.status is RunStatus.RUNNING
    assert d.current_step == "ship"
    assert d.attempt == 1
    assert d.completed_steps == ["reserve", "charge"]
    assert d.compensations_pending == []
    assert "ship" in d.next


async def test_describe_run_waiting_to_retry(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    gate.set()
    handle = await _start(harness, calls, gate, ship_fails=1)
    await settle_until(lambda: calls["ship"] == 1)
    await clock.settle()
    d = await handle.describe()
    assert d.status is RunStatus.RUNNING
    assert d.current_step == "ship"
    assert d.attempt == 1
    assert d.last_error is not None
    assert (d.last_error["type"], d.last_error["message"]) == ("ValueError", "no truck")
    assert "retry" in d.next and "'ship'" in d.next and "attempt 2" in d.next
    assert (clock.now() + seconds(30)).isoformat(timespec="seconds") in d.next


async def test_describe_compensated_run(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    gate.set()
    handle = await _start(harness, calls, gate, ship_fails=2)
    await advance(clock, seconds(60))
    assert (await outcome(handle)).status == "compensated"
    d = await handle.describe()
    assert d.status is RunStatus.COMPENSATED
    assert d.current_step is None
    assert d.completed_steps == ["reserve", "charge"]
    assert sorted(d.compensations_done) == ["charge", "reserve"]
    assert d.compensations_pending == []
    assert d.last_error is not None and d.last_error["type"] == "ValueError"
    assert "compensated" in d.next and "no truck" in d.next


async def test_describe_run_retrying_a_compensation(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    gate.set()
    handle = await _start(harness, calls, gate, ship_fails=2, refund_fails=1)
    await advance(clock, seconds(30))
    await settle_until(lambda: calls["refund"] == 1)
    await clock.settle()
    d = await handle.describe()
    assert d.status is RunStatus.COMPENSATING
    assert d.current_step == "charge"
    assert d.compensations_done == []
    assert d.compensations_pending == ["charge", "reserve"]
    assert "retry" in d.next and "'charge'" in d.next and "'reserve'" in d.next


async def test_describe_compensation_failed_run(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    gate.set()
    handle = await _start(harness, calls, gate, ship_fails=2, refund_fails=2)
    await advance(clock, seconds(200))
    assert (await outcome(handle)).status == "compensation_failed"
    d = await handle.describe()
    assert d.status is RunStatus.COMPENSATION_FAILED
    assert d.current_step == "charge"
    assert d.compensations_done == []
    assert d.compensations_pending == ["charge", "reserve"]
    assert d.last_error is not None and d.last_error["message"] == "bank down"
    assert "operator" in d.next and "'charge'" in d.next and "reserve" in d.next


async def test_describe_failed_run(harness: Harness) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="check", retry=legato.Retry(max_attempts=1))
        async def check() -> None:
            raise PermissionError("not allowed")

        @app.workflow(name="wf")
        async def wf() -> None:
            await check()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await outcome(handle)
    d = await handle.describe()
    assert d.status is RunStatus.FAILED
    assert d.current_step is None
    assert (d.completed_steps, d.compensations_pending) == ([], [])
    assert d.last_error is not None and d.last_error["type"] == "PermissionError"
    assert "failed" in d.next and "not allowed" in d.next


async def test_describe_cancelled_run(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    handle = await _start(harness, calls, gate)
    await settle_until(lambda: calls["ship"] == 1)
    await harness.running.cancel(handle.run_id)
    gate.set()
    assert (await outcome(handle)).status == "cancelled"
    d = await handle.describe()
    assert d.status is RunStatus.CANCELLED
    assert d.current_step is None
    assert sorted(d.compensations_done) == ["charge", "reserve"]
    assert d.compensations_pending == []
    assert "cancelled" in d.next


async def test_describe_pending_run() -> None:
    store = MemoryStore()
    await store.register_workflows(["order"], 0.0)
    async with legato.AsyncClient(store) as client:
        handle = await client.start("order", run_id="o-1")
        d = await handle.describe()
    assert d.status is RunStatus.PENDING
    assert d.current_step is None
    assert d.completed_steps == []
    assert "worker" in d.next


async def test_describe_unknown_run_raises_run_not_found(harness: Harness) -> None:
    await harness.start(shop(Counter(), asyncio.Event()))
    with pytest.raises(legato.errors.RunNotFound):
        await harness.running.describe("nope")
