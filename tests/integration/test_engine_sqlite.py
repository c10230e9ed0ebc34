"""The engine on real databases (a SQLite file; PostgreSQL where `sql_harness` says, and
wherever ``fresh_database`` gives a schema in the PostgreSQL pass): sagas, restarts, many
concurrent runs, reopening."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fixtures.db import fresh_database
from tests.fixtures.engine import Harness, advance, kinds, of_kind, outcome, poll_until, seconds

import legato
from legato.model import EventKind, RunStatus
from legato.storage import open_store
from legato.storage.base import Store
from legato.testing import FakeClock

HOURLY = legato.Retry(
    max_attempts=5, initial_interval=seconds(3600), max_interval=seconds(3600), jitter=False
)


def purchase(calls: Counter[str], log: list[str], *, enroll_fails_first: bool = False):
    """authorize (undo: refund) -> reserve_seat (undo: free_seat) -> enroll -> notify;
    an order marked ``full`` fails for good after reserve_seat."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="authorize")
        async def authorize(order: dict[str, object]) -> str:
            calls["authorize"] += 1
            return f"pay-{order['id']}"

        @authorize.compensate
        async def refund(order: dict[str, object], payment: str) -> None:
            log.append(f"refund {payment}")

        @app.step(name="reserve_seat")
        def reserve_seat(order: dict[str, object]) -> str:
            calls["reserve_seat"] += 1
            return f"seat-{order['id']}"

        @reserve_seat.compensate
        def free_seat(order: dict[str, object], seat: str) -> None:
            log.append(f"free {seat}")

        @app.step(name="enroll", retry=HOURLY)
        async def enroll(order: dict[str, object]) -> None:
            calls["enroll"] += 1
            if enroll_fails_first and calls["enroll"] == 1:
                raise ConnectionError("registry down")

        @app.step(name="fail_for_good", retry=legato.Retry(max_attempts=1))
        async def fail_for_good() -> None:
            raise ValueError("course full")

        @app.step(name="notify")
        async def notify(order: dict[str, object], payment: str) -> dict[str, object]:
            calls["notify"] += 1
            return {"order": order["id"], "payment": payment}

        @app.workflow(name="purchase")
        async def purchase_wf(order: dict[str, object]) -> dict[str, object]:
            payment = await authorize(order)
            await reserve_seat(order)
            if order.get("full"):
                await fail_for_good()
            await enroll(order)
            return await notify(order, payment)

        return SimpleNamespace(purchase=purchase_wf)

    return define


