"""Workflows whose runs are frozen, mid-flight, in ``fixtures/history-v1.db``.

``make_history_v1.py`` ran these with Legato 0.1.0 as of commit babe3db (the history
format before issue 7's typed records) and left every run parked at a different kind
of call. ``test_history_compat.py`` opens a copy of that database with the code of today
and finishes every run: a database written by the previous release must still replay.
Keep these definitions as they are: the recorded histories were made by them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import legato

FAIL_ENV = "FORMAT_V1_FAIL"  # set while making the fixture: flaky steps fail then
HOUR = timedelta(hours=1)


def define(app: legato.App) -> None:
    """Register the fixture's workflows and steps on ``app``."""

    @app.step(name="reserve")
    async def reserve(order: str) -> str:
        return f"res-{order}"

    @reserve.compensate
    async def release(order: str, reservation: str) -> None:
        if os.environ.get(FAIL_ENV):
            raise ConnectionError("inventory service down")

    @app.step(name="ship")
    def ship(order: str, extra: Any = None) -> dict[str, Any]:
        return {"shipped": order, "extra": extra}

    @app.step(
        name="flaky",
        retry=legato.Retry(max_attempts=3, initial_interval=HOUR, max_interval=HOUR, jitter=False),
    )
    async def flaky(order: str) -> str:
        if os.environ.get(FAIL_ENV):
            raise ConnectionError("payment service down")
        return f"paid-{order}"

    @app.step(name="refuse", retry=legato.Retry(max_attempts=1))
    async def refuse(order: str) -> None:
        raise ValueError(f"cannot fulfil {order}")

    @app.workflow(name="sleeper")
    async def sleeper(order: str) -> dict[str, Any]:
        reservation = await reserve(order)
        stamp = legato.now().isoformat()
        token = str(legato.uuid())
        await legato.sleep(timedelta(days=1))
        shipped = await ship(order)
        return {"reservation": reservation, "stamp": stamp, "token": token, **shipped}

    @app.workflow(name="waiter")
    async def waiter(order: str) -> dict[str, Any]:
        await reserve(order)
        go = await legato.wait_for_signal("go", timeout=timedelta(days=30))
        return await ship(order, go)

    @app.workflow(name="reviewer")
    async def reviewer(order: str) -> dict[str, Any]:
        decision = await legato.human_task(
            "review",
            {"order": order},
            assignee="ops",
            form={"type": "object", "required": ["approve"]},
        )
        return await ship(order, decision)

    @app.workflow(name="retrier")
    async def retrier(order: str) -> str:
        return await flaky(order)

    @app.workflow(name="saga")
    async def saga(order: str) -> None:
        await reserve(order)
        await refuse(order)  # fails for good -> release (down while making the fixture)

    @app.workflow(name="kid")
    async def kid(order: str) -> Any:
        return await legato.wait_for_signal("kid-go", timeout=timedelta(days=30))

    @app.workflow(name="parent")
    async def parent(order: str) -> dict[str, Any]:
        got = await legato.child(kid, order, run_id=f"kid-{order}")
        return {"child said": got}

    @app.workflow(name="done")
    async def done(order: str) -> dict[str, Any]:
        return await ship(order)
