"""Bounded payloads and histories: a clear error instead of unbounded growth."""

from __future__ import annotations

import pytest

import legato
from legato.storage.memory import MemoryStore
from legato.testing import FakeClock
from tests.fixtures.engine import outcome

LIMIT = 4096
BIG = "x" * 5000


@pytest.fixture
async def app(clock: FakeClock):
    app = legato.App("t", MemoryStore(), clock=clock, max_payload_bytes=LIMIT, max_history=40)

    @app.step(name="echo", retry=legato.Retry(max_attempts=3))
    async def echo(value: str, times: int = 1) -> str:
        return value * times

    @app.workflow(name="one")
    async def one(value: str, times: int) -> str:
        return await echo(value, times)

    @app.workflow(name="waits")
    async def waits() -> object:
        return await legato.wait_for_signal("go")

    @app.workflow(name="asks")
    async def asks() -> object:
        return await legato.human_task("review")

    @app.workflow(name="forever")
    async def forever() -> None:
        while True:
            await echo("tick")

    @app.workflow(name="rolling")
    async def rolling(n: int) -> int:
        for _ in range(10):
            await echo("tick")
        if n < 5:
            legato.continue_as_new(n + 1)
        return n

    async with app:
        yield app


async def test_arguments_over_the_limit_are_refused_with_size_and_limit(app) -> None:
    with pytest.raises(legato.errors.PayloadError, match=r"4\.9 KiB .* over the 4\.0 KiB"):
        await app.start("one", BIG, 1, run_id="r")
    assert await app.store.get_run("r") is None
    async with legato.AsyncClient(app.store, max_payload_bytes=LIMIT) as client:
        with pytest.raises(legato.errors.PayloadError, match="max_payload_bytes"):
            await client.start("one", BIG, 1)


async def test_a_step_result_over_the_limit_fails_the_run_without_retrying(app) -> None:
    failed = await outcome(await app.start("one", "x" * 100, 50))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_type == "legato.errors.PayloadError"
    assert failed.step_name == "echo"
    assert "over the 4.0 KiB limit" in (failed.error_message or "")
    [step] = (await app.describe(failed.run_id)).steps
    assert step.attempts == 1


async def test_signals_and_task_answers_over_the_limit_are_refused(app, clock) -> None:
    waiting = await app.start("waits")
    asking = await app.start("asks")
    await clock.settle()
    with pytest.raises(legato.errors.PayloadError, match="signal 'go'"):
        await app.signal(waiting.run_id, "go", BIG)
    [task] = await app.list_tasks(run_id=asking.run_id)
    with pytest.raises(legato.errors.PayloadError, match="response to task"):
        await app.complete_task(task.task_id, BIG)
    assert (await app.list_tasks(run_id=asking.run_id))[0].status.value == "open"
    await app.signal(waiting.run_id, "go", "small")
    assert await waiting.result(timeout=5) == "small"


async def test_a_workflow_looping_past_the_history_limit_fails_naming_continue_as_new(
    app,
) -> None:
    failed = await outcome(await app.start("forever"))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_type == "legato.errors.HistoryTooLong"
    assert "continue_as_new" in (failed.error_message or "")
    assert len(await app.history(failed.run_id)) <= 45


async def test_continue_as_new_keeps_a_long_loop_under_the_limit(app) -> None:
    handle = await app.start("rolling", 0, run_id="roll")
    assert await handle.result(timeout=10) == 5
    for run in await app.list_runs():
        assert len(await app.history(run.run_id)) < 40


@pytest.mark.parametrize("bad", [{"max_payload_bytes": 10}, {"max_history": 0}])
def test_limits_must_be_sensible(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        legato.App("t", "memory://", **bad)


def test_default_limits() -> None:
    app = legato.App("t", "memory://")
    assert (app.max_payload_bytes, app.max_history) == (2 * 1024 * 1024, 20_000)
