"""Replay that meets different calls than history recorded leaves the run ``blocked``."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import legato
from legato.model import EventKind, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, kinds, of_kind, outcome, seconds, settle_until

HOURLY = legato.Retry(
    max_attempts=5, initial_interval=seconds(3600), max_interval=seconds(3600), jitter=False
)


def version(calls: Counter[str], order: list[str]):
    """Steps a, b (both compensable), gate (fails once, retries in an hour); the workflow
    calls the steps named in ``order``, then gate (unless ``order`` says "return")."""

    def define(app: legato.App) -> SimpleNamespace:
        steps = {}
        for name in ("a", "b"):

            @app.step(name=name)
            async def step(name: str = name) -> str:
                calls[name] += 1
                return name.upper()

            @step.compensate
            async def undo(*args: object, name: str = name) -> None:
                calls[f"undo {name}"] += 1

            steps[name] = step

        @app.step(name="gate", retry=HOURLY)
        async def gate() -> None:
            calls["gate"] += 1
            if calls["gate"] == 1:
                raise ConnectionError("later")

        @app.workflow(name="wf")
        async def wf() -> str:
            for name in order:
                if name in steps:
                    await steps[name]()
            if "return" in order:
                return "early"
            await gate()
            return "done"

        return SimpleNamespace(wf=wf)

    return define


async def _run_v1_until_waiting(harness: Harness, calls: Counter[str]) -> str:
    defs = await harness.start(version(calls, ["a"]))
    handle = await harness.running.start(defs.wf)
    await settle_until(lambda: calls["gate"] == 1)
    await harness.running.history(handle.run_id)
    return handle.run_id


async def test_different_first_call_on_replay_blocks_the_run(
    harness: Harness, clock: FakeClock
) -> None:
    # Given history recorded step a at call #1
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    # When new code calls step b first
    await harness.restart(version(calls, ["b"]))
    await advance(clock, seconds(3600))
    failed = await outcome(harness.running.handle(run_id))
    # Then the run is blocked, saying where and how replay diverged
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "blocked"
    assert failed.error_type == "legato.errors.NonDeterminismError"
    message = failed.error_message or ""
    assert "#1" in message and "'a'" in message and "'b'" in message


async def test_blocked_run_records_sequence_recorded_and_requested(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    await harness.restart(version(calls, ["b"]))
    await advance(clock, seconds(3600))
    await outcome(harness.running.handle(run_id))
    run = await harness.store.get_run(run_id)
    assert run is not None and run.status is RunStatus.BLOCKED
    assert run.error is not None
    assert (run.error["seq"], run.error["recorded"], run.error["requested"]) == (
        "1",
        "step 'a'",
        "step 'b'",
    )


async def test_describe_of_blocked_run_shows_the_divergence_as_last_error(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a step that failed once before the run was blocked
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    await harness.restart(version(calls, ["b"]))
    await advance(clock, seconds(3600))
    await outcome(harness.running.handle(run_id))
    described = await harness.running.describe(run_id)
    assert described.status is RunStatus.BLOCKED
    # Then the error shown is what blocks the run, not the older step failure
    assert described.last_error is not None
    assert described.last_error["type"] == "legato.errors.NonDeterminismError"
    assert "#1" in described.last_error["message"]
    assert "operator" in described.next


async def test_blocked_run_is_neither_failed_nor_compensated(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    await harness.restart(version(calls, ["b"]))
    await advance(clock, seconds(3600))
    await outcome(harness.running.handle(run_id))
    await clock.settle()
    history = await harness.running.history(run_id)
    assert kinds(history)[-1] == "run_blocked"
    assert of_kind(history, EventKind.RUN_FAILED) == []
    assert of_kind(history, EventKind.COMPENSATION_STARTED) == []
    assert calls["undo a"] == 0
    assert calls["b"] == 0, "the diverging call must not execute"
    assert calls["gate"] == 1


async def test_blocked_run_stays_blocked_after_another_restart(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    await harness.restart(version(calls, ["b"]))
    await outcome(harness.running.handle(run_id))
    history = await harness.running.history(run_id)
    await harness.restart(version(calls, ["a"]))
    await advance(clock, seconds(7200))
    assert await harness.running.history(run_id) == history
    assert calls["gate"] == 1


async def test_code_that_returns_before_a_recorded_call_blocks_the_run(
    harness: Harness, clock: FakeClock
) -> None:
    # Given history recorded a, then gate
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    # When new code calls a and then returns without calling gate
    await harness.restart(version(calls, ["a", "return"]))
    await advance(clock, seconds(3600))
    failed = await outcome(harness.running.handle(run_id))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "blocked"
    run = await harness.store.get_run(run_id)
    assert run is not None and run.error is not None
    assert run.error["seq"] == "2"
    assert run.error["recorded"] == "step 'gate'"
    assert calls["undo a"] == 0
    assert run.output is None


async def test_same_calls_in_the_same_order_replay_fine(harness: Harness, clock: FakeClock) -> None:
    calls: Counter[str] = Counter()
    run_id = await _run_v1_until_waiting(harness, calls)
    await harness.restart(version(calls, ["a"]))
    await advance(clock, seconds(3600))
    assert await outcome(harness.running.handle(run_id)) == "done"
    assert calls["a"] == 1
