"""``publish_in_transaction`` on a real SQLite file: the caller's row and the event commit
together or not at all, bad connections are refused, and a handler's own writes made this
way have one effect however often it is delivered.

Those are about the ``sqlite3.Connection`` a caller hands in (``sqlite_only``; the
PostgreSQL side is ``test_postgres_outbox_async.py``'s). A fresh client's dead letters are
about any database, and run on PostgreSQL too."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database
from tests.fixtures.engine import advance, poll_until

import legato
from legato.errors import ConfigurationError, MigrationRequired
from legato.testing import FakeClock


@pytest.fixture
async def app(sqlite_path: Path, clock: FakeClock) -> legato.App:
    app = legato.App("shop", f"sqlite:///{sqlite_path}", clock=clock)
    conn = sqlite3.connect(sqlite_path)
    async with legato.AsyncClient(f"sqlite:///{sqlite_path}") as client:
        await client.list_runs()  # creates the schema
    conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE shipments (key TEXT PRIMARY KEY, order_id TEXT)")
    conn.commit()
    conn.close()
    return app


def place(path: Path, app: legato.App, order_id: str, *, commit: bool) -> legato.Event:
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO orders (id) VALUES (?)", (order_id,))
        event = app.publish_in_transaction(conn, "order.placed", {"id": order_id}, id=order_id)
        (conn.commit if commit else conn.rollback)()
        return event
    finally:
        conn.close()


@pytest.mark.sqlite_only
async def test_the_event_commits_with_the_callers_row_and_rolls_back_with_it(
    app: legato.App, sqlite_path: Path, clock: FakeClock
) -> None:
    got: list[str] = []

    @app.on("order.placed")
    async def ship(event: legato.Event) -> None:
        got.append(event.id)

    async with app:
        place(sqlite_path, app, "kept", commit=True)
        place(sqlite_path, app, "undone", commit=False)
        await poll_until(lambda: got == ["kept"])
        await advance(clock, timedelta(seconds=5))
        events = [e.event.id for e in await app.list_events()]
    assert got == ["kept"]
    assert events == ["kept"]
    conn = sqlite3.connect(sqlite_path)
    assert conn.execute("SELECT id FROM orders").fetchall() == [("kept",)]
    conn.close()


@pytest.mark.sqlite_only
async def test_a_connection_that_cannot_carry_the_event_is_refused_and_writes_nothing(
    app: legato.App, sqlite_path: Path, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "other.db")
    with pytest.raises(ConfigurationError, match="not to"):
        app.publish_in_transaction(other, "order.placed", {})
    other.close()
    autocommit = sqlite3.connect(sqlite_path, isolation_level=None)
    with pytest.raises(ConfigurationError, match="autocommit"):
        app.publish_in_transaction(autocommit, "order.placed", {})
    autocommit.close()
    with pytest.raises(ConfigurationError, match=r"sqlite3\.Connection"):
        app.publish_in_transaction(object(), "order.placed", {})
    memory = legato.App("m", "memory://")
    with pytest.raises(ConfigurationError, match="SQL database"):
        memory.publish_in_transaction(sqlite3.connect(sqlite_path), "order.placed", {})
    assert await app.list_events() == []


@pytest.mark.sqlite_only
async def test_a_database_never_opened_by_legato_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    app = legato.App("shop", f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    with pytest.raises(MigrationRequired):
        app.publish_in_transaction(conn, "order.placed", {})
    conn.close()


@pytest.mark.sqlite_only
async def test_an_explicit_transaction_in_autocommit_mode_carries_the_event(
    app: legato.App, sqlite_path: Path
) -> None:
    conn = sqlite3.connect(sqlite_path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO orders (id) VALUES ('o-1')")
    app.publish_in_transaction(conn, "order.placed", {}, id="o-1")
    conn.execute("ROLLBACK")
    conn.close()
    assert await app.list_events() == []


@pytest.mark.sqlite_only
async def test_a_handler_writing_through_publish_in_transaction_has_one_effect_when_redriven(
    app: legato.App, sqlite_path: Path, clock: FakeClock
) -> None:
    calls = Counter[str]()

    @app.on("order.placed", retry=legato.Retry(max_attempts=1))
    def ship(event: legato.Event) -> None:
        calls["ship"] += 1
        key = legato.delivery().idempotency_key
        conn = sqlite3.connect(sqlite_path)
        try:
            created = conn.execute(
                "INSERT INTO shipments VALUES (?, ?) ON CONFLICT DO NOTHING", (key, event.id)
            ).rowcount
            if created:
                app.publish_in_transaction(conn, "shipment.created", {}, id=f"ship:{key}")
            conn.commit()
        finally:
            conn.close()
        if calls["ship"] < 3:
            raise ConnectionError("the answer was lost after the effect committed")

    async with app:
        order = await app.publish("order.placed", {}, id="o-1")
        for failed in (1, 2):  # dead, redriven, dead again, redriven again
            await poll_until(lambda: calls["ship"] == failed)  # noqa: B023 - awaited here
            await poll_until(app.list_dead_letters)
            assert await app.redrive(order.id) == 1
            await advance(clock, timedelta(seconds=1))

        async def delivered() -> bool:
            [delivery] = await app.deliveries(order.id, order.source)
            return delivery.status.value == "done"

        await poll_until(delivered)  # the third call returned, and its settle committed
        shipped = await app.list_events(type="shipment.created")
    assert calls["ship"] == 3
    assert len(shipped) == 1
    conn = sqlite3.connect(sqlite_path)
    assert conn.execute("SELECT count(*) FROM shipments").fetchone() == (1,)
    conn.close()


def test_a_fresh_client_lists_dead_letters_without_other_calls_first(tmp_path: Path) -> None:
    url = fresh_database(tmp_path)

    async def make() -> None:
        async with legato.AsyncClient(url) as client:
            await client.list_runs()

    import asyncio

    asyncio.run(make())
    with legato.Client(url) as client:
        assert client.list_dead_letters() == []
