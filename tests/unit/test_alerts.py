"""Alerts on what is stuck: raised once (with a ``legato.alert.raised`` event), resolved
when the cause clears (``legato.alert.resolved``) — on every backend, with ``FakeClock``."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import legato
from legato.bus.alerts import RAISED, RESOLVED
from legato.engine.liveness import this_host
from legato.model.alerts import AlertKind, AlertStatus
from legato.storage.base import NewRun
from legato.testing import FakeClock, received

TICK = timedelta(seconds=11)  # past one alert interval (10 s)


def watch_alerts(app: legato.App) -> object:
    @app.on("legato.alert.*")
    async def alerts(event: legato.Event) -> None:
        pass

    return alerts


async def alert_of(app: legato.App, kind: AlertKind) -> legato.Alert:
    [alert] = await app.list_alerts(kind=kind)
    return alert


async def test_a_run_with_no_progress_is_stuck_once_and_resolved_when_it_moves(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    watcher = watch_alerts(app)
    gate = asyncio.Event()

    @app.step
    async def call_partner(order: str) -> str:
        await gate.wait()  # the partner does not answer
        return "ok"

    @app.workflow(stuck_after=timedelta(minutes=5))
    async def sync_order(order: str) -> str:
        return await call_partner(order)

    async with app:
        run = await app.start(sync_order, "o-1", run_id="sync-o-1")
        await clock.advance(timedelta(minutes=4))
        assert await app.list_alerts() == []
        await clock.advance(timedelta(minutes=2))
        alert = await alert_of(app, AlertKind.STUCK_RUN)
        assert alert.status is AlertStatus.RAISED
        assert alert.subject == "sync-o-1"
        assert "has made no progress for 6m" in alert.summary
        await clock.advance(TICK * 3)  # later looks: still raised, raised once
        assert (await alert_of(app, AlertKind.STUCK_RUN)).times == 1
        assert [e.type for e in await received(app, watcher)] == [RAISED]

        gate.set()
        assert await run.result(timeout=5) == "ok"
        await clock.advance(TICK)
        alert = await alert_of(app, AlertKind.STUCK_RUN)
        assert alert.status is AlertStatus.RESOLVED
        assert [e.type for e in await received(app, watcher)] == [RAISED, RESOLVED]
        raised, resolved = await received(app, watcher)
        assert raised.data["kind"] == "stuck_run" and raised.subject == "stuck_run:sync-o-1"
        assert resolved.data["alert_id"] == "stuck_run:sync-o-1"


async def test_a_sleeping_run_is_not_stuck_before_its_timer(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app

    @app.workflow(stuck_after=timedelta(minutes=5))
    async def reminder() -> str:
        await legato.sleep(timedelta(hours=2))
        return "sent"

    async with app:
        run = await app.start(reminder)
        await clock.advance(timedelta(hours=1))
        assert await app.list_alerts() == []
        await clock.advance(timedelta(hours=1, minutes=1))
        assert await run.result(timeout=5) == "sent"
        assert await app.list_alerts() == []


async def test_a_dead_letter_is_alerted_and_resolved_by_a_redrive_that_delivers(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    broken = [True]

    @app.on("order.placed", name="bill", retry=legato.Retry(max_attempts=1))
    async def bill(event: legato.Event) -> None:
        if broken[0]:
            raise RuntimeError("billing API down")

    async with app:
        placed = await app.publish("order.placed", {"id": 1})
        await clock.advance(TICK)
        alert = await alert_of(app, AlertKind.DEAD_LETTER)
        assert alert.status is AlertStatus.RAISED
        assert "billing API down" in alert.summary
        assert alert.details["subscription"] == "bill"

        broken[0] = False
        assert await app.redrive(placed.id) == 1
        await clock.advance(TICK)
        assert (await alert_of(app, AlertKind.DEAD_LETTER)).status is AlertStatus.RESOLVED


async def test_a_violated_expectation_is_alerted_and_resolved_by_a_late_fulfilment(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app
    app.expect(
        "paid-learner-is-enrolled",
        after="purchase.completed",
        then="enrollment.created",
        within=timedelta(minutes=5),
    )
    async with app:
        await app.publish("purchase.completed", {}, correlationid="order-1")
        await clock.advance(timedelta(minutes=6))
        alert = await alert_of(app, AlertKind.EXPECTATION_VIOLATED)
        assert alert.status is AlertStatus.RAISED
        assert alert.details["key"] == "order-1"
        await app.publish("enrollment.created", {}, correlationid="order-1")
        await clock.advance(TICK)
        assert (await alert_of(app, AlertKind.EXPECTATION_VIOLATED)).status is (
            AlertStatus.RESOLVED
        )


async def test_runs_that_need_an_operator_and_unrouted_events_are_alerted(
    backend_app: legato.App, clock: FakeClock
) -> None:
    app = backend_app

    @app.step(retry=legato.Retry(max_attempts=1))
    async def charge() -> str:
        return "ch-1"

    @charge.compensate
    async def refund(result: str) -> None:
        raise RuntimeError("refunds are down")

    @app.step(retry=legato.Retry(max_attempts=1))
    async def ship() -> None:
        raise RuntimeError("no stock")

    @app.workflow
    async def order() -> None:
        await charge()
        await ship()

    async with app:
        run = await app.start(order, run_id="order-1")
        await app.publish("invoice.archived", {"id": 7})  # nobody subscribes
        for _ in range(30):  # the refund's retries, with their backoff
            if (await app.get_run(run.run_id)).status is legato.RunStatus.COMPENSATION_FAILED:
                break
            await clock.advance(TICK)
        assert (await app.get_run(run.run_id)).status is legato.RunStatus.COMPENSATION_FAILED
        await clock.advance(TICK)
        needs = await alert_of(app, AlertKind.RUN_NEEDS_OPERATOR)
        assert needs.subject == "order-1" and "compensation_failed" in needs.summary
        unrouted = await alert_of(app, AlertKind.UNROUTED_EVENT)
        assert unrouted.subject == "invoice.archived"
        # Legato's own events (the alerts themselves) are not alerted as unrouted.
        assert len(await app.list_alerts()) == 2


async def test_a_worker_presumed_dead_holding_runs_is_alerted(
    memory_store: object, clock: FakeClock
) -> None:
    # A worker of this host whose process is gone, holding a run.
    store = memory_store
    gone_pid = 2**22 + 12345  # above Linux's pid_max: no process has it
    await store.register_worker("gone:1", this_host(), gone_pid, time.time())  # type: ignore[attr-defined]
    await store.write(  # type: ignore[attr-defined]
        [NewRun("r-1", "sync_order", "running", b"[]", clock.time(), None, "gone:1")]
    )
    app = legato.App("shop", store, clock=clock)  # type: ignore[arg-type]

    @app.workflow(name="sync_order")
    async def sync_order() -> str:
        return "done"

    async with app:
        await clock.advance(TICK)
        alert = await alert_of(app, AlertKind.DEAD_WORKER)
        assert alert.subject == "gone:1"
        assert alert.details["released"] == 1
        await clock.advance(TICK)  # its run was taken over: resolved
        assert (await alert_of(app, AlertKind.DEAD_WORKER)).status is AlertStatus.RESOLVED
        assert (await app.get_run("r-1")).status is legato.RunStatus.COMPLETED


def test_alert_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="alert_interval"):
        legato.App("shop", "memory://", alert_interval=timedelta(0))
    with pytest.raises(legato.errors.DefinitionError, match="stuck_after"):
        app = legato.App("shop", "memory://")

        @app.workflow(stuck_after=timedelta(seconds=-1))
        async def w() -> None:
            pass
