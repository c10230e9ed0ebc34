"""Bad input to waits: each a clear error, and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import legato
from legato.errors import (
    DefinitionError,
    InvalidTaskResponse,
    PayloadError,
    RunFinished,
    RunNotFound,
    TaskClosed,
)
from legato.model import EventKind, TaskStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, kinds, outcome
from tests.fixtures.waiting import DAY, claim_due

CENTURY_AND_A_DAY = timedelta(days=365 * 100 + 1)


def waiter(app: legato.App) -> SimpleNamespace:
    @app.workflow(name="waiter")
    async def flow() -> Any:
        return await legato.wait_for_signal("go")

    @app.workflow(name="quick")
    async def quick() -> str:
        return "done"

    @app.workflow(name="asks")
    async def asks() -> Any:
        return await legato.human_task("approve", {"n": 1}, form={"type": "boolean"})

    return SimpleNamespace(flow=flow, quick=quick, asks=asks)


def one_wait(call: Any):
    """A workflow that makes one wait: ``call()`` (a coroutine factory)."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="bad")
        async def flow() -> None:
            await call()

        return SimpleNamespace(flow=flow)

    return define


async def run_bad(harness: Harness, call: Any) -> tuple[legato.errors.RunFailed, list[str]]:
    """Run a workflow making ``call``; return how it failed and its history's kinds."""
    defs = await harness.start(one_wait(call))
    handle = await harness.running.start(defs.flow)
    failed = await outcome(handle)
    return failed, kinds(await harness.running.history(handle.run_id))


# -- signals -------------------------------------------------------------------------------


async def test_signal_to_an_unknown_run_raises_run_not_found_and_stores_nothing(
    harness: Harness,
) -> None:
    await harness.start(waiter)
    with pytest.raises(RunNotFound, match="no-such-run"):
        await harness.running.signal("no-such-run", "go", 1)
    assert await harness.store.signals("no-such-run") == []


async def test_client_signal_to_an_unknown_run_raises_run_not_found(harness: Harness) -> None:
    await harness.start(waiter)
    with pytest.raises(RunNotFound):
        await legato.AsyncClient(harness.store).signal("no-such-run", "go", 1)
    assert await harness.store.signals("no-such-run") == []


async def test_signal_to_a_finished_run_raises_run_finished_and_stores_nothing(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.quick)
    assert await outcome(handle) == "done"
    with pytest.raises(RunFinished, match="completed") as raised:
        await harness.running.signal(handle.run_id, "go", 1)
    assert raised.value.status == "completed"
    assert await harness.store.signals(handle.run_id) == []


@pytest.mark.parametrize("name", ["__task__:x", "__anything", ""])
async def test_signal_with_a_reserved_or_empty_name_is_refused(
    harness: Harness, clock: FakeClock, name: str
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    with pytest.raises(DefinitionError, match="signal names"):
        await harness.running.signal(handle.run_id, name, 1)
    assert await harness.store.signals(handle.run_id) == []


async def test_signal_payload_that_is_not_json_is_refused(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    with pytest.raises(PayloadError):
        await harness.running.signal(handle.run_id, "go", object())
    assert await harness.store.signals(handle.run_id) == []


async def test_waiting_for_a_reserved_signal_name_fails_the_run_with_definition_error(
    harness: Harness,
) -> None:
    failed, history = await run_bad(harness, lambda: legato.wait_for_signal("__child__:x"))
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.DefinitionError")
    assert EventKind.WAIT_STARTED.value not in history


# -- human tasks ---------------------------------------------------------------------------


async def test_task_completed_twice_keeps_the_first_response_and_sends_one_signal(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.asks)
    await clock.settle()
    (task,) = await legato.AsyncClient(harness.store).list_tasks(run_id=handle.run_id)
    await harness.running.complete_task(task.task_id, True)
    await claim_due(clock)
    with pytest.raises(TaskClosed):
        await harness.running.complete_task(task.task_id, False)
    assert len(await harness.store.signals(handle.run_id)) == 1
    stored = await harness.store.get_task(task.task_id)
    assert stored is not None and stored.response is True
    assert await outcome(handle) is True


async def test_response_not_matching_the_form_writes_nothing(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.asks)
    await clock.settle()
    (task,) = await legato.AsyncClient(harness.store).list_tasks(run_id=handle.run_id)
    with pytest.raises(InvalidTaskResponse, match="is not of type 'boolean'"):
        await harness.running.complete_task(task.task_id, "yes")
    stored = await harness.store.get_task(task.task_id)
    assert stored is not None
    assert (stored.status, stored.response, stored.completed_at) == (TaskStatus.OPEN, None, None)
    assert await harness.store.signals(handle.run_id) == []


async def test_human_task_with_a_negative_timeout_fails_the_run_and_creates_no_task(
    harness: Harness,
) -> None:
    failed, history = await run_bad(
        harness, lambda: legato.human_task("approve", timeout=timedelta(hours=-1))
    )
    assert failed.error_type == "legato.errors.DefinitionError"
    assert "negative" in failed.error_message
    assert EventKind.TASK_CREATED.value not in history
    assert await harness.store.list_tasks(status=None) == []


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "says"),
    [
        (timedelta(seconds=-1), "negative"),
        (5, "timedelta"),
        (CENTURY_AND_A_DAY, "100 years"),
    ],
    ids=["negative", "not-a-timedelta", "absurd"],
)
async def test_bad_sleep_duration_fails_the_run_with_definition_error_and_no_timer(
    harness: Harness, duration: Any, says: str
) -> None:
    failed, history = await run_bad(harness, lambda: legato.sleep(duration))
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.DefinitionError")
    assert says in failed.error_message
    assert EventKind.TIMER_STARTED.value not in history


