"""Many writers at once on PostgreSQL: publishers racing subscribers, and wake-ups.

Real connections to a real server; each app and client has its own store (its own
connections), as separate processes would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import pytest
from tests.fixtures.db import postgres_url
from tests.fixtures.engine import poll_until

import legato
from legato.storage.admin import migrate_database

pytestmark = pytest.mark.postgres_only


def consumer(url: str, seen: Counter[str], name: str) -> legato.App:
    app = legato.App(name, url)

    @app.on("order.placed", name="ledger")
    async def record(event: legato.Event) -> None:
        seen[event.id] += 1

    return app


async def test_ten_publishers_and_two_consumers_every_event_delivered_once() -> None:
    url = postgres_url(readers=1)
    migrate_database(url)
    seen: Counter[str] = Counter()
    consumers = [consumer(url, seen, f"consumer-{i}") for i in range(2)]
    for app in consumers:
        await app.__aenter__()
    publishers = [legato.AsyncClient(url) for _ in range(10)]
    try:
        # Ten publishers commit at once while two consumers deliver: seqs are taken in one
        # order and committed in another (the gap a "position > last seen" reader skips).
        async def publish(client: legato.AsyncClient, p: int) -> list[str]:
            ids = []
            for i in range(0, 300, 30):
                batch = await asyncio.gather(
                    *(client.publish("order.placed", {"p": p, "i": i + j}) for j in range(30))
                )
                ids.extend(e.id for e in batch)
            return ids

        published = await asyncio.gather(*(publish(c, p) for p, c in enumerate(publishers)))
        ids = [i for batch in published for i in batch]
        assert len(set(ids)) == 3000
        await poll_until(lambda: sum(seen.values()) >= 3000, limit=60)
        await asyncio.sleep(0.5)  # a doubled delivery would land meanwhile
        assert set(seen) == set(ids)  # none skipped
        assert [i for i, n in seen.items() if n != 1] == []  # none twice (no failure here)
    finally:
        for client in publishers:
            await client.close()
        for app in consumers:
            await app.__aexit__(None, None, None)


async def test_an_idle_worker_is_woken_by_a_run_another_process_starts() -> None:
    url = postgres_url()
    migrate_database(url)
    # A worker that would not poll again for a minute: only a notification can wake it.
    app = legato.App("idle", url, poll_interval=timedelta(seconds=60))

    @app.workflow(name="hello")
    async def hello(name: str) -> str:
        return f"hello {name}"

    async with app, legato.AsyncClient(url) as client:
        await asyncio.sleep(0.3)  # the worker is idle, waiting for its next poll
        began = time.monotonic()
        handle = await client.start("hello", "ada", run_id="h1")
        assert await handle.result(timeout=10) == "hello ada"
        assert time.monotonic() - began < 10  # not the minute of the next poll


async def test_with_notify_off_work_is_found_by_polling() -> None:
    url = postgres_url() + "&notify=off"
    migrate_database(url)
    app = legato.App("polling", url, poll_interval=timedelta(milliseconds=100))

    @app.workflow(name="hello")
    async def hello(name: str) -> str:
        return f"hello {name}"

    async with app, legato.AsyncClient(url) as client:
        handle = await client.start("hello", "grace", run_id="h2")
        assert await handle.result(timeout=10) == "hello grace"
