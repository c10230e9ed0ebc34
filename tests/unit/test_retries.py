"""Retries, backoff and timeouts, timed with a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from types import SimpleNamespace

import pytest

import legato
from legato.model import EventKind
from legato.testing import FakeClock
from tests.fixtures.engine import (
    Harness,
    advance,
    of_kind,
    outcome,
    poll_until,
    seconds,
    settle_until,
)


def failing(
    times: list[float],
    clock: FakeClock,
    retry: legato.Retry,
    *,
    succeed_on: int = 0,
    error: type[Exception] = ConnectionError,
):
    """One step that fails (until attempt ``succeed_on``), noting the clock at each attempt."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="call", retry=retry)
        async def call() -> str:
            times.append(clock.time())
            if len(times) != succeed_on:
                raise error(f"attempt {len(times)}")
            return "ok"

        @app.workflow(name="wf")
        async def wf() -> str:
            return await call()

        return SimpleNamespace(wf=wf)

    return define


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


# -- what is retried ----


async def test_non_retryable_exception_fails_at_once(harness: Harness, clock: FakeClock) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=5, non_retryable=(KeyError,))
    defs = await harness.start(failing(times, clock, retry, error=KeyError))
    handle = await harness.running.start(defs.wf)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.error_type, failed.step_name) == ("KeyError", "call")
    assert len(times) == 1
    [record] = of_kind(await harness.running.history(handle.run_id), EventKind.STEP_FAILED)
    assert (record.attempt, record.data.get("final"), record.data.get("retry_at")) == (
        1,
        True,
        None,
    )
    assert (await handle.describe()).steps[0].attempts == 1


async def test_subclass_of_a_non_retryable_type_fails_at_once(
    harness: Harness, clock: FakeClock
) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=5, non_retryable=(LookupError,))
    defs = await harness.start(failing(times, clock, retry, error=KeyError))
    assert (await outcome(await harness.running.start(defs.wf))).error_type == "KeyError"
    assert len(times) == 1


async def test_step_gives_up_after_max_attempts(harness: Harness, clock: FakeClock) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=4, initial_interval=seconds(1), jitter=False)
    defs = await harness.start(failing(times, clock, retry))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(60))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_message == "attempt 4"
    assert len(times) == 4
    records = of_kind(await harness.running.history(handle.run_id), EventKind.STEP_FAILED)
    assert [r.attempt for r in records] == [1, 2, 3, 4]
    assert [bool(r.data.get("final")) for r in records] == [False, False, False, True]


async def test_step_returning_what_json_cannot_hold_fails_without_retrying(
    harness: Harness,
) -> None:
    calls: Counter[str] = Counter()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(retry=legato.Retry(max_attempts=5))
        async def opaque() -> object:
            calls["opaque"] += 1
            return object()

        @app.workflow
        async def wf() -> None:
            await opaque()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    failed = await outcome(await harness.running.start(defs.wf))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_type == "legato.errors.PayloadError"
    assert calls["opaque"] == 1


# -- backoff timing ----


async def test_backoff_without_jitter_is_exponential_and_capped(
    harness: Harness, clock: FakeClock
) -> None:
    times: list[float] = []
    retry = legato.Retry(
        max_attempts=5,
        initial_interval=seconds(10),
        backoff=3.0,
        max_interval=seconds(60),
        jitter=False,
    )
    defs = await harness.start(failing(times, clock, retry))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(1000))
    assert (await outcome(handle)).error_message == "attempt 5"
    assert gaps(times) == [10.0, 30.0, 60.0, 60.0]


async def test_retry_does_not_happen_a_moment_early(harness: Harness, clock: FakeClock) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=3, initial_interval=seconds(10), jitter=False)
    defs = await harness.start(failing(times, clock, retry, succeed_on=2))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(9.999))
    assert len(times) == 1
    await advance(clock, seconds(0.001))
    assert len(times) == 2
    assert await outcome(handle) == "ok"


async def test_jittered_second_attempt_waits_between_half_and_all_of_the_interval(
    harness: Harness, clock: FakeClock
) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=2, initial_interval=seconds(10), jitter=True)
    defs = await harness.start(failing(times, clock, retry, succeed_on=2))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(4.999))
    assert len(times) == 1, "retried before half the initial interval"
    await advance(clock, seconds(5.001))
    assert len(times) == 2, "not retried by the full initial interval"
    assert await outcome(handle) == "ok"


async def test_jittered_backoff_stays_within_its_bounds(harness: Harness, clock: FakeClock) -> None:
    times: list[float] = []
    retry = legato.Retry(
        max_attempts=5,
        initial_interval=seconds(4),
        backoff=2.0,
        max_interval=seconds(10),
        jitter=True,
    )
    defs = await harness.start(failing(times, clock, retry))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(1000))
    assert (await outcome(handle)).error_message == "attempt 5"
    full = [4.0, 8.0, 10.0, 10.0]  # initial * backoff**n, capped at max_interval
    assert len(gaps(times)) == len(full)
    for gap, ceiling in zip(gaps(times), full, strict=True):
        assert ceiling / 2 <= gap <= ceiling


