"""Checkpoint and replay: recorded calls return their outcome and never run again."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import pytest

import legato
from legato.model import EventKind, HistoryEvent
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, kinds, of_kind, outcome, seconds, settle_until

SLOW_RETRY = legato.Retry(
    max_attempts=5, initial_interval=seconds(3600), max_interval=seconds(3600), jitter=False
)


def three_steps(calls: Counter[str], fail_b_first: bool = True):
    """a -> b -> c, where b fails its first attempt and retries an hour later."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="a")
        async def a(x: int) -> str:
            calls["a"] += 1
            return f"a{x}-call{calls['a']}"

        @app.step(name="b", retry=SLOW_RETRY)
        async def b(value: str) -> str:
            calls["b"] += 1
            if fail_b_first and calls["b"] == 1:
                raise ConnectionError("flaky")
            return value + "+b"

        @app.step(name="c")
        def c(value: str) -> str:
            calls["c"] += 1
            return value + "+c"

        @app.workflow(name="wf")
        async def wf(x: int) -> str:
            return await c(await b(await a(x)))

        return SimpleNamespace(wf=wf)

    return define


async def test_each_step_runs_once_and_its_result_is_recorded(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(three_steps(calls, fail_b_first=False))
    handle = await harness.running.start(defs.wf, 1)
    assert await handle.result(timeout=5) == "a1-call1+b+c"
    assert calls == {"a": 1, "b": 1, "c": 1}
    history = await harness.running.history(handle.run_id)
    completed = of_kind(history, EventKind.STEP_COMPLETED)
    assert [(e.key, e.name, e.data["result"]) for e in completed] == [
        ("1", "a", "a1-call1"),
        ("2", "b", "a1-call1+b"),
        ("3", "c", "a1-call1+b+c"),
    ]
    assert kinds(history)[-1] == "run_completed"


async def test_restart_resumes_without_rerunning_recorded_steps(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a run whose step b failed once and waits an hour to retry
    calls: Counter[str] = Counter()
    defs = await harness.start(three_steps(calls))
    handle = await harness.running.start(defs.wf, 7)
    await settle_until(lambda: calls["b"] == 1)
    await clock.settle()
    # When the process stops and a new one starts on the same store
    await harness.restart(three_steps(calls))
    await clock.settle()
    assert calls == {"a": 1, "b": 1}
    await advance(clock, seconds(3600))
    # Then a is not run again, and its recorded result flows into b and c
    assert await outcome(harness.running.handle(handle.run_id)) == "a7-call1+b+c"
    assert calls == {"a": 1, "b": 2, "c": 1}


async def test_restarting_a_completed_run_changes_nothing(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(three_steps(calls, fail_b_first=False))
    handle = await harness.running.start(defs.wf, 1)
    await handle.result(timeout=5)
    history = await harness.running.history(handle.run_id)
    await harness.restart(three_steps(calls, fail_b_first=False))
    assert await outcome(harness.running.handle(handle.run_id)) == "a1-call1+b+c"
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert await harness.running.history(handle.run_id) == history


async def test_results_round_trip_through_json_even_on_the_first_run(harness: Harness) -> None:
    seen: list[object] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step
        async def make() -> tuple[int, int]:
            return (1, 2)

        @app.workflow
        async def wf() -> None:
            seen.append(await make())

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    await (await harness.running.start(defs.wf)).result(timeout=5)
    assert seen == [[1, 2]]  # what replay would return, so live and replay agree


# -- gather ----


def gathering(calls: Counter[str]):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="left")
        async def left(x: int) -> int:
            calls["left"] += 1
            return x * 10

        @app.step(name="right", retry=SLOW_RETRY)
        async def right(x: int) -> int:
            calls["right"] += 1
            if calls["right"] == 1:
                raise ConnectionError("flaky")
            return x * 100

        @app.step(name="total")
        async def total(values: list[int]) -> int:
            calls["total"] += 1
            return sum(values)

        @app.workflow(name="wf")
        async def wf(x: int) -> int:
            values = await asyncio.gather(left(x), right(x))
            return await total(list(values))

        return SimpleNamespace(wf=wf)

    return define


async def test_gathered_steps_both_run_and_their_results_combine(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(gathering(calls))
    handle = await harness.running.start(defs.wf, 2)
    await settle_until(lambda: calls["right"] == 1)
    await advance(clock, seconds(3600))
    assert await outcome(handle) == 220
    assert calls == {"left": 1, "right": 2, "total": 1}


async def test_gather_replays_deterministically_after_a_restart(
    harness: Harness, clock: FakeClock
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(gathering(calls))
    handle = await harness.running.start(defs.wf, 3)
    await settle_until(lambda: calls["right"] == 1 and calls["left"] == 1)
    await clock.settle()
    keys_before = step_keys(await harness.running.history(handle.run_id))
    await harness.restart(gathering(calls))
    await advance(clock, seconds(3600))
    assert await outcome(harness.running.handle(handle.run_id)) == 330
    assert calls == {"left": 1, "right": 2, "total": 1}
    history = await harness.running.history(handle.run_id)
    assert of_kind(history, EventKind.RUN_BLOCKED) == []
    # Each branch kept its call key across the restart, and every call has its own.
    keys_after = step_keys(history)
    assert keys_after == keys_before | {"total": keys_after["total"]}
    assert len(set(keys_after.values())) == 3
    attempts = [
        (e.kind, e.attempt)
        for e in history
        if e.name == "right" and e.kind is not EventKind.STEP_STARTED
    ]
    assert attempts == [(EventKind.STEP_FAILED, 1), (EventKind.STEP_COMPLETED, 2)]


def step_keys(history: list[HistoryEvent]) -> dict[str, str]:
    """``{step name: call key}``; fails if one step name has two keys."""
    keys: dict[str, set[str]] = {}
    for e in history:
        if e.kind in (EventKind.STEP_STARTED, EventKind.STEP_FAILED, EventKind.STEP_COMPLETED):
            keys.setdefault(e.name, set()).add(e.key)
    assert all(len(k) == 1 for k in keys.values()), keys
    return {name: k.pop() for name, k in keys.items()}


# -- recorded values ----


def recording(seen: list[tuple[object, ...]], calls: Counter[str]):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="gate", retry=SLOW_RETRY)
        async def gate() -> None:
            calls["gate"] += 1
            if calls["gate"] == 1:
                raise ConnectionError("not yet")

        @app.workflow(name="wf")
        async def wf() -> list[str]:
            values = (legato.now(), legato.uuid(), legato.random())
            seen.append(values)
            await gate()
            return [str(v) for v in values]

        return SimpleNamespace(wf=wf)

    return define


async def test_now_uuid_and_random_return_the_same_values_on_replay(
    harness: Harness, clock: FakeClock
) -> None:
    seen: list[tuple[object, ...]] = []
    calls: Counter[str] = Counter()
    defs = await harness.start(recording(seen, calls))
    handle = await harness.running.start(defs.wf)
    await settle_until(lambda: calls["gate"] == 1)
    await advance(clock, seconds(60))  # the clock moves on while the run waits
    await harness.restart(recording(seen, calls))
    await advance(clock, seconds(3600))
    result = await outcome(harness.running.handle(handle.run_id))
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert seen[0][0] == clock.now() - seconds(3660)
    assert result == [str(v) for v in seen[0]]


async def test_now_is_an_aware_utc_datetime_from_the_engine_clock(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow
        async def wf() -> str:
            return legato.now().isoformat()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    assert await outcome(await harness.running.start(defs.wf)) == clock.now().isoformat()


def test_now_outside_a_workflow_raises() -> None:
    with pytest.raises(legato.errors.LegatoError, match="workflow"):
        legato.now()
    with pytest.raises(RuntimeError):
        legato.uuid()
    with pytest.raises(RuntimeError):
        legato.random()


async def test_now_inside_a_step_fails_the_step(harness: Harness) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(retry=legato.Retry(max_attempts=1))
        async def sneaky() -> str:
            return legato.now().isoformat()

        @app.workflow
        async def wf() -> str:
            return await sneaky()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    failed = await outcome(await harness.running.start(defs.wf))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "failed"
    assert "now()" in (failed.error_message or "")


# -- step keys ----


def keyed(keys: list[str], calls: Counter[str], retry: legato.Retry):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="charge", retry=retry)
        async def charge(amount: int) -> str:
            calls["charge"] += 1
            keys.append(legato.step_key())
            if calls["charge"] in (1, 2):
                raise ConnectionError("flaky")
            return legato.step_key()

        @app.step(name="ship")
        async def ship() -> str:
            keys.append(legato.step_key())
            return legato.step_key()

        @app.workflow(name="wf")
        async def wf() -> list[str]:
            return [await charge(1), await ship(), await ship()]

        return SimpleNamespace(wf=wf)

    return define


async def test_step_key_is_stable_across_retries(harness: Harness, clock: FakeClock) -> None:
    keys: list[str] = []
    calls: Counter[str] = Counter()
    retry = legato.Retry(max_attempts=3, initial_interval=seconds(1), jitter=False)
    defs = await harness.start(keyed(keys, calls, retry))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(10))
    result = await outcome(handle)
    assert calls["charge"] == 3
    assert keys[0] == keys[1] == keys[2] == result[0]


async def test_step_key_is_unique_per_step_call_and_per_run(
    harness: Harness, clock: FakeClock
) -> None:
    keys: list[str] = []
    retry = legato.Retry(max_attempts=3, initial_interval=seconds(1), jitter=False)
    defs = await harness.start(keyed(keys, Counter(), retry))
    first = await harness.running.start(defs.wf)
    await advance(clock, seconds(10))
    one = await outcome(first)
    two = await outcome(await harness.running.start(defs.wf))
    assert len(set(one)) == 3
    assert set(one).isdisjoint(two)


async def test_step_key_survives_a_restart(harness: Harness, clock: FakeClock) -> None:
    keys: list[str] = []
    calls: Counter[str] = Counter()
    define = keyed(keys, calls, SLOW_RETRY)
    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await settle_until(lambda: calls["charge"] == 1)
    await clock.settle()
    await harness.restart(define)
    await advance(clock, seconds(2 * 3600))
    result = await outcome(harness.running.handle(handle.run_id))
    assert calls["charge"] == 3
    assert keys[:3] == [result[0]] * 3


async def test_step_in_flight_at_a_stop_runs_again_with_the_same_key(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a step that was running (its outcome unrecorded) when the process stopped
    keys: list[str] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="charge")
        async def charge() -> str:
            keys.append(legato.step_key())
            entered.set()
            await release.wait()
            return "charged"

        @app.workflow(name="wf")
        async def wf() -> str:
            return await charge()

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf)
    await entered.wait()
    await harness.stop()
    # When the run resumes elsewhere
    release.set()
    await harness.start(define)
    # Then the step runs again (at least once), with the same idempotency key
    assert await outcome(harness.running.handle(handle.run_id)) == "charged"
    assert len(keys) == 2
    assert keys[0] == keys[1]


def test_step_key_outside_a_step_raises() -> None:
    with pytest.raises(legato.errors.LegatoError):
        legato.step_key()


async def test_run_id_is_the_runs_id_in_workflow_and_step_code(harness: Harness) -> None:
    seen: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        @app.step
        async def where() -> str:
            return legato.run_id()

        @app.workflow
        async def wf() -> list[str]:
            seen.append(legato.run_id())
            return [legato.run_id(), await where()]

        return SimpleNamespace(wf=wf)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.wf, run_id="order-77")
    assert await outcome(handle) == ["order-77", "order-77"]
    assert seen == ["order-77"]


def test_run_id_outside_a_run_raises() -> None:
    with pytest.raises(legato.errors.LegatoError):
        legato.run_id()


# -- steps outside workflows ----


async def test_step_called_outside_a_workflow_is_a_plain_call() -> None:
    app = legato.App("plain", "memory://")

    @app.step
    def add(a: int, b: int) -> int:
        return a + b

    @app.step
    async def mul(a: int, b: int) -> int:
        return a * b

    assert add(2, 3) == 5
    pending = mul(2, 3)
    assert asyncio.iscoroutine(pending)
    assert await pending == 6
    assert await app.store.list_runs() == []
