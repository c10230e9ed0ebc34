"""A caller's ``psycopg.AsyncConnection``, spoken to from a thread as if it were blocking.

``publish_in_transaction_async`` writes an event in the transaction an async service has
open. The statements that write it are the SQL base's, which is blocking code shared by
every SQL adapter; rather than keep an async copy of it, they run on a thread, and each
statement they send is handed to the event loop the connection belongs to, where psycopg
runs it, while the thread waits for its rows. The loop stays free the whole time (the
caller awaits the thread), and the connection is used only by these statements until the
publish returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")


class Rows:
    """What a statement returned, fetched already: a cursor's reading side."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class AsyncConn:
    """``conn`` (an ``AsyncConnection`` on ``loop``) with the blocking surface of ``Conn``.

    Call it from a thread other than the loop's: each call waits for the loop.
    """

    __slots__ = ("loop", "raw")

    def __init__(self, raw: psycopg.AsyncConnection[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.raw = raw
        self.loop = loop

    @property
    def info(self) -> psycopg.ConnectionInfo:
        return self.raw.info

    @property
    def autocommit(self) -> bool:
        return self.raw.autocommit

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Rows:
        async def run() -> Rows:
            cursor = await self.raw.execute(sql, params)
            rows = await cursor.fetchall() if cursor.description is not None else []
            return Rows(rows, cursor.rowcount)

        return self._wait(run())

    def executemany(self, sql: str, rows: Any) -> Rows:
        async def run() -> Rows:
            cursor = self.raw.cursor()
            await cursor.executemany(sql, rows)
            return Rows([], cursor.rowcount)

        return self._wait(run())

    def executemany_returning(self, sql: str, rows: Any) -> list[Any]:
        """The first column of every row the statements returned, in order."""
        if not rows:
            return []

        async def run() -> list[Any]:
            cursor = self.raw.cursor()
            await cursor.executemany(sql, rows, returning=True)
            found: list[Any] = []
            while True:
                found.extend(row[0] for row in await cursor.fetchall())
                if not cursor.nextset():
                    return found

        return self._wait(run())
