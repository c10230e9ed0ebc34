"""What only the PostgreSQL adapter promises: its schema and migrations, refusing what is
not its own, many writers at once, and the user's own transaction (on a real server)."""

from __future__ import annotations

import asyncio
import threading
from importlib import resources
from typing import Any

import psycopg
import pytest

import legato
from legato.errors import (
    ConcurrencyConflict,
    MigrationRequired,
    NotALegatoDatabase,
    RunAlreadyExists,
    SchemaTooNew,
)
from legato.storage import open_store
from legato.storage.admin import database_status, migrate_database
from legato.storage.base import SCHEMA_VERSION
from legato.storage.postgres import PostgresStore
from legato.storage.postgres._migrate import migrations as postgres_migrations
from tests.contract.ops import T0, append, new_run, new_task, set_run
from tests.fixtures.db import POSTGRES_URL, new_schema, postgres_url

pytestmark = pytest.mark.postgres_only


def _catalog(schema: str) -> dict[str, Any]:
    """Tables with their columns (type, null, default) and indexes, of one schema."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, "
            "is_identity FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, replace(indexdef, %s, 'S.') FROM pg_indexes "
            "WHERE schemaname = %s ORDER BY indexname",
            (f"{schema}.", schema),
        ).fetchall()
        checks = conn.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
            (schema,),
        ).fetchall()
    return {
        "columns": columns,
        "indexes": indexes,
        "constraints": [(t.split(".")[-1], d) for t, d in checks],
    }


def test_the_migrations_produce_exactly_schema_sql() -> None:
    from_migrations, from_schema_sql = new_schema(), new_schema()
    migrate_database(postgres_url(from_migrations))
    sql = resources.files("legato.storage.postgres").joinpath("schema.sql").read_text("utf-8")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {from_schema_sql}")
        conn.execute(f"SET search_path TO {from_schema_sql}")
        conn.execute(sql)
        conn.execute("INSERT INTO legato_version VALUES (1, %s, 0)", (SCHEMA_VERSION,))
    migrated, declared = _catalog(from_migrations), _catalog(from_schema_sql)
    assert migrated["columns"] and migrated == declared


async def test_a_database_that_needs_migrating_is_refused_naming_the_command() -> None:
    url = postgres_url()
    store = open_store(url)
    with pytest.raises(MigrationRequired, match="legato db migrate --database") as caught:
        await store.open()
    assert "has no Legato schema yet" in str(caught.value)
    assert database_status(url).pending  # and nothing was created meanwhile
    migrate_database(url)
    await store.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()


async def test_a_schema_migrated_by_a_newer_legato_is_refused() -> None:
    schema = new_schema()
    url = postgres_url(schema)
    migrate_database(url)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.legato_version SET version = %s", (SCHEMA_VERSION + 1,))
    for attempt in (lambda: open_store(url).open(), lambda: open_store(url, migrate=True).open()):
        with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}"):
            await attempt()
    with pytest.raises(SchemaTooNew):
        migrate_database(url)


async def test_a_schema_holding_other_tables_is_not_taken_over() -> None:
    schema = new_schema()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id int)")
    with pytest.raises(NotALegatoDatabase, match="orders"):
        migrate_database(postgres_url(schema))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    assert tables == [("orders",)]


def test_two_migrators_started_at_once_apply_each_migration_once() -> None:
    url = postgres_url()
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        barrier.wait()
        results.append(migrate_database(url))

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shipped = len(postgres_migrations())
    assert sorted(len(r.applied) for r in results) == [0, 0, 0, shipped]
    assert all(r.after == SCHEMA_VERSION for r in results)
    assert database_status(url).current


async def test_ten_clients_starting_one_run_id_at_once_make_exactly_one_run() -> None:
    url = postgres_url()
    migrate_database(url)
    registry = open_store(url)
    await registry.open()
    await registry.register_workflows(["order"], 0.0)
    clients = [legato.AsyncClient(url) for _ in range(10)]
    for client in clients:
        await client.__aenter__()
    try:
        outcomes = await asyncio.gather(
            *(c.start("order", i, run_id="order-1") for i, c in enumerate(clients)),
            return_exceptions=True,
        )
        made = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, RunAlreadyExists)]
        assert len(made) + len(refused) == 10, outcomes
        runs = await registry.list_runs()
        assert [r.run_id for r in runs] == ["order-1"]
        assert runs[0].input in ([i] for i in range(10))
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
        await registry.close()


async def test_two_stores_claiming_at_once_never_take_the_same_run() -> None:
    url = postgres_url()
    migrate_database(url)
    stores = [open_store(url) for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        await stores[0].write([new_run(f"r{i}", status="pending") for i in range(300)])
        for i, s in enumerate(stores):
            await s.register_worker(f"w{i}", "h", i, 0.0, ["wf"])
        claimed = await asyncio.gather(*(c for _ in range(4) for c in _again(stores)))
        ids = [r.run_id for batch in claimed for r in batch]
        assert len(ids) == len(set(ids)) == 300
    finally:
        for s in stores:
            await s.close()


def _again(stores: list[Any]) -> list[Any]:
    return [s.claim_runs(f"w{i}", 2e9, 40, ["wf"]) for i, s in enumerate(stores)]


async def test_a_fenced_write_waits_for_no_one_and_loses_to_a_takeover() -> None:
    # A worker whose batch checked its runs holds them FOR SHARE: a takeover that comes
    # while the batch commits releases them only after it, and the next batch is refused.
    url = postgres_url()
    migrate_database(url)
    first, second = open_store(url), open_store(url)
    await first.open()
    await second.open()
    try:
        await first.write([new_run("r1", owner="w1")])
        await first.write([append("r1", 1, owner="w1")])
        await second.write([set_run("r1", "running", owner="w1", release=True)])
        await second.write([new_run("x", owner="w2")])
        with pytest.raises(ConcurrencyConflict):
            await first.write([append("r1", 2, owner="w1")])
        assert [e.pos for e in await second.history("r1")] == [1]
    finally:
        await first.close()
        await second.close()


async def test_publish_in_transaction_commits_and_rolls_back_with_the_users_rows() -> None:
    schema = new_schema()
    url = postgres_url(schema)
    migrate_database(url)
    app = legato.App("shop", url)
    async with app:
        with psycopg.connect(POSTGRES_URL) as conn:  # the service's own connection
            conn.execute("CREATE TEMP TABLE orders (id int)")
            conn.execute("INSERT INTO orders VALUES (1)")
            kept = app.publish_in_transaction(conn, "order.placed", {"id": 1})
            conn.commit()
            conn.execute("INSERT INTO orders VALUES (2)")
            dropped = app.publish_in_transaction(conn, "order.placed", {"id": 2})
            conn.rollback()
        ids = [e.event.id for e in await app.list_events()]
    assert ids == [kept.id]
    assert dropped.id not in ids


async def test_publish_in_transaction_refuses_a_connection_to_another_database() -> None:
    url = postgres_url()
    migrate_database(url)
    async with legato.App("shop", url) as app:
        other = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
        with (
            psycopg.connect(other) as conn,
            pytest.raises(legato.errors.ConfigurationError, match="not to 'test'"),
        ):
            app.publish_in_transaction(conn, "order.placed", {"id": 1})


def test_a_postgres_store_names_its_server() -> None:
    store = PostgresStore("postgresql://app:secret@db.internal:6432/shop")
    assert store.where == "db.internal:6432/shop"
    assert store.url == "postgresql://app:***@db.internal:6432/shop"


async def test_a_multi_host_url_finds_the_server_that_answers() -> None:
    # The first host is down (nothing listens on port 1): libpq goes on to the next, as
    # it does after a failover when the old primary is gone.
    schema = new_schema()
    base = POSTGRES_URL.replace("127.0.0.1:5432", "127.0.0.1:1,127.0.0.1:5432")
    assert base != POSTGRES_URL, "the test server URL is not the expected 127.0.0.1:5432"
    url = f"{base}?target_session_attrs=read-write&schema={schema}"
    migrate_database(url)
    store = open_store(url)
    await store.open()
    try:
        await store.write([new_run("r1")])
        assert (await store.get_run("r1")) is not None
        assert store.where == "127.0.0.1:1,127.0.0.1:5432/test"  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_releasing_a_dead_workers_runs_ends_its_session_stuck_in_a_transaction() -> None:
    # A worker stopped (SIGSTOP) in the middle of a transaction holds its rows locked, and
    # no server timeout ends a transaction whose pipeline is still coming.
    from legato.storage.postgres._connections import session_name

    url = postgres_url()
    migrate_database(url)
    store = open_store(url)
    await store.open()
    dead = "stalled-host:4242:abcd1234"
    schema = url.split("schema=")[1].split("&")[0]
    stuck = psycopg.connect(
        POSTGRES_URL, application_name=session_name("stalled-host:4242"), autocommit=True
    )
    try:
        await store.register_worker(dead, "stalled-host", 4242, 0.0, ["wf"])
        await store.write([new_run("r1", owner=dead)])
        stuck.execute("SET idle_in_transaction_session_timeout = 0")  # only us to end it
        stuck.execute("BEGIN")
        stuck.execute(f"UPDATE {schema}.runs SET updated_at = 1 WHERE run_id = 'r1'")
        await asyncio.sleep(2.5)  # its transaction is older than a live worker's ever is

        assert await store.remove_workers([dead]) == 1  # not held up by its lock

        run = await store.get_run("r1")
        assert run is not None and run.owner is None
        with pytest.raises(psycopg.OperationalError):
            stuck.execute("SELECT 1")  # its session was ended: its transaction rolled back
    finally:
        stuck.close()
        await store.close()


async def test_a_live_workers_short_transactions_are_never_ended() -> None:
    from legato.storage.postgres._connections import session_name

    url = postgres_url()
    migrate_database(url)
    store = open_store(url)
    await store.open()
    other = psycopg.connect(
        POSTGRES_URL, application_name=session_name("busy-host:77"), autocommit=True
    )
    try:
        await store.register_worker("busy-host:77:old", "busy-host", 77, 0.0, ["wf"])
        other.execute("BEGIN")  # a transaction just begun, as a live worker's are
        other.execute("SELECT 1")
        await store.remove_workers(["busy-host:77:old"])
        other.execute("SELECT 1")  # still there
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


async def test_reads_go_on_after_the_server_drops_every_session_of_the_store() -> None:
    # As after a server restart: every pooled reader is broken, and the pool does not try
    # them before handing them out (a round trip saved per read); each read finds one
    # broken, and reads again on another session.
    from legato.storage.postgres._connections import this_session_name

    url = postgres_url()
    migrate_database(url)
    store = open_store(url)
    await store.open()
    try:
        await store.write([new_run("r1")])
        for _ in range(3):  # every reader session has been used
            assert await store.get_run("r1") is not None
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                "pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()) t",
                (this_session_name(),),
            ).fetchone()
        assert ended is not None and ended[0] >= 2  # the readers and the writer
        for _ in range(5):
            run = await store.get_run("r1")
            assert run is not None and run.run_id == "r1"
        await store.write([new_run("r2")])  # the writer's session is tried, then replaced
        assert await store.get_run("r2") is not None
    finally:
        await store.close()


async def test_a_task_answered_while_its_worker_parks_the_run_still_wakes_it() -> None:
    # The worker's park (the run becomes waiting, unowned; it wakes itself only for a
    # signal it can see) and the answer (a signal; it wakes the run only if it is waiting
    # and unowned) commit at the same moment, neither seeing the other's change: without
    # a lock between them the run would wait forever for an answer already given.
    from legato.lifecycle import complete_task

    url = postgres_url()
    migrate_database(url)
    store = open_store(url)
    await store.open()
    schema = url.split("schema=")[1].split("&")[0]
    parking = psycopg.connect(POSTGRES_URL, autocommit=True)
    try:
        await store.write([new_run("r1", owner="w1"), new_task("r1", "r1:2")])
        parking.execute("BEGIN")
        parking.execute(  # the park, its signal check done, not committed yet
            f"UPDATE {schema}.runs SET status = 'waiting', owner = NULL, wake_at = NULL "
            "WHERE run_id = 'r1'"
        )
        answering = asyncio.ensure_future(complete_task(store, "r1:2", b'"yes"', T0 + 5))
        await asyncio.sleep(0.3)
        parking.execute("COMMIT")
        done, changed = await asyncio.wait_for(answering, 10)
        assert changed and done is not None
        run = await store.get_run("r1")
        assert run is not None and run.status.value == "waiting"
        assert run.wake_at is not None  # due: a worker claims it and reads the answer
    finally:
        parking.close()
        await store.close()
