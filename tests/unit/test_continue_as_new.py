"""``legato.continue_as_new``: a looping workflow continues as a fresh run, history reset."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import legato
from legato.model import EventKind, RunStatus
from tests.fixtures.engine import Harness, kinds, outcome


def looping(effects: list[int]):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="tick")
        async def tick(n: int) -> int:
            effects.append(n)
            return n + 1

        @app.workflow(name="loop")
        async def loop(n: int, last: int) -> int:
            n = await tick(n)
            if n < last:
                try:
                    legato.continue_as_new(n, last)
                except Exception:  # a workflow's catch-all must not swallow it
                    return -1
            return n

        @app.workflow(name="parent")
        async def parent() -> int:
            return await legato.child(loop, 0, 2, run_id="kid")

        return SimpleNamespace(loop=loop, parent=parent)

    return define


async def test_result_follows_the_chain_to_the_last_run(harness: Harness) -> None:
    effects: list[int] = []
    defs = await harness.start(looping(effects))
    handle = await harness.running.start(defs.loop, 0, 3, run_id="order-7")

    assert await handle.result(timeout=10) == 3
    assert effects == [0, 1, 2]
    runs = {r.run_id: r for r in await harness.running.list_runs()}
    assert sorted(runs) == ["order-7", "order-7~1", "order-7~2"]
    assert all(r.status is RunStatus.COMPLETED for r in runs.values())
    assert runs["order-7~2"].output == 3
    assert runs["order-7~1"].input == [1, 3]


async def test_each_run_of_the_chain_starts_with_an_empty_history(harness: Harness) -> None:
    defs = await harness.start(looping([]))
    await (await harness.running.start(defs.loop, 0, 3, run_id="order-8")).result(timeout=10)

    first = await harness.running.history("order-8")
    last = await harness.running.history("order-8~2")
    assert kinds(first) == ["step_completed", "run_continued"]
    assert first[-1].data == {"run_id": "order-8~1"}
    assert kinds(last) == ["step_completed", "run_completed"]
    assert [e.kind for e in last].count(EventKind.STEP_COMPLETED) == 1
    described = await harness.running.describe("order-8")
    assert "continued as new run order-8~1" in described.next


async def test_a_chain_survives_a_restart_without_forking(harness: Harness) -> None:
    effects: list[int] = []
    defs = await harness.start(looping(effects))
    await (await harness.running.start(defs.loop, 0, 2, run_id="r")).result(timeout=10)
    defs = await harness.restart(looping(effects))
    # Starting the same id again returns the existing run and creates nothing new.
    handle = await harness.running.start(defs.loop, 0, 2, run_id="r")
    assert await handle.result(timeout=10) == 2
    assert sorted(r.run_id for r in await harness.running.list_runs()) == ["r", "r~1"]
    assert effects == [0, 1]


async def test_continue_as_new_in_a_child_run_fails_it_clearly(harness: Harness) -> None:
    defs = await harness.start(looping([]))
    failed = await outcome(await harness.running.start(defs.parent))
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_type == "legato.errors.ChildFailed"
    kid = await harness.running.get_run("kid")
    assert kid.status is RunStatus.FAILED
    assert kid.error is not None and "child run" in kid.error["message"]


async def test_continue_as_new_outside_a_workflow_is_refused() -> None:
    with pytest.raises(legato.errors.OutsideWorkflow, match="continue_as_new"):
        legato.continue_as_new(1)
