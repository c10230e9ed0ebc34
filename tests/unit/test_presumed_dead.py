"""A worker presumed dead that comes back: it re-registers, and writes nothing for lost runs.

Another worker is played by the test: it removes this worker's row (which releases its
runs), as ``_reap_dead_workers`` does for a heartbeat past the lease, and may claim the
runs. The heartbeat is made due by hand; no real or fake time passes for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import legato
from legato.engine.worker import Engine
from legato.model import EventKind, RunStatus
from legato.storage.base import NewRun, Write
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock
from tests.fixtures.engine import advance, kinds, settle_until


class RecordingStore(MemoryStore):
    """A memory store that notes the calls that decide who may work, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, Any]] = []
        self.writes: list[Write] = []

    async def heartbeat(self, worker_id: str, at: float) -> bool:
        alive = await super().heartbeat(worker_id, at)
        self.calls.append(("heartbeat", worker_id, alive))
        return alive

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        at: float,
        workflows: Sequence[str] = (),
        lease_s: float | None = None,
    ) -> None:
        await super().register_worker(worker_id, host, pid, at, workflows, lease_s)
        self.calls.append(("register_worker", worker_id, None))

    async def claim_runs(
        self, worker_id: str, now: float, limit: int, workflows: Sequence[str]
    ) -> list[legato.Run]:
        runs = await super().claim_runs(worker_id, now, limit, workflows)
        self.calls.append(("claim_runs", worker_id, [r.run_id for r in runs]))
        return runs

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        result = await super().write(ops)  # raises before recording if refused
        self.writes.extend(ops)
        return result


@pytest.fixture
async def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
async def app(store: RecordingStore, clock: FakeClock) -> AsyncIterator[legato.App]:
    app = legato.App("test", store, clock=clock)
    yield app
    if app.is_running:
        await app.__aexit__(None, None, None)


def engine_of(app: legato.App) -> Engine:
    engine = app._engine
    assert engine is not None
    return engine


async def heartbeat_now(engine: Engine, clock: FakeClock) -> None:
    """Let the engine's next upkeep pass heartbeat (it does every lease/3 of real time)."""
    engine._last_heartbeat = 0.0
    engine.poke()
    await clock.settle()
    await settle_until(lambda: engine._pass_done.is_set())


async def presume_dead(store: MemoryStore, engine: Engine, *, taken_by: str | None) -> None:
    """What another worker does to one whose heartbeat is past the lease."""
    await store.remove_workers([engine.worker_id])
    if taken_by is not None:
        # Heartbeats are real time (the lease is about processes), not the test's clock.
        await store.register_worker(taken_by, "elsewhere", 1, time.time())
        await store.claim_runs(taken_by, 4e9, 100, list(engine.registry.workflows))


def define(app: legato.App, gate: asyncio.Event, calls: list[str]) -> SimpleNamespace:
    @app.step(name="work")
    async def work(n: int) -> int:
        calls.append("work")
        await gate.wait()
        return n + 1

    @app.step(name="quick")
    async def quick(n: int) -> int:
        calls.append("quick")
        return n * 10

    @app.workflow(name="held")
    async def held(n: int) -> int:
        return await work(n)

    @app.workflow(name="napping")
    async def napping(n: int, seconds: float) -> int:
        await legato.sleep(timedelta(seconds=seconds))
        return await quick(n)

    return SimpleNamespace(held=held, napping=napping)


