"""Sagas: compensation order, arguments, retries, giving up, catching, cancelling."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from types import SimpleNamespace

import pytest

import legato
from legato.model import EventKind, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, kinds, of_kind, outcome, seconds, settle_until

NO_RETRY = legato.Retry(max_attempts=1)
QUICK = legato.Retry(max_attempts=3, initial_interval=seconds(1), jitter=False)


def saga(
    log: list[tuple[object, ...]],
    *,
    undo_b_fails: int = 0,
    undo_retry=QUICK,
    last_step_fails: bool = True,
):
    """Steps a, b, c with compensations, then d which fails for good."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="a")
        async def a(x: int) -> str:
            log.append(("do", "a", x))
            return f"A{x}"

        @a.compensate
        async def undo_a(x: int, result: str) -> None:
            log.append(("undo", "a", x, result))

        @app.step(name="b")
        async def b(x: int, y: str) -> dict[str, object]:
            log.append(("do", "b", x, y))
            return {"b": x}

        @b.compensate(retry=undo_retry)
        async def undo_b(x: int, y: str, result: dict[str, object]) -> None:
            log.append(("undo", "b", x, y, result))
            if sum(1 for e in log if e[:2] == ("undo", "b")) <= undo_b_fails:
                raise ConnectionError("refund service down")

        @app.step(name="c")
        async def c() -> list[int]:
            log.append(("do", "c"))
            return [3]

        @c.compensate
        async def undo_c(result: list[int]) -> None:
            log.append(("undo", "c", result))

        @app.step(name="d", retry=NO_RETRY)
        async def d() -> None:
            log.append(("do", "d"))
            if last_step_fails:
                raise ValueError("out of stock")

        @app.workflow(name="wf")
        async def wf(x: int) -> str:
            await a(x)
            await b(x, "why")
            await c()
            await d()
            return "done"

        return SimpleNamespace(wf=wf, a=a, d=d)

    return define


def undone(log: list[tuple[object, ...]]) -> list[object]:
    return [entry[1] for entry in log if entry[0] == "undo"]


async def test_failed_run_compensates_in_reverse_completion_order(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log))
    failed = await outcome(await harness.running.start(defs.wf, 5))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "compensated"
    assert failed.error_type == "ValueError" and failed.step_name == "d"
    assert undone(log) == ["c", "b", "a"]


async def test_compensation_gets_the_step_arguments_then_its_result(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log))
    await outcome(await harness.running.start(defs.wf, 5))
    assert [e for e in log if e[0] == "undo"] == [
        ("undo", "c", [3]),
        ("undo", "b", 5, "why", {"b": 5}),
        ("undo", "a", 5, "A5"),
    ]


async def test_sync_step_and_sync_compensation_run_in_threads(harness: Harness) -> None:
    seen: list[tuple[str, object, bool]] = []
    loop_thread = threading.get_ident()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="book")
        def book(room: int) -> str:
            seen.append(("book", room, threading.get_ident() == loop_thread))
            return f"booking-{room}"

        @book.compensate
        def cancel_booking(room: int, booking: str) -> None:
            seen.append(("cancel", (room, booking), threading.get_ident() == loop_thread))

        @app.step(name="fail", retry=NO_RETRY)
        def fail() -> None:
            raise RuntimeError("no")

        @app.workflow(name="wf")
        async def wf() -> None:
            await book(12)
            await fail()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    assert (await outcome(await harness.running.start(defs.wf))).status == "compensated"
    assert seen == [("book", 12, False), ("cancel", (12, "booking-12"), False)]


async def test_compensations_are_recorded_in_history(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log))
    handle = await harness.running.start(defs.wf, 5)
    await outcome(handle)
    history = await harness.running.history(handle.run_id)
    done = of_kind(history, EventKind.COMPENSATION_COMPLETED)
    assert [e.name for e in done] == ["c", "b", "a"]
    assert kinds(history)[-1] == "run_compensated"
    failed = of_kind(history, EventKind.RUN_FAILED)
    assert len(failed) == 1 and failed[0].pos < done[0].pos


async def test_compensation_that_fails_twice_then_succeeds_ends_compensated(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log, undo_b_fails=2))
    handle = await harness.running.start(defs.wf, 1)
    await advance(clock, seconds(10))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "compensated"
    assert undone(log) == ["c", "b", "b", "b", "a"]
    history = await harness.running.history(handle.run_id)
    b_failures = [e for e in of_kind(history, EventKind.COMPENSATION_FAILED) if e.name == "b"]
    assert [e.attempt for e in b_failures] == [1, 2]
    assert all("retry_at" in e.data for e in b_failures)


