"""The app that ``test_presumed_dead.py`` serves with real worker processes.

A two-step workflow whose steps take ``$PRESUMED_DEAD_STEP_S`` seconds each, on a 1 s
lease, so a worker stopped for a couple of seconds is presumed dead by the others. A run
whose input has ``"block_s"`` blocks its worker's event loop that long with
``time.sleep`` in an ``async def`` step (the stall of issue 7), once: the first execution
creates the marker file ``$PRESUMED_DEAD_MARKER``, and a replay elsewhere does not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import timedelta
from typing import Any

import legato

STEP_ENV = "PRESUMED_DEAD_STEP_S"
MARKER_ENV = "PRESUMED_DEAD_MARKER"
CONCURRENCY = 10

app = legato.App("presumed-dead", lease=timedelta(seconds=1), max_concurrent_runs=CONCURRENCY)


def _step_s() -> float:
    return float(os.environ.get(STEP_ENV, "1.0"))


def _block_once(order: dict[str, Any]) -> None:
    block_s = order.get("block_s")
    if not block_s:
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(os.environ[MARKER_ENV], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        time.sleep(block_s)  # on purpose: the whole worker stalls, heartbeats included


@app.step(name="prepare")
async def prepare(order: dict[str, Any]) -> str:
    _block_once(order)
    await asyncio.sleep(_step_s())
    return f"prepared {order['id']}"


@app.step(name="finish")
async def finish(order: dict[str, Any]) -> str:
    await asyncio.sleep(_step_s())
    return f"finished {order['id']}"


@app.workflow(name="presumed_dead_flow")
async def presumed_dead_flow(order: dict[str, Any]) -> dict[str, str]:
    return {"prepare": await prepare(order), "finish": await finish(order)}
