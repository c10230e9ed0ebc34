"""``publish_in_transaction_async`` on a real PostgreSQL server: an async service's row and
its event commit together on its own ``psycopg.AsyncConnection``, or neither does; the
connections it cannot use are refused, and nothing is written then."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from tests.fixtures.db import POSTGRES_URL, postgres_url
from tests.fixtures.engine import poll_until

import legato
from legato.errors import ConfigurationError
from legato.storage.admin import migrate_database

pytestmark = pytest.mark.postgres_only


def shop(url: str, seen: Counter[str]) -> legato.App:
    app = legato.App("shop", url)

    @app.on("order.placed", name="warehouse")
    async def warehouse(event: legato.Event) -> None:
        seen[event.subject or ""] += 1

    return app


async def place(
    conn: psycopg.AsyncConnection, app: legato.App, order: str, *, refused: bool = False
) -> legato.Event:
    """The service's own row and its event, in one transaction of its async connection."""
    async with conn.transaction():
        await conn.execute("INSERT INTO orders (id) VALUES (%s)", (order,))
        event = await app.publish_in_transaction_async(
            conn, "order.placed", {"order": order}, subject=order
        )
        if refused:
            raise ValueError("card refused")
    return event


async def test_the_row_and_the_event_commit_together_or_not_at_all() -> None:
    url = postgres_url()
    migrate_database(url)
    seen: Counter[str] = Counter()
    app = shop(url, seen)
    async with app, await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
        await conn.execute("CREATE TEMP TABLE orders (id text PRIMARY KEY)")
        await conn.commit()
        kept = await place(conn, app, "o-1")
        with pytest.raises(ValueError, match="card refused"):
            await place(conn, app, "o-2", refused=True)
        rows = await (await conn.execute("SELECT id FROM orders")).fetchall()
        assert rows == [("o-1",)]
        await poll_until(lambda: seen["o-1"] == 1)
        stored = [s.event for s in await app.list_events(type="order.placed")]
        assert [e.id for e in stored] == [kept.id]
        await asyncio.sleep(0.3)  # an event rolled back would have been delivered by now
        assert seen == {"o-1": 1}


async def test_a_publish_uses_the_connection_in_the_transaction_it_has_open() -> None:
    # The event is written by the caller's own transaction: until it commits, Legato's
    # own connections do not see it; afterwards they do.
    url = postgres_url()
    migrate_database(url)
    async with (
        legato.AsyncClient(url) as client,
        await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn,
    ):
        event = await client.publish_in_transaction_async(conn, "order.placed", {"n": 1})
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert await client.list_events() == []
        await conn.commit()
        assert [s.event.id for s in await client.list_events()] == [event.id]


async def test_many_services_publish_at_once_each_event_delivered_once() -> None:
    url = postgres_url()
    migrate_database(url)
    seen: Counter[str] = Counter()
    app = shop(url, seen)

    async def service(n: int) -> list[str]:
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            await conn.execute("CREATE TEMP TABLE orders (id text PRIMARY KEY)")
            await conn.commit()
            return [(await place(conn, app, f"s{n}-{i}")).subject or "" for i in range(20)]

    async with app:
        placed = await asyncio.gather(*(service(n) for n in range(5)))
        subjects = {s for batch in placed for s in batch}
        assert len(subjects) == 100
        await poll_until(lambda: sum(seen.values()) >= 100, limit=30)
        await asyncio.sleep(0.3)
        assert set(seen) == subjects and set(seen.values()) == {1}


async def test_connections_it_cannot_use_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    url = postgres_url()
    migrate_database(url)
    async with legato.AsyncClient(url) as client:
        with (
            psycopg.connect(POSTGRES_URL) as blocking,
            pytest.raises(ConfigurationError, match=r"takes the psycopg\.AsyncConnection"),
        ):
            await client.publish_in_transaction_async(blocking, "order.placed")
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            with pytest.raises(ConfigurationError, match="await publish_in_transaction_async"):
                client.publish_in_transaction(conn, "order.placed")
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
            with pytest.raises(ConfigurationError, match="autocommit mode"):
                await client.publish_in_transaction_async(conn, "order.placed")
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            with pytest.raises(psycopg.errors.DivisionByZero):
                await conn.execute("SELECT 1 / 0")
            with pytest.raises(ConfigurationError, match="failed already"):
                await client.publish_in_transaction_async(conn, "order.placed")
        other = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
        async with await psycopg.AsyncConnection.connect(other) as conn:
            with pytest.raises(ConfigurationError, match="not to 'test'"):
                await client.publish_in_transaction_async(conn, "order.placed")
        assert await client.list_events() == []

    async with (
        legato.AsyncClient(f"sqlite:///{tmp_path / 'shop.db'}") as on_sqlite,
        await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn,
    ):
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            await on_sqlite.publish_in_transaction_async(conn, "order.placed")