async def test_compensation_retries_wait_for_their_backoff(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log, undo_b_fails=1))
    handle = await harness.running.start(defs.wf, 1)
    await settle_until(lambda: undone(log) == ["c", "b"])
    await advance(clock, seconds(0.999))
    assert undone(log) == ["c", "b"]
    run = await harness.store.get_run(handle.run_id)
    assert run is not None and run.status is RunStatus.COMPENSATING
    await advance(clock, seconds(0.001))
    assert (await outcome(handle)).status == "compensated"
    assert undone(log) == ["c", "b", "b", "a"]


async def test_compensation_that_gives_up_leaves_compensation_failed(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log, undo_b_fails=99))
    handle = await harness.running.start(defs.wf, 1)
    await advance(clock, seconds(10))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "compensation_failed"
    assert failed.error_type == "ConnectionError"
    assert failed.step_name == "b"
    # b gave up after its 3 attempts; a was not compensated (an operator decides).
    assert undone(log) == ["c", "b", "b", "b"]
    described = await handle.describe()
    assert described.status is RunStatus.COMPENSATION_FAILED
    assert described.compensations_done == ["c"]
    assert described.compensations_pending == ["b", "a"]


async def test_compensation_failed_is_terminal(harness: Harness, clock: FakeClock) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log, undo_b_fails=99, undo_retry=NO_RETRY))
    handle = await harness.running.start(defs.wf, 1)
    assert (await outcome(handle)).status == "compensation_failed"
    history = await harness.running.history(handle.run_id)
    await harness.restart(saga(log, undo_b_fails=99, undo_retry=NO_RETRY))
    await advance(clock, seconds(3600))
    assert await harness.running.history(handle.run_id) == history
    assert undone(log) == ["c", "b"]


def nothing_to_undo(app: legato.App) -> SimpleNamespace:
    @app.step(name="log")
    async def log_it() -> None:
        pass

    @app.step(name="boom", retry=legato.Retry(max_attempts=2, initial_interval=seconds(1)))
    async def boom() -> None:
        raise ValueError("nope")

    @app.workflow(name="wf")
    async def wf() -> None:
        await log_it()
        await boom()

    return SimpleNamespace(wf=wf)


async def test_run_without_compensable_steps_ends_failed(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(nothing_to_undo)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(5))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.status, failed.error_type, failed.error_message) == (
        "failed",
        "ValueError",
        "nope",
    )
    run = await harness.store.get_run(handle.run_id)
    assert run is not None and run.status is RunStatus.FAILED
    history = await harness.running.history(handle.run_id)
    assert kinds(history)[-1] == "run_failed"
    assert of_kind(history, EventKind.RUN_COMPENSATED) == []


async def test_exception_raised_by_workflow_code_compensates(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []

    def define(app: legato.App) -> SimpleNamespace:
        inner = saga(log)(app)

        @app.workflow(name="picky")
        async def picky() -> None:
            await inner.a(1)
            raise LookupError("no such course")

        inner.picky = picky
        return inner

    defs = await harness.start(define)
    failed = await outcome(await harness.running.start(defs.picky))
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.status, failed.error_type) == ("compensated", "LookupError")
    assert undone(log) == ["a"]


# -- catch and continue ----


async def test_caught_step_failure_takes_another_path_and_compensates_nothing(
    harness: Harness,
) -> None:
    log: list[tuple[object, ...]] = []

    def define(app: legato.App) -> SimpleNamespace:
        steps = saga(log)(app)

        @app.step(name="backorder")
        async def backorder(x: int) -> str:
            log.append(("do", "backorder", x))
            return "backordered"

        @app.workflow(name="tolerant")
        async def tolerant(x: int) -> str:
            await steps.a(x)
            try:
                await steps.d()
            except legato.errors.StepFailed as err:
                assert err.step_name == "d" and err.error_type == "ValueError"
                return await backorder(x)
            return "shipped"

        steps.tolerant = tolerant
        return steps

    defs = await harness.start(define)
    handle = await harness.running.start(defs.tolerant, 2)
    assert await outcome(handle) == "backordered"
    assert undone(log) == []
    history = await harness.running.history(handle.run_id)
    assert of_kind(history, EventKind.RUN_FAILED) == []
    assert of_kind(history, EventKind.COMPENSATION_STARTED) == []
    assert (await handle.describe()).status is RunStatus.COMPLETED


# -- cancellation ----


