"""The app the API tests run workers of: a run that waits for a signal, one held in a
step until the test lets it through, a run that
diverges on replay (``blocked``, for resume), a run started by an event (its correlation
id is the event's), a subscriber that always fails (dead letters, and their alert), one
that always succeeds, an expectation (its instances), and runs that fail or fail to
compensate until a file (the fix) exists, for the operator actions.

Served by ``legato worker tests.api.api_app:app`` from the repository root.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import legato

app = legato.App(
    "api-tests",
    poll_interval=timedelta(milliseconds=50),
    alert_interval=timedelta(milliseconds=300),
)

DOOMED = legato.Retry(max_attempts=1)


class Unreachable(RuntimeError):
    """What the ``doomed`` subscriber raises on every delivery."""


@app.step
def pack(order_id: str) -> str:
    return f"box-{order_id}"


@app.step
def weigh(order_id: str) -> int:
    return 3


@app.workflow
async def await_signal(order: dict[str, Any]) -> dict[str, Any]:
    """Pack, wait for the signal ``go``, return its payload."""
    box = await pack(order["id"])
    payload = await legato.wait_for_signal("go")
    return {"box": box, "go": payload}


@app.step(timeout=timedelta(seconds=60))
async def hold(gate: str) -> str:
    """Return once the file ``gate`` exists (the test creates it): a step in flight."""
    while not Path(gate).exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.02)
    return "through"


@app.workflow
async def gated(order: dict[str, Any]) -> str:
    """Pack, then hold at the gate ``order["gate"]``."""
    await pack(order["id"])
    return await hold(order["gate"])


@app.workflow
async def drifting(order: dict[str, Any]) -> str:
    """Pack, then wait for ``go``; once the file ``order["drift"]`` exists the code asks
    for ``weigh`` where the history recorded ``pack``: its replay diverges (blocked)."""
    # The test, another process, creates the file: a stat stands in for a deploy.
    if Path(order["drift"]).exists():  # noqa: ASYNC240
        await weigh(order["id"])
    else:
        await pack(order["id"])
    await legato.wait_for_signal("go")
    return "shipped"


NO_RETRY = legato.Retry(max_attempts=1)


class Broken(RuntimeError):
    """What ``charge`` and ``release`` raise until their fix (a file) is deployed."""


@app.step
def reserve(order: dict[str, Any]) -> str:
    return f"res-{order['id']}"


@reserve.compensate(retry=NO_RETRY)
def release(order: dict[str, Any], reservation: str) -> None:
    if not Path(order["release_fixed"]).exists():
        raise Broken(f"cannot release {reservation}")


@app.step(retry=NO_RETRY)
def charge(order: dict[str, Any]) -> str:
    if not Path(order["fixed"]).exists():
        raise Broken(f"cannot charge {order['id']}")
    return f"ch-{order['id']}"


@app.step
def note(order: dict[str, Any]) -> str:
    return f"noted {order['id']}"


@app.workflow
async def pay(order: dict[str, Any]) -> list[str]:
    """Note (nothing to undo), then charge: fails until ``order["fixed"]`` exists."""
    return [await note(order), await charge(order)]


@app.workflow
async def buy(order: dict[str, Any]) -> list[str]:
    """Reserve (undone by release, which fails until ``order["release_fixed"]``
    exists), then charge: without the charge's fix, ends ``compensation_failed``."""
    return [await reserve(order), await charge(order)]


@app.workflow(name="on_order", on="api.order.placed")
async def on_order(event: legato.Event) -> str:
    """A run per ``api.order.placed`` event (the event's correlation id is the run's)."""
    return f"handled {event.subject}"


@app.on("api.doomed", name="doomed", retry=DOOMED)
async def doomed(event: legato.Event) -> None:
    raise Unreachable(f"nobody answers for {event.subject}")


@app.on("api.audited", name="audit")
async def audit(event: legato.Event) -> None:
    """Every ``api.audited`` event: always delivered."""


app.expect(
    "api-paid-then-shipped",
    after="api.paid",
    then="api.shipped",
    within=timedelta(hours=1),
)