async def test_sleep_until_a_naive_datetime_fails_the_run_with_definition_error(
    harness: Harness,
) -> None:
    failed, history = await run_bad(harness, lambda: legato.sleep_until(datetime(2030, 6, 1)))
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.DefinitionError")
    assert "aware datetime" in failed.error_message
    assert EventKind.TIMER_STARTED.value not in history


async def test_sleep_until_more_than_a_century_away_fails_the_run(
    harness: Harness, clock: FakeClock
) -> None:
    when = clock.now() + CENTURY_AND_A_DAY
    failed, history = await run_bad(harness, lambda: legato.sleep_until(when))
    assert failed.error_type == "legato.errors.DefinitionError"
    assert EventKind.TIMER_STARTED.value not in history


async def test_sleep_until_99_years_ahead_of_the_engines_clock_is_accepted(
    harness: Harness,
) -> None:
    # The engine's clock, not the wall clock, says what "100 years away" means: a test
    # clock set in 2100 may sleep until 2199.
    clock = FakeClock(datetime(2100, 1, 1, tzinfo=UTC))
    harness.clock = clock
    defs = await harness.start(one_wait(lambda: legato.sleep_until(clock.now() + 99 * 365 * DAY)))
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    history = kinds(await harness.running.history(handle.run_id))
    assert EventKind.TIMER_STARTED.value in history, history


async def test_sleep_until_a_past_time_returns_at_once(harness: Harness, clock: FakeClock) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="late")
        async def flow() -> str:
            await legato.sleep_until(clock.now() - DAY)
            return "on"

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    await clock.settle()
    assert await outcome(handle) == "on"


async def test_wait_for_signal_with_a_non_timedelta_timeout_fails_the_run(
    harness: Harness,
) -> None:
    failed, history = await run_bad(harness, lambda: legato.wait_for_signal("go", timeout=30))
    assert failed.error_type == "legato.errors.DefinitionError"
    assert "timedelta" in failed.error_message
    assert EventKind.WAIT_STARTED.value not in history


# -- calls from the wrong place, bad data ----------------------------------------------------


async def test_waits_outside_a_workflow_raise_a_legato_error() -> None:
    with pytest.raises(legato.errors.LegatoError, match="workflow code"):
        await legato.sleep(DAY)
    with pytest.raises(legato.errors.LegatoError, match="workflow code"):
        await legato.wait_for_signal("go")
    with pytest.raises(legato.errors.LegatoError, match="workflow code"):
        await legato.human_task("approve")


async def test_sleep_inside_a_step_fails_the_step_and_records_no_timer(harness: Harness) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="sleepy", retry=legato.Retry(max_attempts=1))
        async def sleepy() -> None:
            await legato.sleep(DAY)

        @app.workflow(name="wf")
        async def flow() -> None:
            await sleepy()

        return SimpleNamespace(flow=flow)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.flow)
    failed = await outcome(handle)
    assert (failed.status, failed.step_name) == ("failed", "sleepy")
    assert "workflow code" in (failed.error_message or "")
    history = kinds(await harness.running.history(handle.run_id))
    assert EventKind.TIMER_STARTED.value not in history


async def test_human_task_data_that_is_not_json_fails_the_run_and_creates_no_task(
    harness: Harness,
) -> None:
    failed, history = await run_bad(harness, lambda: legato.human_task("approve", {1, 2}))
    assert failed.error_type == "legato.errors.PayloadError"
    assert EventKind.TASK_CREATED.value not in history
    assert await harness.store.list_tasks(status=None) == []


async def test_child_called_with_the_wrong_arguments_fails_the_parent_and_starts_nothing(
    harness: Harness,
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="double")
        async def double(n: int) -> int:
            return n * 2

        @app.workflow(name="parent")
        async def parent() -> Any:
            return await legato.child(double, 1, 2)

        return SimpleNamespace(parent=parent)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.parent)
    failed = await outcome(handle)
    assert failed.error_type == "legato.errors.DefinitionError"
    assert [r.run_id for r in await harness.store.list_runs()] == [handle.run_id]
    history = kinds(await harness.running.history(handle.run_id))
    assert EventKind.CHILD_STARTED.value not in history


async def test_task_of_a_cancelled_run_refuses_a_response(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(waiter)
    handle = await harness.running.start(defs.asks)
    await clock.settle()
    (task,) = await legato.AsyncClient(harness.store).list_tasks(run_id=handle.run_id)
    await harness.running.cancel(handle.run_id)
    await claim_due(clock)
    assert (await outcome(handle)).status == "cancelled"
    with pytest.raises(TaskClosed, match="cancelled"):
        await harness.running.complete_task(task.task_id, True)
    assert await harness.store.signals(handle.run_id) == []
