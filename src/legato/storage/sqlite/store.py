"""``SqliteStore``: runs and history in one SQLite file.

The control flow is ``SqlStore``'s (shared by every SQL adapter), the statements are
``queries``, and the connections, their threads and group commit are ``_connections``.
The engine's journal hands ``write`` batches of records, so while one batch is being
fsynced the next one fills up; every other write (signals, cancels, task answers,
claims) is grouped with whatever else is waiting for the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from legato.storage.sqlbase import SqlStore
from legato.storage.sqlite._connections import SqliteConnections
from legato.storage.sqlite.queries import SqliteQueries


class SqliteStore(SqliteConnections, SqlStore):
    """A ``Store`` on one SQLite file.

    ``synchronous`` is SQLite's durability setting: ``"full"`` (the default) fsyncs every
    commit, so a committed record survives power loss; ``"normal"`` survives a process
    crash but not an OS crash.
    """

    queries = SqliteQueries()

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._read(self._fetch, sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert self._reader is not None
        return self._reader.execute(sql, params).fetchall()
