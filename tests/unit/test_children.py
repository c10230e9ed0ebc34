"""Child runs: ``legato.child``, their results, failures, ids and cancellation."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import legato
from legato.errors import ChildFailed
from legato.model import EventKind, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome
from tests.fixtures.waiting import DAY, claim_due, row, status

NO_RETRY = legato.Retry(max_attempts=1)


def family(log: list[str], calls: Counter[str], *, child_run_id: str | None = None):
    """Parent reserves, then runs ``kid`` (charge, then sleep a day, then maybe fail)."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve() -> str:
            calls["reserve"] += 1
            return "R"

        @reserve.compensate
        async def unreserve(result: str) -> None:
            log.append("undo reserve")

        @app.step(name="charge")
        async def charge(amount: int) -> str:
            calls["charge"] += 1
            return f"C{amount}"

        @charge.compensate
        async def refund(amount: int, result: str) -> None:
            log.append("undo charge")

        @app.step(name="ship", retry=NO_RETRY)
        async def ship(amount: int) -> None:
            if amount < 0:
                raise ValueError("cannot ship a negative amount")

        @app.workflow(name="kid")
        async def kid(amount: int) -> str:
            charged = await charge(amount)
            await legato.sleep(DAY)
            await ship(amount)
            return charged

        @app.workflow(name="parent")
        async def parent(amount: int) -> Any:
            await reserve()
            try:
                return await legato.child(kid, amount, run_id=child_run_id)
            except ChildFailed as failed:
                return {
                    "status": failed.status,
                    "type": failed.error_type,
                    "child": failed.child_run_id,
                }

        return SimpleNamespace(parent=parent, kid=kid, reserve=reserve)

    return define


async def test_parent_gets_the_childs_result(harness: Harness, clock: FakeClock) -> None:
    defs = await harness.start(family([], Counter()))
    handle = await harness.running.start(defs.parent, 7)
    await advance(clock, DAY)
    await claim_due(clock)
    assert await outcome(handle) == "C7"


async def test_failed_child_raises_child_failed_with_its_status_and_error_type(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(family(log, Counter()))
    handle = await harness.running.start(defs.parent, -1)
    await advance(clock, DAY)
    await claim_due(clock)
    assert await outcome(handle) == {
        "status": "compensated",
        "type": "ValueError",
        "child": f"{handle.run_id}/2",
    }
    assert log == ["undo charge"], "the child compensates itself; the parent caught it"


async def test_child_run_id_defaults_to_parent_slash_call_key(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(family([], Counter()))
    handle = await harness.running.start(defs.parent, 7)
    await clock.settle()
    child = await row(harness.store, f"{handle.run_id}/2")
    assert (child.workflow, child.parent_run_id, child.input) == ("kid", handle.run_id, [7])


async def test_explicit_child_run_id_is_honoured(harness: Harness, clock: FakeClock) -> None:
    defs = await harness.start(family([], Counter(), child_run_id="charge-o-1"))
    handle = await harness.running.start(defs.parent, 7)
    await advance(clock, DAY)
    await claim_due(clock)
    assert await outcome(handle) == "C7"
    child = await row(harness.store, "charge-o-1")
    assert (child.status, child.parent_run_id) == (RunStatus.COMPLETED, handle.run_id)
    assert await harness.store.get_run(f"{handle.run_id}/2") is None


async def test_parent_resumes_when_its_child_completes_without_waiting_for_a_poll(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a parent evicted while its child runs a step that waits for the test
    gate = asyncio.Event()

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="gated")
        async def gated() -> str:
            await gate.wait()
            return "through"

        @app.workflow(name="kid")
        async def kid() -> str:
            return await gated()

        @app.workflow(name="parent")
        async def parent() -> str:
            return await legato.child(kid)

        return SimpleNamespace(parent=parent)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.parent)
    await clock.settle()
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    # When the child completes in this engine
    gate.set()
    await clock.settle()
    # Then the engine, which committed the child's end, resumes the parent at once
    assert await status(harness.store, f"{handle.run_id}/1") is RunStatus.COMPLETED
    assert await status(harness.store, handle.run_id) is RunStatus.COMPLETED


async def test_cancelling_the_parent_cancels_the_child_and_both_compensate(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a parent that reserved, waiting on a child that charged and now sleeps
    log: list[str] = []
    defs = await harness.start(family(log, Counter()))
    handle = await harness.running.start(defs.parent, 7)
    await clock.settle()
    child_id = f"{handle.run_id}/2"
    # When the parent is cancelled
    await harness.running.cancel(handle.run_id)
    await claim_due(clock)
    await claim_due(clock)
    # Then the child is cancelled and undoes its charge; the parent undoes its reservation
    assert (await outcome(handle)).status == "cancelled"
    assert await status(harness.store, child_id) is RunStatus.CANCELLED
    assert sorted(log) == ["undo charge", "undo reserve"]


async def test_child_of_an_unregistered_workflow_fails_the_parent_with_unknown_workflow(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="orphan")
        async def orphan() -> Any:
            return await legato.child("nope")

        return SimpleNamespace(orphan=orphan)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.orphan)
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.UnknownWorkflow")
    assert "nope" in failed.error_message
    assert [r.run_id for r in await harness.store.list_runs()] == [handle.run_id]


async def test_child_by_name_runs_the_registered_workflow(
    harness: Harness, clock: FakeClock
) -> None:
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="double")
        async def double(n: int) -> int:
            return n * 2

        @app.workflow(name="caller")
        async def caller() -> int:
            return await legato.child("double", 21)

        return SimpleNamespace(caller=caller)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.caller)
    await claim_due(clock)
    assert await outcome(handle) == 42


