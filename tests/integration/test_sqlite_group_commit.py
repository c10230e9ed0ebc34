"""SQLite group commit for every write: concurrent calls share one transaction and fsync,
each in a savepoint of its own, so one call's error undoes only that call. The internals of
``SqliteStore`` (its writer thread, ``sqlite3`` bodies): ``sqlite_only``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from legato.errors import StorageError
from legato.storage.base import NewRun, NewSignal
from legato.storage.sqlite import SqliteStore

pytestmark = pytest.mark.sqlite_only


class CountingStore(SqliteStore):
    """A real SQLite store that counts the transactions its writer thread runs."""

    transactions = 0

    def _tx_many(self, bodies: list[Any]) -> list[tuple[bool, Any]]:
        self.transactions += 1
        return super()._tx_many(bodies)


async def open_store(path: Path, runs: int = 10) -> CountingStore:
    store = CountingStore(str(path))
    await store.open()
    now = time.time()
    await store.write(
        [NewRun(f"r{i}", "wf", "waiting", b"[]", now, None, None) for i in range(runs)]
    )
    return store


async def test_concurrent_signals_share_transactions_and_keep_their_order(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "legato.db")
    try:
        before = store.transactions
        # When 300 signals are sent at once
        await asyncio.gather(
            *(
                store.write([NewSignal(f"r{i % 10}", "go", b'{"n": %d}' % i, time.time())])
                for i in range(300)
            )
        )
        # Then each got its own id, in the order they were sent, in far fewer transactions
        every = [s for i in range(10) for s in await store.signals(f"r{i}")]
        in_id_order = [s.payload["n"] for s in sorted(every, key=lambda s: s.id)]
        assert in_id_order == list(range(300)) and len({s.id for s in every}) == 300
        assert store.transactions - before < 30
        kept = await store.signals("r3")
        assert [s.payload for s in kept] == [{"n": i} for i in range(3, 300, 10)]
    finally:
        await store.close()


async def test_one_failing_write_undoes_only_itself(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "legato.db")

    def insert(name: str, fail: bool = False) -> Any:
        def body(c: sqlite3.Connection) -> str:
            c.execute(
                "INSERT INTO signals (run_id, name, payload, sent_at) VALUES ('r1', ?, NULL, 0)",
                (name,),
            )
            if fail:
                raise ValueError(f"{name} changed its mind")
            return name

        return store._transact(body)

    try:
        # Given three writes queued behind one in flight, the middle one failing
        results = await asyncio.gather(
            insert("warm-up"),
            insert("first"),
            insert("second", fail=True),
            insert("third"),
            return_exceptions=True,
        )
        # Then the failure reaches its caller alone, and its insert is gone
        assert results[:2] == ["warm-up", "first"] and results[3] == "third"
        assert isinstance(results[2], ValueError)
        names = [s.name for s in await store.signals("r1")]
        assert names == ["warm-up", "first", "third"]
    finally:
        await store.close()


async def test_a_sqlite_error_reaches_the_caller_as_storage_error(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "legato.db")
    try:
        with pytest.raises(StorageError, match="no such table"):
            await asyncio.gather(
                store.write([NewSignal("r1", "go", None, time.time())]),
                store._transact(lambda c: c.execute("UPDATE nowhere SET x = 1")),
            )
        assert [s.name for s in await store.signals("r1")] == ["go"]
    finally:
        await store.close()


async def test_close_commits_the_writes_already_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "legato.db"
    store = await open_store(path)
    sending = [
        asyncio.ensure_future(store.write([NewSignal("r2", f"s{i}", None, time.time())]))
        for i in range(50)
    ]
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    assert all(f.done() and f.exception() is None for f in sending)
    reopened = SqliteStore(str(path))
    await reopened.open()
    try:
        assert len(await reopened.signals("r2")) == 50
    finally:
        await reopened.close()
