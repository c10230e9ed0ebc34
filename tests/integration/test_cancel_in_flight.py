"""Cancelling a run interrupts its step in flight, then compensates the completed steps.

Real clock, a real database (a SQLite file; a PostgreSQL schema in the PostgreSQL pass): a
step that would await for an hour must not hold the cancel up. The interrupted step never
completed, so it is not compensated.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fixtures.db import fresh_database
from tests.fixtures.engine import poll_until

import legato


def shop(effects: list[str], sync_gate: threading.Event):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve(order: str) -> str:
            effects.append("reserve")
            return f"res-{order}"

        @reserve.compensate
        async def release(order: str, reservation: str) -> None:
            effects.append(f"release {reservation}")

        @app.step(name="slow_async")
        async def slow_async(order: str) -> None:
            effects.append("slow_async started")
            await asyncio.sleep(3600)
            effects.append("slow_async finished")  # never: it is interrupted

        @slow_async.compensate
        async def undo_slow_async(order: str) -> None:
            effects.append("undo slow_async")

        @app.step(name="slow_sync")
        def slow_sync(order: str) -> None:
            effects.append("slow_sync started")
            sync_gate.wait(3600)

        @slow_sync.compensate
        def undo_slow_sync(order: str) -> None:
            effects.append("undo slow_sync")

        @app.workflow(name="buy_async")
        async def buy_async(order: str) -> None:
            await reserve(order)
            await slow_async(order)

        @app.workflow(name="buy_sync")
        async def buy_sync(order: str) -> None:
            await reserve(order)
            await slow_sync(order)

        return SimpleNamespace(buy_async=buy_async, buy_sync=buy_sync)

    return define


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[SimpleNamespace]:
    effects: list[str] = []
    gate = threading.Event()
    database = fresh_database(tmp_path, "runs.db")
    app = legato.App("t", database)
    defs = shop(effects, gate)(app)
    try:
        async with app:
            yield SimpleNamespace(app=app, defs=defs, effects=effects, database=database)
    finally:
        gate.set()  # let an abandoned thread end


async def _wait_for(effects: list[str], entry: str) -> None:
    await poll_until(lambda: entry in effects, limit=10)


@pytest.mark.parametrize(
    ("workflow", "step"), [("buy_async", "slow_async"), ("buy_sync", "slow_sync")]
)
async def test_cancel_from_this_process_interrupts_the_step_in_flight(
    running: SimpleNamespace, workflow: str, step: str
) -> None:
    handle = await running.app.start(getattr(running.defs, workflow), "o-1")
    await _wait_for(running.effects, f"{step} started")

    await running.app.cancel(handle.run_id)
    with pytest.raises(legato.errors.RunFailed) as ended:  # not an hour: interrupted
        await handle.result(timeout=5)

    assert ended.value.status == "cancelled"
    assert running.effects == ["reserve", f"{step} started", "release res-o-1"]
    described = await handle.describe()
    steps = {s.name: s for s in described.steps}
    assert steps[step].status == "interrupted"
    assert steps[step].compensation is None
    assert steps["reserve"].compensation == "completed"


async def test_cancel_from_another_client_interrupts_at_the_owners_next_poll(
    running: SimpleNamespace,
) -> None:
    handle = await running.app.start(running.defs.buy_async, "o-2")
    await _wait_for(running.effects, "slow_async started")

    async with legato.AsyncClient(running.database) as other:  # its own connection
        await other.cancel(handle.run_id)
        with pytest.raises(legato.errors.RunFailed) as ended:
            await other.result(handle.run_id, timeout=5)

    assert ended.value.status == "cancelled"
    assert running.effects == ["reserve", "slow_async started", "release res-o-2"]