async def test_a_worker_whose_heartbeat_finds_no_row_registers_again_before_claiming(
    app: legato.App, store: RecordingStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker with a run parked in the database for an hour
    defs = define(app, asyncio.Event(), [])
    async with app:
        engine = engine_of(app)
        handle = await app.start(defs.napping, 4, 3600)
        await clock.settle()
        assert handle.run_id not in engine.live
        old_id = engine.worker_id
        # When another worker presumes it dead, and its heartbeat comes
        await presume_dead(store, engine, taken_by=None)
        store.calls.clear()
        with caplog.at_level(logging.WARNING, logger="legato.engine.worker"):
            await heartbeat_now(engine, clock)
            await heartbeat_now(engine, clock)  # the next heartbeat finds the new row
        # Then it learned, and registered under a new id before it claimed again
        new_id = engine.worker_id
        assert new_id != old_id
        beat = store.calls.index(("heartbeat", old_id, False))
        registered = store.calls.index(("register_worker", new_id, None))
        assert beat < registered
        for name, worker_id, claimed in store.calls:
            if name == "claim_runs":
                assert worker_id == new_id or claimed == [], store.calls
        assert ("heartbeat", new_id, True) in store.calls
        assert [w.worker_id for w in await store.list_workers()] == [new_id]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "presumed dead by another worker" in warnings[0].getMessage()
        assert "taken over" in warnings[0].getMessage()
        # And it goes on serving: the parked run wakes, is claimed under the new id, ends
        await advance(clock, timedelta(seconds=3600))
        assert await handle.result(timeout=5) == 40
        assert ("claim_runs", new_id, [handle.run_id]) in store.calls


async def test_runs_held_when_presumed_dead_are_stopped_without_writing_for_them(
    app: legato.App, store: RecordingStore, clock: FakeClock
) -> None:
    # Given a run in the middle of a step on this worker
    gate = asyncio.Event()
    calls: list[str] = []
    defs = define(app, gate, calls)
    async with app:
        engine = engine_of(app)
        handle = await app.start(defs.held, 1)
        await settle_until(lambda: calls == ["work"])
        await clock.settle()
        before = await store.history(handle.run_id)
        # When another worker presumes it dead and takes the run over
        await presume_dead(store, engine, taken_by="other")
        store.writes.clear()
        await heartbeat_now(engine, clock)
        gate.set()
        await clock.settle()
        # Then the step was abandoned here, and nothing was written for the run
        assert handle.run_id not in engine.live
        assert [op for op in store.writes if op.run_id == handle.run_id] == []
        run = await store.get_run(handle.run_id)
        assert run is not None and (run.status, run.owner) == (RunStatus.RUNNING, "other")
        assert await store.history(handle.run_id) == before
        # And when that other worker dies in turn, this one (registered again) finishes it
        await store.remove_workers(["other"])
        engine.poke()
        assert await handle.result(timeout=5) == 2
        assert calls == ["work", "work"]  # at least once: the first attempt was cut off
        history = await store.history(handle.run_id)
        assert kinds(history).count(EventKind.RUN_COMPLETED.value) == 1
        done = await store.get_run(handle.run_id)
        assert done is not None and done.owner is None


async def test_a_worker_that_has_not_noticed_yet_cannot_finish_a_run_taken_from_it(
    app: legato.App, store: RecordingStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a run sleeping in memory for a second (short timers stay hot)
    defs = define(app, asyncio.Event(), [])
    async with app:
        engine = engine_of(app)
        handle = await app.start(defs.napping, 5, 1)
        await clock.settle()
        assert handle.run_id in engine.live
        # When another worker takes the run over, and the timer fires here before this
        # worker's heartbeat tells it anything
        await presume_dead(store, engine, taken_by="other")
        with caplog.at_level(logging.ERROR, logger="legato.engine.worker"):
            await advance(clock, timedelta(seconds=1))
        # Then its run's end is refused: the run stays the other worker's, unfinished
        run = await store.get_run(handle.run_id)
        assert run is not None
        assert (run.status, run.owner) == (RunStatus.RUNNING, "other")
        assert EventKind.RUN_COMPLETED.value not in kinds(await store.history(handle.run_id))
        assert handle.run_id not in engine.live
        assert any("another worker took" in r.getMessage() for r in caplog.records)
        # And once it has registered again and the other worker is gone, it finishes it
        await heartbeat_now(engine, clock)
        await store.remove_workers(["other"])
        engine.poke()
        assert await handle.result(timeout=5) == 50
        assert kinds(await store.history(handle.run_id)).count(EventKind.RUN_COMPLETED.value) == 1


async def test_runs_left_under_an_id_no_worker_row_names_are_released_by_recovery(
    app: legato.App, store: RecordingStore, clock: FakeClock
) -> None:
    # Given a run that a worker presumed dead created under its old id, then died
    define(app, asyncio.Event(), [])
    await store.register_worker("ghost", "elsewhere", 1, 0.0)
    await store.remove_workers(["ghost"])
    await store.write(
        [NewRun("orphan", "napping", RunStatus.RUNNING.value, b"[6, 0]", 0.0, None, "ghost")]
    )
    # When a worker starts (its recovery pass runs first)
    async with app:
        # Then the run is released and finished, though no worker row named its owner
        assert await app.handle("orphan").result(timeout=5) == 60


@pytest.mark.parametrize(("silent_for", "released"), [(20.0, False), (70.0, True)])
async def test_a_silent_worker_is_presumed_dead_by_its_own_lease(
    store: RecordingStore, clock: FakeClock, silent_for: float, released: bool
) -> None:
    # Given a worker with a 60 s lease that owns a run and has been silent a while
    now = time.time()
    await store.register_worker("patient", "elsewhere", 1, now - silent_for, ["held"], 60.0)
    await store.write([NewRun("p-1", "held", "running", b"[1]", now, None, "patient")])

    # When a worker with a 15 s lease starts (and looks for dead workers)
    app = legato.App("test", store, clock=clock, lease=timedelta(seconds=15))
    define(app, asyncio.Event(), [])
    async with app:
        await clock.settle()
        workers = {w.worker_id for w in await store.list_workers()}
        run = await store.get_run("p-1")

    # Then the patient worker is presumed dead only past its own lease
    assert ("patient" not in workers) is released
    assert run is not None and (run.owner != "patient") is released
