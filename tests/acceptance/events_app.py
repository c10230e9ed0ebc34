"""A test app for ``legato events``, ``legato deadletters`` and ``legato flows``.

Subscribers of ``order.*`` events that succeed, die or stay pending; a trigger workflow;
a request answered (or not) by another trigger. Tests publish with the CLI and let ``deliver``
run the app in this process, on the same SQLite file, on a ``FakeClock`` started at the
real time: every due delivery is handled and retries happen when the clock is advanced,
with no sleeping. Then the CLI reads what happened.

Handlers named in ``HEALTHY`` succeed; ``billing`` and ``warehouse`` fail otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import legato
from legato.testing import FakeClock

HEALTHY: set[str] = set()
"""Subscriptions whose handler succeeds now (``billing``, ``warehouse``)."""

BILLING_RETRY = legato.Retry(
    max_attempts=2, initial_interval=timedelta(milliseconds=10), jitter=False
)
"""Two quick attempts: ``billing`` is a dead letter once the clock moves a second."""

WAREHOUSE_RETRY = legato.Retry(
    max_attempts=3, initial_interval=timedelta(hours=1), max_interval=timedelta(hours=1)
)
"""An hour between attempts: ``warehouse`` stays pending for the whole test."""


class CardDeclined(RuntimeError):
    """What ``billing`` raises while it is not healthy."""


def make_app(database: str, clock: FakeClock | None = None) -> legato.App:
    """The app on ``database``; its subscriptions and workflows register when it runs."""
    app = legato.App("shop", database, clock=clock)

    @app.on("order.*", name="audit")
    async def audit(event: legato.Event) -> None:
        """Every order event: always succeeds."""

    @app.on("order.placed", name="billing", retry=BILLING_RETRY)
    async def billing(event: legato.Event) -> None:
        if "billing" not in HEALTHY:
            raise CardDeclined(f"card declined for {event.subject}")

    @app.on("order.placed", name="warehouse", retry=WAREHOUSE_RETRY)
    async def warehouse(event: legato.Event) -> None:
        if "warehouse" not in HEALTHY:
            raise ConnectionError("warehouse offline")

    @app.on("order.packed", name="notify")
    async def notify(event: legato.Event) -> None:
        await legato.publish("customer.notified", {"order": event.data["order"]})

    @app.workflow(name="fulfil", on="order.placed")
    async def fulfil(event: legato.Event) -> str:
        await legato.publish("order.packed", {"order": event.subject}, subject=event.subject)
        return "packed"

    @app.workflow(name="stock", on="stock.check")
    async def stock(event: legato.Event) -> str:
        """Answers every stock check but those of the sku ``unknown``: they go unanswered."""
        if event.data["sku"] == "unknown":
            return "ignored"
        await legato.reply(event, "stock.ok", {"sku": event.data["sku"], "left": 3})
        return "answered"

    @app.workflow(name="checkout")
    async def checkout(order: dict[str, Any]) -> str:
        await legato.publish("checkout.started", {"order": order["id"]})
        answer = await legato.request(
            "stock.check",
            {"sku": order["sku"]},
            reply=("stock.ok", "stock.out"),
            timeout=timedelta(minutes=5),
        )
        return answer.type

    return app


async def _deliver(
    database: str,
    start: datetime,
    advance: timedelta,
    then: Callable[[legato.App], Awaitable[Any]] | None,
) -> None:
    clock = FakeClock(start)
    app = make_app(database, clock)
    async with app:
        if then is not None:
            await then(app)
        await clock.settle()
        if advance:
            await clock.advance(advance)
        await clock.settle()


def deliver(
    database: str,
    *,
    healthy: Iterable[str] = (),
    advance: timedelta = timedelta(seconds=2),
    start: datetime | None = None,
    then: Callable[[legato.App], Awaitable[Any]] | None = None,
) -> None:
    """Run the app on ``database`` until what is due is delivered, moving its clock by
    ``advance`` (``billing`` dies, ``warehouse`` waits an hour); ``then`` runs first,
    with the app running. The clock starts at ``start`` (default: now)."""
    HEALTHY.clear()
    HEALTHY.update(healthy)
    try:
        asyncio.run(_deliver(database, start or datetime.now(UTC), advance, then))
    finally:
        HEALTHY.clear()


def start_checkout(run_id: str, sku: str) -> Callable[[legato.App], Awaitable[Any]]:
    """For ``deliver(then=...)``: start a ``checkout`` run that asks about ``sku``."""

    async def start(app: legato.App) -> None:
        await app.start("checkout", {"id": run_id, "sku": sku}, run_id=run_id)

    return start


def register(database: str) -> None:
    """Register the app's subscriptions and workflows on ``database`` (creating it)."""
    deliver(database, advance=timedelta(0))