async def test_each_failed_attempt_is_recorded_with_its_retry_time(
    harness: Harness, clock: FakeClock
) -> None:
    times: list[float] = []
    retry = legato.Retry(max_attempts=3, initial_interval=seconds(5), jitter=False)
    defs = await harness.start(failing(times, clock, retry, succeed_on=3))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(100))
    assert await outcome(handle) == "ok"
    history = await harness.running.history(handle.run_id)
    failed = of_kind(history, EventKind.STEP_FAILED)
    assert [r.attempt for r in failed] == [1, 2]
    assert [r.data["retry_at"] for r in failed] == [times[1], times[2]]
    assert [r.data["retry_at"] - r.at.timestamp() for r in failed] == [5.0, 10.0]
    assert [r.data["type"] for r in failed] == ["ConnectionError"] * 2
    [completed] = of_kind(history, EventKind.STEP_COMPLETED)
    assert completed.attempt == 3


async def test_crash_during_backoff_does_not_reset_the_attempt_count(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a step that always fails, stopped while waiting for its 2nd attempt
    times: list[float] = []
    retry = legato.Retry(max_attempts=3, initial_interval=seconds(10), jitter=False)
    define = failing(times, clock, retry)
    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await settle_until(lambda: len(times) == 1)
    await advance(clock, seconds(5))
    # When a new process takes over
    await harness.restart(define)
    await clock.settle()
    assert len(times) == 1, "the restart must wait out the recorded backoff"
    await advance(clock, seconds(5))
    assert len(times) == 2
    await advance(clock, seconds(100))
    # Then it makes only the attempts that were left
    failed = await outcome(harness.running.handle(handle.run_id))
    assert failed.error_message == "attempt 3"
    assert len(times) == 3
    history = await harness.running.history(handle.run_id)
    assert [r.attempt for r in of_kind(history, EventKind.STEP_FAILED)] == [1, 2, 3]
    assert gaps(times) == [10.0, 20.0]


# -- step timeouts ----


async def test_async_step_over_its_timeout_is_cancelled_and_retried(
    harness: Harness, clock: FakeClock
) -> None:
    attempts: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(
            name="slow",
            timeout=seconds(5),
            retry=legato.Retry(max_attempts=2, initial_interval=seconds(1), jitter=False),
        )
        async def slow() -> str:
            attempts.append("started")
            if len(attempts) == 1:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    attempts.append("cancelled")
                    raise
            return "fast enough"

        @app.workflow(name="wf")
        async def wf() -> str:
            return await slow()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(4.999))
    assert attempts == ["started"]
    await advance(clock, seconds(0.001))
    assert attempts == ["started", "cancelled"]
    await advance(clock, seconds(1))
    assert await outcome(handle) == "fast enough"
    [timed_out] = of_kind(await harness.running.history(handle.run_id), EventKind.STEP_FAILED)
    assert timed_out.attempt == 1
    assert timed_out.data["type"] == "legato.errors.StepTimeout"


async def test_step_that_always_times_out_fails_with_step_timeout(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="stuck", timeout=seconds(1), retry=legato.Retry(max_attempts=1))
        async def stuck() -> None:
            await asyncio.Event().wait()

        @app.workflow(name="wf")
        async def wf() -> None:
            await stuck()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(1))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.error_type, failed.step_name) == ("legato.errors.StepTimeout", "stuck")


async def test_hung_sync_step_is_abandoned_and_counted_as_timed_out(
    harness: Harness, clock: FakeClock
) -> None:
    release = threading.Event()
    finished = threading.Event()
    attempts: list[int] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(
            name="hangs",
            timeout=seconds(5),
            retry=legato.Retry(max_attempts=2, initial_interval=seconds(1), jitter=False),
        )
        def hangs() -> str:
            attempts.append(len(attempts) + 1)
            if len(attempts) == 1:
                release.wait(30)
                finished.set()
                return "too late"
            return "second try"

        @app.workflow(name="wf")
        async def wf() -> str:
            return await hangs()

        return SimpleNamespace(wf=wf)

    try:
        defs = await harness.start(define)
        handle = await harness.running.start(defs.wf)
        await poll_until(lambda: attempts == [1])  # a real thread has to start
        await advance(clock, seconds(5))
        await advance(clock, seconds(1))
        assert await outcome(handle) == "second try"
        history = await harness.running.history(handle.run_id)
        [timed_out] = of_kind(history, EventKind.STEP_FAILED)
        assert (timed_out.attempt, timed_out.data["type"]) == (1, "legato.errors.StepTimeout")
        # The abandoned attempt finishing later changes nothing.
        release.set()
        assert await asyncio.to_thread(finished.wait, 10)
        await clock.settle()
        assert await harness.running.history(handle.run_id) == history
        assert await outcome(handle) == "second try"
    finally:
        release.set()


# -- workflow timeout ----


async def test_workflow_timeout_fails_the_run_and_compensates_it(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve() -> str:
            log.append("reserve")
            return "R"

        @reserve.compensate
        async def release(result: str) -> None:
            log.append(f"release {result}")

        @app.step(
            name="wait",
            retry=legato.Retry(
                max_attempts=100, initial_interval=seconds(60), max_interval=seconds(60)
            ),
        )
        async def wait() -> None:
            raise ConnectionError("still not there")

        @app.workflow(name="wf", timeout=seconds(300))
        async def wf() -> None:
            await reserve()
            await wait()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(299))
    run = await harness.store.get_run(handle.run_id)
    assert run is not None and not run.status.is_terminal
    await advance(clock, seconds(1))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "compensated"
    assert failed.error_type == "legato.errors.WorkflowTimeout"
    assert log == ["reserve", "release R"]


@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_step_timeout_is_a_definition_error(value: int) -> None:
    app = legato.App("t", "memory://")
    with pytest.raises(legato.errors.DefinitionError, match="timeout"):
        app.step(timeout=seconds(value))(lambda: None)
