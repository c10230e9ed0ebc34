"""legato.testing's fault injection and crash helper, used the way a user would."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database

import legato
from legato.errors import RunFailed, StepTimeout
from legato.model import EventKind
from legato.testing import FakeClock, Faults, InjectedFault, WorkerProcess

REPO = Path(__file__).resolve().parents[2]


async def test_faults_fail_a_named_step_for_n_attempts_then_let_it_run() -> None:
    faults = Faults().fail("charge", times=2, error=ConnectionError("gateway down"))
    clock = FakeClock()
    app = legato.App("t", "memory://", clock=clock, hooks=[faults])
    calls: list[str] = []

    @app.step(name="charge", retry=legato.Retry(max_attempts=3))
    async def charge() -> str:
        calls.append("charge")
        return "paid"

    @app.workflow(name="wf")
    async def wf() -> str:
        return await charge()

    async with app:
        handle = await app.start(wf)
        await clock.advance(timedelta(minutes=5))
        assert await handle.result(timeout=5) == "paid"
        history = await app.history(handle.run_id)
    failures = [e for e in history if e.kind is EventKind.STEP_FAILED]
    assert [(e.attempt, e.data["type"]) for e in failures] == [(1, "ConnectionError")] * 1 + [
        (2, "ConnectionError")
    ]
    assert faults.injected("charge") == [1, 2]
    assert calls == ["charge"]  # the real body ran once, on the third attempt


async def test_faults_default_error_and_compensation_faults() -> None:
    faults = Faults().fail("book", times=1).fail("reserve.compensate", times=1)
    clock = FakeClock()
    app = legato.App("t", "memory://", clock=clock, hooks=[faults])
    undone: list[str] = []

    @app.step(name="reserve")
    async def reserve() -> str:
        return "seat"

    @reserve.compensate
    async def release(seat: str) -> None:
        undone.append(seat)

    @app.step(name="book", retry=legato.Retry(max_attempts=1))
    async def book() -> None:
        return None

    @app.workflow(name="wf")
    async def wf() -> None:
        await reserve()
        await book()

    async with app:
        handle = await app.start(wf)
        await clock.advance(timedelta(minutes=5))
        with pytest.raises(RunFailed) as failed:
            await handle.result(timeout=5)
    assert failed.value.status == "compensated"
    assert failed.value.error_type == f"{InjectedFault.__module__}.InjectedFault"
    assert undone == ["seat"]  # after one injected failure of the compensation
    assert faults.injected("reserve.compensate") == [1]


async def test_faults_hang_is_cut_by_the_step_timeout() -> None:
    faults = Faults().hang("slow", times=1)
    clock = FakeClock()
    app = legato.App("t", "memory://", clock=clock, hooks=[faults])

    @app.step(name="slow", timeout=timedelta(seconds=30), retry=legato.Retry(max_attempts=2))
    async def slow() -> str:
        return "done"

    @app.workflow(name="wf")
    async def wf() -> str:
        return await slow()

    async with app:
        handle = await app.start(wf)
        await clock.advance(timedelta(minutes=2))
        assert await handle.result(timeout=5) == "done"
        history = await app.history(handle.run_id)
    failed = [e for e in history if e.kind is EventKind.STEP_FAILED]
    assert [e.data["type"] for e in failed] == [f"{StepTimeout.__module__}.StepTimeout"]


def _effects(ledger: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT key, step FROM effects ORDER BY rowid").fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_step:charge", "before_timer"])
def test_worker_crashed_at_a_named_point_finishes_the_run_after_restart(
    tmp_path: Path, point: str
) -> None:
    ledger = tmp_path / "ledger.db"
    database = fresh_database(tmp_path, "runs.db")
    env = {"KIT_LEDGER": str(ledger)}
    worker = WorkerProcess(
        "tests.integration.kit_app:app", database, crash_at=point, cwd=str(REPO), env=env
    )
    with legato.Client(database) as client, worker:
        worker.wait_ready("order")
        run_id = client.start("order", "o-1", run_id="o-1").run_id
        assert worker.wait_for_crash(timeout=30) == -9
        assert client.get_run(run_id).status.value in ("running", "sleeping")
        worker.restart()
        assert client.result(run_id, timeout=30) == {
            "payment": "paid-o-1",
            "shipment": "shipped-o-1",
        }
    effects = _effects(ledger)
    # charge's completion was durable before the crash: it never runs again.
    assert [step for _, step in effects] == ["charge", "ship"]