async def test_happy_path_completes_on_sql(sql_harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await sql_harness.start(purchase(calls, []))
    handle = await sql_harness.running.start(defs.purchase, {"id": 1}, run_id="p-1")
    assert await outcome(handle) == {"order": 1, "payment": "pay-1"}
    run = await sql_harness.running.store.get_run("p-1")
    assert run is not None and run.status is RunStatus.COMPLETED
    assert calls == {"authorize": 1, "reserve_seat": 1, "enroll": 1, "notify": 1}


async def test_failure_compensates_in_reverse_order_on_sql(sql_harness: Harness) -> None:
    log: list[str] = []
    defs = await sql_harness.start(purchase(Counter(), log))
    handle = await sql_harness.running.start(defs.purchase, {"id": 2, "full": True})
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert (failed.status, failed.error_type, failed.step_name) == (
        "compensated",
        "ValueError",
        "fail_for_good",
    )
    assert log == ["free seat-2", "refund pay-2"]
    history = await sql_harness.running.history(handle.run_id)
    assert [e.name for e in of_kind(history, EventKind.COMPENSATION_COMPLETED)] == [
        "reserve_seat",
        "authorize",
    ]


async def test_restart_resumes_without_rerunning_recorded_steps(
    sql_harness: Harness, clock: FakeClock
) -> None:
    # Given a run waiting an hour to retry enroll, after authorize and reserve_seat
    calls: Counter[str] = Counter()
    define = purchase(calls, [], enroll_fails_first=True)
    defs = await sql_harness.start(define)
    handle = await sql_harness.running.start(defs.purchase, {"id": 3})
    store = sql_harness.running.store

    async def enroll_failed_once() -> bool:
        return bool(of_kind(await store.history(handle.run_id), EventKind.STEP_FAILED))

    await poll_until(enroll_failed_once)
    # When the process stops and another starts on the same file
    await sql_harness.restart(define)

    async def waits_for_its_retry() -> bool:
        # Either in memory with a timer on the clock, or parked in the database until then.
        if clock.pending:
            return True
        run = await store.get_run(handle.run_id)
        return (
            run is not None
            and run.owner is None
            and run.wake_at is not None
            and run.wake_at > clock.now()
        )

    await poll_until(waits_for_its_retry)
    assert calls == {"authorize": 1, "reserve_seat": 1, "enroll": 1}
    await advance(clock, seconds(3600))
    # Then only the remaining work runs
    result = await outcome(sql_harness.running.handle(handle.run_id))
    assert result == {"order": 3, "payment": "pay-3"}
    assert calls == {"authorize": 1, "reserve_seat": 1, "enroll": 2, "notify": 1}


async def test_idempotent_start_on_sql(sql_harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await sql_harness.start(purchase(calls, []))
    first = await sql_harness.running.start(defs.purchase, {"id": 4}, run_id="p-4")
    await outcome(first)
    again = await sql_harness.running.start(defs.purchase, {"id": 4}, run_id="p-4")
    assert await outcome(again) == {"order": 4, "payment": "pay-4"}
    assert calls["authorize"] == 1
    assert len(await sql_harness.running.store.list_runs()) == 1


@pytest.mark.sqlite_only
async def test_app_accepts_a_sqlite_url(
    make_app: Callable[[Store | str], legato.App], sqlite_url: str, sqlite_path: Path
) -> None:
    app = make_app(sqlite_url)
    defs = purchase(Counter(), [])(app)
    async with app:
        handle = await app.start(defs.purchase, {"id": 5})
        assert await outcome(handle) == {"order": 5, "payment": "pay-5"}
    assert await asyncio.to_thread(sqlite_path.exists)


async def test_saga_on_either_backend(backend_app: legato.App) -> None:
    log: list[str] = []
    defs = purchase(Counter(), log)(backend_app)
    async with backend_app:
        ok = await backend_app.start(defs.purchase, {"id": 6})
        bad = await backend_app.start(defs.purchase, {"id": 7, "full": True})
        assert await outcome(ok) == {"order": 6, "payment": "pay-6"}
        assert (await outcome(bad)).status == "compensated"
    assert log == ["free seat-7", "refund pay-7"]


async def test_two_hundred_concurrent_runs_complete_with_their_own_history(
    tmp_path: Path, make_app: Callable[[Store | str], legato.App]
) -> None:
    url = fresh_database(tmp_path)
    calls: Counter[str] = Counter()
    app = make_app(open_store(url))
    defs = purchase(calls, [])(app)
    async with app:
        handles = await asyncio.gather(
            *(app.start(defs.purchase, {"id": i}, run_id=f"run-{i:03}") for i in range(200))
        )
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
        assert results == [{"order": i, "payment": f"pay-{i}"} for i in range(200)]
        histories = await app.store.histories([h.run_id for h in handles])
    assert calls == {"authorize": 200, "reserve_seat": 200, "enroll": 200, "notify": 200}
    for i, handle in enumerate(handles):
        history = histories[handle.run_id]
        assert all(e.run_id == handle.run_id for e in history)
        positions = [e.pos for e in history]
        assert positions == sorted(set(positions))
        outcomes = [e for e in history if e.kind is not EventKind.STEP_STARTED]
        assert [(e.kind.value, e.key, e.name) for e in outcomes] == [
            ("step_completed", "1", "authorize"),
            ("step_completed", "2", "reserve_seat"),
            ("step_completed", "3", "enroll"),
            ("step_completed", "4", "notify"),
            ("run_completed", None, None),
        ]
        assert outcomes[0].data["result"] == f"pay-{i}"
        assert outcomes[-1].data == {"order": i, "payment": f"pay-{i}"}

    # Reopening the database after the app stopped shows every run completed.
    reopened = open_store(url)
    await reopened.open()
    try:
        runs = await reopened.list_runs(limit=1000)
        assert len(runs) == 200
        assert {r.status for r in runs} == {RunStatus.COMPLETED}
        assert {r.run_id for r in runs} == {f"run-{i:03}" for i in range(200)}
        assert all(r.owner is None for r in runs)
        one = await reopened.history("run-042")
        assert kinds(one)[-1] == "run_completed"
    finally:
        await reopened.close()


async def test_cancel_on_sql_compensates(sql_harness: Harness) -> None:
    calls: Counter[str] = Counter()
    log: list[str] = []
    defs = await sql_harness.start(purchase(calls, log, enroll_fails_first=True))
    handle = await sql_harness.running.start(defs.purchase, {"id": 8})
    await poll_until(lambda: calls["enroll"] == 1)
    store = sql_harness.running.store

    async def waiting_to_retry() -> bool:
        return bool(of_kind(await store.history(handle.run_id), EventKind.STEP_FAILED))

    await poll_until(waiting_to_retry)
    await sql_harness.running.cancel(handle.run_id)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "cancelled"
    assert log == ["free seat-8", "refund pay-8"]
    run = await store.get_run(handle.run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
