"""The app that ``test_storage_outage.py`` serves with a real ``legato worker`` process.

Each run takes a few short steps, so runs are in flight (between two writes) when the
test fills the disk under the worker.
"""

from __future__ import annotations

import asyncio

import legato

app = legato.App("outage")


@app.step(name="tick")
async def tick(n: int) -> int:
    await asyncio.sleep(0.1)
    return n + 1


@app.workflow(name="ticks")
async def ticks(count: int) -> int:
    n = 0
    for _ in range(count):
        n = await tick(n)
    return n