def gated(log: list[tuple[object, ...]], gate: asyncio.Event, calls: Counter[str]):
    """a (compensable) -> wait (retries hourly, or waits on ``gate``) -> never reached."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="a")
        async def a() -> str:
            log.append(("do", "a"))
            return "A"

        @a.compensate
        async def undo_a(result: str) -> None:
            log.append(("undo", "a", result))

        @app.step(
            name="flaky",
            retry=legato.Retry(
                max_attempts=9, initial_interval=seconds(3600), max_interval=seconds(3600)
            ),
        )
        async def flaky() -> None:
            calls["flaky"] += 1
            raise ConnectionError("down")

        @app.step(name="held")
        async def held() -> str:
            calls["held"] += 1
            await gate.wait()
            return "H"

        @held.compensate
        async def undo_held(result: str) -> None:
            log.append(("undo", "held", result))

        @app.step(name="after")
        async def after() -> None:
            log.append(("do", "after"))

        @app.workflow(name="in_backoff")
        async def in_backoff() -> None:
            await a()
            await flaky()
            await after()

        @app.workflow(name="in_step")
        async def in_step() -> None:
            await a()
            await held()
            await after()

        @app.workflow(name="bare")
        async def bare() -> None:
            await flaky()

        return SimpleNamespace(in_backoff=in_backoff, in_step=in_step, bare=bare)

    return define


async def test_cancel_during_retry_backoff_compensates_and_ends_cancelled(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []
    calls: Counter[str] = Counter()
    defs = await harness.start(gated(log, asyncio.Event(), calls))
    handle = await harness.running.start(defs.in_backoff)
    await settle_until(lambda: calls["flaky"] == 1)
    await harness.running.cancel(handle.run_id)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "cancelled"
    assert undone(log) == ["a"]
    assert ("do", "after") not in log
    assert calls["flaky"] == 1
    history = await harness.running.history(handle.run_id)
    assert "cancel_requested" in kinds(history)
    assert kinds(history)[-1] == "run_cancelled"


async def test_cancel_during_a_running_step_interrupts_it_and_does_not_compensate_it(
    harness: Harness,
) -> None:
    log: list[tuple[object, ...]] = []
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    defs = await harness.start(gated(log, gate, calls))
    handle = await harness.running.start(defs.in_step)
    await settle_until(lambda: calls["held"] == 1)
    await harness.running.cancel(handle.run_id)
    # The step in flight is interrupted at its await: it never completed, so only the
    # steps before it are undone (the gate is never opened).
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "cancelled"
    assert undone(log) == ["a"]
    assert ("do", "after") not in log


async def test_cancel_of_run_with_nothing_to_compensate_ends_cancelled(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[tuple[object, ...]] = []
    calls: Counter[str] = Counter()
    defs = await harness.start(gated(log, asyncio.Event(), calls))
    handle = await harness.running.start(defs.bare)
    await settle_until(lambda: calls["flaky"] == 1)
    await harness.running.cancel(handle.run_id)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "cancelled"
    assert log == []
    await clock.settle()
    history = await harness.running.history(handle.run_id)
    assert of_kind(history, EventKind.COMPENSATION_STARTED) == []
    assert kinds(history)[-1] == "run_cancelled"
    assert len(of_kind(history, EventKind.RUN_CANCELLED)) == 1
    assert (await handle.describe()).status is RunStatus.CANCELLED


async def test_cancel_of_a_finished_run_changes_nothing(harness: Harness) -> None:
    log: list[tuple[object, ...]] = []
    defs = await harness.start(saga(log, last_step_fails=False))
    handle = await harness.running.start(defs.wf, 1)
    assert await outcome(handle) == "done"
    history = await harness.running.history(handle.run_id)
    assert await harness.running.cancel(handle.run_id) is RunStatus.COMPLETED
    assert await harness.running.history(handle.run_id) == history
    assert undone(log) == []


async def test_cancel_of_unknown_run_raises_run_not_found(harness: Harness) -> None:
    await harness.start(saga([]))
    with pytest.raises(legato.errors.RunNotFound) as caught:
        await harness.running.cancel("nope")
    assert caught.value.run_id == "nope"


async def test_cancel_requested_while_stopped_is_carried_out_after_restart(
    harness: Harness,
) -> None:
    log: list[tuple[object, ...]] = []
    calls: Counter[str] = Counter()
    define = gated(log, asyncio.Event(), calls)
    defs = await harness.start(define)
    handle = await harness.running.start(defs.in_backoff)
    await settle_until(lambda: calls["flaky"] == 1)
    await harness.stop()
    status = await legato.AsyncClient(harness.store).cancel(handle.run_id)
    assert status is RunStatus.RUNNING  # flagged; the next owner carries it out
    await harness.start(define)
    failed = await outcome(harness.running.handle(handle.run_id), limit=5)
    assert failed.status == "cancelled"
    assert undone(log) == ["a"]
