"""What only the SQLite adapter promises: refusing foreign files, and durability."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import orjson
import pytest

from legato.errors import DatabaseMoved, NotALegatoDatabase, SchemaTooNew, StorageError
from legato.storage.base import SCHEMA_VERSION, Append, NewRun
from legato.storage.sqlite import SqliteStore
from legato.storage.sqlite.queries import RELEASE_ORPHANED_RUNS_SQL, claim_runs_sql, due_runs_sql

LEGATO_APPLICATION_ID = 0x4C47544F
T0 = 1_900_000_000.0


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


async def test_corrupt_file_is_refused_and_left_unmodified(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(random.Random(7).randbytes(16_384))
    before = _files(tmp_path)
    store = SqliteStore(str(path))
    with pytest.raises(NotALegatoDatabase):
        await store.open()
    await store.close()
    assert _files(tmp_path) == before


async def test_foreign_sqlite_database_is_refused_and_left_unmodified(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()
    before = _files(tmp_path)
    store = SqliteStore(str(path))
    with pytest.raises(NotALegatoDatabase, match="not a Legato"):
        await store.open()
    await store.close()
    assert _files(tmp_path) == before
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        assert names == ["customers"]
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0
    finally:
        conn.close()


async def test_database_with_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA application_id = {LEGATO_APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("CREATE TABLE runs_from_the_future (x)")
        conn.commit()
    finally:
        conn.close()
    store = SqliteStore(str(path))
    with pytest.raises(SchemaTooNew) as caught:
        await store.open()
    await store.close()
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


async def test_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "no" / "such" / "dir" / "legato.db"))
    with pytest.raises(StorageError, match="does not exist"):
        await store.open()
    await store.close()
    assert not (tmp_path / "no").exists()


async def test_new_file_is_marked_as_legato_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == LEGATO_APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "legato.db")
    store = SqliteStore(path)
    await store.open()
    await store.write(
        [
            NewRun("r1", "wf", "running", orjson.dumps([1, {"a": "b"}]), T0, None, None),
            Append("r1", 1, "step_started", "1", "pay", 1, None, T0),
            Append("r1", 2, "step_completed", "1", "pay", 1, orjson.dumps({"result": 5}), T0 + 1),
        ]
    )
    await store.register_workflows(["wf"], T0)
    run, history = await store.get_run("r1"), await store.history("r1")
    await store.close()

    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert await reopened.get_run("r1") == run
        assert await reopened.history("r1") == history
        assert await reopened.list_workflows() == ["wf"]
    finally:
        await reopened.close()


async def test_closing_twice_is_safe(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "legato.db"))
    await store.open()
    await store.close()
    await store.close()


async def test_using_a_closed_store_is_a_storage_error(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "legato.db"))
    await store.open()
    await store.close()
    with pytest.raises(StorageError):
        await store.get_run("r1")


async def test_claiming_due_runs_is_served_by_the_partial_index(tmp_path: Path) -> None:
    # A worker polls for due runs every 200 ms; with 100,000 runs parked, a full scan costs
    # ~90 ms per poll on the single writer thread. The query must match the index's WHERE.
    store = SqliteStore(str(tmp_path / "plan.db"))
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {due_runs_sql(2)}", (0.0, "a", "b", 10)).fetchall()
    finally:
        conn.close()
    details = " ".join(row[-1] for row in plan)
    assert "USING INDEX runs_unfinished" in details, details
    assert "SCAN" not in details, details


def _plan(path: Path, sql: str, params: tuple[object, ...] = ()) -> str:
    conn = sqlite3.connect(path)
    try:
        return " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()


async def test_the_claim_checks_its_worker_row_without_leaving_the_partial_index(
    tmp_path: Path,
) -> None:
    # The EXISTS on workers is one primary-key lookup, evaluated once per claim.
    store = SqliteStore(str(tmp_path / "plan.db"))
    await store.open()
    await store.close()
    details = _plan(tmp_path / "plan.db", claim_runs_sql(2), ("w", 0.0, "a", "b", 10, "w"))
    assert "USING INDEX runs_unfinished" in details, details
    assert "SEARCH workers" in details, details
    assert "SCAN" not in details, details


async def test_releasing_orphans_scans_only_unfinished_runs(tmp_path: Path) -> None:
    # Every recovery pass (a third of the lease) runs it: it must not read finished runs.
    store = SqliteStore(str(tmp_path / "plan.db"))
    await store.open()
    await store.close()
    details = _plan(tmp_path / "plan.db", RELEASE_ORPHANED_RUNS_SQL)
    assert "USING INDEX runs_unfinished" in details, details
    assert "SCAN" not in details, details


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_file_deleted_or_replaced_under_the_store_is_noticed(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "runs.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.check_location()  # the file it opened: nothing to say
        if how == "deleted":
            path.unlink()
        else:
            other = tmp_path / "other.db"
            other.write_bytes(path.read_bytes())
            other.replace(path)
        with pytest.raises(DatabaseMoved, match=f"was {how}"):
            await store.check_location()
    finally:
        await store.close()
