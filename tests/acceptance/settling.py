"""``settle(app, clock)``: let events, handlers and runs go as far as they can, no time passing.

A stopgap for the example tests. ``FakeClock.settle()`` should do this alone, and today
it stops short (a bug in the core, reported with issue 8's examples):

- a handler's delivery of an event published by another handler (or, on SQLite, by
  ``app.publish``) may still be pending when it returns;
- a run started by an event (``@app.workflow(on=...)``) stays ``pending``, and a run
  woken by a reply stays ``waiting``, until the engine's next poll, in real time.

So this asks the engine what is due (``clock.advance(timedelta(0))`` does) and looks at
the database until nothing is due now. Once ``clock.settle()`` is enough, replace the
calls with it and delete this module.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import legato
from legato.testing import FakeClock, received


async def _is_busy(app: legato.App, clock: FakeClock) -> bool:
    """True while a delivery or a run is due now (at the fake clock's time)."""
    now = clock.now()
    for run in await app.list_runs(limit=10_000, payloads=False):
        # A run the engine holds (running, compensating) is its business: settle() waits
        # for those. Parked ones are not: pending, or waiting and already due.
        status = run.status.value
        if status == "pending" or (
            status == "waiting" and run.wake_at is not None and run.wake_at <= now
        ):
            return True
    for subscription in await app.list_subscriptions():
        for event in await received(app, subscription.name, status="pending"):
            for delivery in await app.deliveries(event.id, event.source):
                if delivery.status == "pending" and (
                    delivery.due_at is None or delivery.due_at <= now
                ):
                    return True
    return False


async def settle(app: legato.App, clock: FakeClock, limit: float = 5.0) -> None:
    """Run everything due now; raise ``TimeoutError`` if it is still busy after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        await clock.advance(timedelta(0))
        if not await _is_busy(app, clock):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still busy after {limit}s of real time")
        await asyncio.sleep(0.01)  # in-flight deliveries finish on the engine's own tasks


async def advance(app: legato.App, clock: FakeClock, delta: timedelta) -> None:
    """``clock.advance(delta)``, then ``settle``: what became due has run."""
    await clock.advance(delta)
    await settle(app, clock)
