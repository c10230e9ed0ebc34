"""A test app whose second step waits for a file: the test decides when a run moves on.

Served by ``legato worker tests.acceptance.gated_app:app`` from the repository root, so
acceptance tests can look at a run while a step is in flight, and cancel it there.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import legato

app = legato.App("gated")


@app.step
def reserve(order: dict[str, Any]) -> str:
    """Reserve something that must be released if the run does not complete."""
    return f"reservation-{order['id']}"


@reserve.compensate
def release(order: dict[str, Any], reservation: str) -> None:
    """Leave a file behind so the test can see the compensation ran."""
    Path(order["gate"]).with_suffix(".released").write_text(reservation)


@app.step(timeout=timedelta(seconds=60))
async def wait_at_gate(order: dict[str, Any]) -> None:
    """Return once the file ``order["gate"]`` exists."""
    gate = Path(order["gate"])
    # Another process (the test) creates the file, so there is no event to await: poll.
    while not gate.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.05)


@app.workflow
async def gated_order(order: dict[str, Any]) -> str:
    """Reserve, wait at the gate, done."""
    await reserve(order)
    await wait_at_gate(order)
    return "done"