async def test_replaying_the_parent_after_a_restart_does_not_start_a_second_child(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a parent waiting on a sleeping child
    calls: Counter[str] = Counter()
    defs = await harness.start(family([], calls))
    handle = await harness.running.start(defs.parent, 7)
    await clock.settle()
    # When the process restarts and both resume
    await harness.restart(family([], calls))
    await advance(clock, DAY)
    await claim_due(clock)
    # Then one child ran, once, and the parent recorded starting it once
    assert await outcome(harness.running.handle(handle.run_id)) == "C7"
    runs = await harness.store.list_runs(workflow="kid")
    assert [r.run_id for r in runs] == [f"{handle.run_id}/2"]
    assert calls == Counter(reserve=1, charge=1)
    history = await harness.running.history(handle.run_id)
    assert len(of_kind(history, EventKind.CHILD_STARTED)) == 1


async def test_child_failure_escaping_the_parent_compensates_the_parent(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        base = family(log, Counter())(app)

        @app.workflow(name="strict")
        async def strict(amount: int) -> Any:
            await base.reserve()
            return await legato.child("kid", amount)

        return SimpleNamespace(strict=strict)

    defs = await harness.start(define)
    handle = await harness.running.start(defs.strict, -1)
    await advance(clock, DAY)
    await claim_due(clock)
    await claim_due(clock)
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("compensated", "legato.errors.ChildFailed")
    assert log == ["undo charge", "undo reserve"]


async def test_parent_timing_out_cancels_the_child_it_waits_for(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []

    def define(app: legato.App) -> SimpleNamespace:
        base = family(log, Counter())(app)

        @app.workflow(name="impatient", timeout=timedelta(hours=1))
        async def impatient(amount: int) -> Any:
            await base.reserve()
            return await legato.child("kid", amount)

        return SimpleNamespace(impatient=impatient)

    # Given a parent with an hour to live, waiting on a child that sleeps a day
    defs = await harness.start(define)
    handle = await harness.running.start(defs.impatient, 7)
    await clock.settle()
    child_id = f"{handle.run_id}/2"
    # When the parent's hour runs out
    await advance(clock, timedelta(hours=1, minutes=1))
    await claim_due(clock)
    await claim_due(clock)
    # Then the parent fails and compensates, and its child is cancelled and compensates too:
    # nobody is left waiting for it, so it must not go on charging
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("compensated", "legato.errors.WorkflowTimeout")
    assert await status(harness.store, child_id) is RunStatus.CANCELLED
    assert sorted(log) == ["undo charge", "undo reserve"]


async def test_child_started_with_a_day_left_keeps_its_own_timer(
    harness: Harness, clock: FakeClock
) -> None:
    defs = await harness.start(family([], Counter()))
    handle = await harness.running.start(defs.parent, 7)
    await advance(clock, DAY - timedelta(seconds=1))
    assert await status(harness.store, f"{handle.run_id}/2") is RunStatus.SLEEPING
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING


async def test_second_parent_naming_a_finished_child_run_id_is_not_left_waiting_forever(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a child run "shared" that a first parent already ran to completion
    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="double")
        async def double(n: int) -> int:
            return n * 2

        @app.workflow(name="parent")
        async def parent(n: int) -> int:
            return await legato.child(double, n, run_id="shared")

        return SimpleNamespace(parent=parent)

    defs = await harness.start(define)
    first = await harness.running.start(defs.parent, 1)
    await claim_due(clock)
    assert await outcome(first) == 2
    # When a second parent asks for a child with the same explicit id
    second = await harness.running.start(defs.parent, 5)
    await claim_due(clock)
    await advance(clock, DAY)
    # Then it ends one way or another (the existing outcome, or a clear error), since
    # the child's outcome was sent to the first parent only and will never come again
    run = await row(harness.store, second.run_id)
    assert run.status.is_terminal, f"the second parent is still {run.status.value}"


async def test_child_cancelled_on_its_own_raises_child_failed_cancelled_in_the_parent(
    harness: Harness, clock: FakeClock
) -> None:
    log: list[str] = []
    defs = await harness.start(family(log, Counter()))
    handle = await harness.running.start(defs.parent, 7)
    await clock.settle()
    child_id = f"{handle.run_id}/2"
    await harness.running.cancel(child_id)
    await claim_due(clock)
    await claim_due(clock)
    assert await outcome(handle) == {
        "status": "cancelled",
        "type": "legato.errors.RunCancelled",
        "child": child_id,
    }
    assert log == ["undo charge"]
