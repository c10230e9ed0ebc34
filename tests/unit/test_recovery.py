"""Stopping and restarting in the middle of the hard parts: compensation and timeouts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from types import SimpleNamespace

import legato
from legato.model import EventKind
from legato.storage.base import Append, UpdateRun, Write
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, kinds, of_kind, outcome, seconds, settle_until

HOURLY = legato.Retry(
    max_attempts=3, initial_interval=seconds(3600), max_interval=seconds(3600), jitter=False
)


def saga(calls: Counter[str], log: list[str]):
    """a, b, c (compensable) then d fails; b's compensation fails once, retrying hourly.
    Also a step ``flaky`` that always fails and retries hourly."""

    def define(app: legato.App) -> SimpleNamespace:
        def compensable(name: str, flaky_undo: bool = False) -> legato.App:
            @app.step(name=name)
            async def do() -> str:
                calls[name] += 1
                return name.upper()

            @do.compensate(retry=HOURLY)
            async def undo(result: str) -> None:
                calls[f"undo {name}"] += 1
                log.append(f"undo {name}")
                if flaky_undo and calls[f"undo {name}"] == 1:
                    raise ConnectionError("refund service down")

            return do

        a, b, c = compensable("a"), compensable("b", flaky_undo=True), compensable("c")

        @app.step(name="flaky", retry=HOURLY)
        async def flaky() -> None:
            calls["flaky"] += 1
            raise ConnectionError("down")

        @app.step(name="d", retry=legato.Retry(max_attempts=1))
        async def d() -> None:
            raise ValueError("out of stock")

        @app.workflow(name="wf")
        async def wf() -> None:
            await a()
            await b()
            await c()
            await d()

        return SimpleNamespace(wf=wf, a=a, flaky=flaky)

    return define


async def test_restart_during_compensation_does_not_redo_finished_compensations(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a failed run whose compensation of b waits an hour to retry (c already undone)
    calls: Counter[str] = Counter()
    log: list[str] = []
    defs = await harness.start(saga(calls, log))
    handle = await harness.running.start(defs.wf)
    await settle_until(lambda: calls["undo b"] == 1)
    await clock.settle()
    # When the process stops and another takes over
    await harness.restart(saga(calls, log))
    await clock.settle()
    assert log == ["undo c", "undo b"], "nothing may run before the recorded retry time"
    await advance(clock, seconds(3600))
    # Then b is retried, a is compensated, and nothing ran twice that was recorded
    failed = await outcome(harness.running.handle(handle.run_id))
    assert failed.status == "compensated"
    assert log == ["undo c", "undo b", "undo b", "undo a"]
    assert (calls["a"], calls["b"], calls["c"]) == (1, 1, 1)
    history = await harness.running.history(handle.run_id)
    b_records = [e for e in history if e.name == "b" and e.kind.value.startswith("compensation")]
    assert [
        (e.kind, e.attempt) for e in b_records if e.kind is not EventKind.COMPENSATION_STARTED
    ] == [
        (EventKind.COMPENSATION_FAILED, 1),
        (EventKind.COMPENSATION_COMPLETED, 2),
    ]
    assert len(of_kind(history, EventKind.RUN_FAILED)) == 1


async def test_workflow_timeout_survives_a_restart(harness: Harness, clock: FakeClock) -> None:
    log: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="hold")
        async def hold() -> str:
            log.append("hold")
            return "H"

        @hold.compensate
        async def unhold(result: str) -> None:
            log.append("unhold")

        @app.step(
            name="poll",
            retry=legato.Retry(
                max_attempts=50,
                initial_interval=seconds(60),
                max_interval=seconds(60),
                jitter=False,
            ),
        )
        async def poll() -> None:
            raise ConnectionError("not yet")

        @app.workflow(name="wf", timeout=seconds(300))
        async def wf() -> None:
            await hold()
            await poll()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(100))
    await harness.restart(define)
    await advance(clock, seconds(199))
    run = await harness.store.get_run(handle.run_id)
    assert run is not None and not run.status.is_terminal
    await advance(clock, seconds(1))
    failed = await outcome(harness.running.handle(handle.run_id))
    assert (failed.status, failed.error_type) == ("compensated", "legato.errors.WorkflowTimeout")
    assert log == ["hold", "unhold"]


async def test_workflow_timeout_cancels_a_step_in_flight(
    harness: Harness, clock: FakeClock
) -> None:
    seen: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="first")
        async def first() -> None:
            seen.append("first")

        @first.compensate
        async def undo_first(result: None) -> None:
            seen.append("undo first")

        @app.step(name="forever")
        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen.append("forever cancelled")
                raise

        @app.workflow(name="wf", timeout=seconds(30))
        async def wf() -> None:
            await first()
            await forever()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(30))
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("compensated", "legato.errors.WorkflowTimeout")
    assert seen == ["first", "forever cancelled", "undo first"]
    history = await harness.running.history(handle.run_id)
    assert [e.name for e in of_kind(history, EventKind.STEP_COMPLETED)] == ["first"]


async def test_workflow_output_that_json_cannot_hold_fails_the_run(harness: Harness) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="wf")
        async def wf() -> object:
            return {1, 2, 3}

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.PayloadError")
    assert "run_completed" not in kinds(await harness.running.history(handle.run_id))


async def test_failing_gather_branch_compensates_the_branch_that_completed(
    harness: Harness,
) -> None:
    log: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="hold")
        async def hold(x: int) -> int:
            log.append(f"hold {x}")
            return x

        @hold.compensate
        async def release(x: int, result: int) -> None:
            log.append(f"release {result}")

        @app.step(name="boom", retry=legato.Retry(max_attempts=1))
        async def boom() -> None:
            await asyncio.sleep(0)  # let the sibling branch finish first
            raise ValueError("boom")

        @app.workflow(name="wf")
        async def wf() -> None:
            await asyncio.gather(hold(1), boom())

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    failed = await outcome(await harness.running.start(defs.wf))
    assert (failed.status, failed.error_type, failed.step_name) == (
        "compensated",
        "ValueError",
        "boom",
    )
    assert log == ["hold 1", "release 1"]


class HoldingStore(MemoryStore):
    """Holds back the engine's batches written after a step's failed attempt until ``go``.

    The cancel's own write (the flag) goes through: it is the client's, not the engine's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        cancelling = any(isinstance(op, UpdateRun) and op.cancel_requested for op in ops)
        if self.armed and not self.go.is_set() and not cancelling:
            self.holding.set()
            await self.go.wait()
        result = await super().write(ops)
        if any(isinstance(op, Append) and op.kind == "step_failed" for op in ops):
            self.armed = True
        return result


async def test_cancel_while_the_engine_writes_after_a_failed_attempt_is_not_lost(
    clock: FakeClock,
) -> None:
    # Given a run whose step just failed, with the engine's next write still in flight
    store = HoldingStore()
    harness = Harness(store, clock)
    calls: Counter[str] = Counter()
    log: list[str] = []
    try:
        defs = await harness.start(saga(calls, log))
        app = harness.running

        @app.workflow(name="retrying")
        async def retrying() -> None:
            await defs.a()
            await defs.flaky()

        handle = await app.start(retrying)
        await settle_until(lambda: calls["flaky"] == 1)
        for _ in range(2000):  # not clock.settle(): it would wait for the held write
            if store.holding.is_set():
                break
            await asyncio.sleep(0)
        # When the run is cancelled at that moment
        await app.cancel(handle.run_id)
        store.go.set()
        # Then the cancellation is carried out: a is compensated and the run ends cancelled
        failed = await outcome(handle, limit=5)
        assert failed.status == "cancelled"
        assert log == ["undo a"]
    finally:
        store.go.set()
        await harness.stop()
