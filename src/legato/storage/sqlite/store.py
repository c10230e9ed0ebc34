"""``SqliteStore``: runs and history in one SQLite file.

The control flow is ``SqlStore``'s (shared by every SQL adapter), the statements are
``queries``, and the connections, their threads and group commit are ``_connections``.
The engine's journal hands ``write`` batches of records, so while one batch is being
fsynced the next one fills up; every other write (signals, cancels, task answers,
claims) is grouped with whatever else is waiting for the writer.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from legato.errors import ConfigurationError, MigrationRequired
from legato.storage.base import SCHEMA_VERSION
from legato.storage.sqlbase import SqlStore
from legato.storage.sqlbus import InTransaction
from legato.storage.sqlite._connections import SqliteConnections
from legato.storage.sqlite.queries import QUERIES

_LEGACY = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)


class SqliteStore(SqliteConnections, SqlStore):
    """A ``Store`` on one SQLite file.

    ``synchronous`` is SQLite's durability setting: ``"full"`` (the default) fsyncs every
    commit, so a committed record survives power loss; ``"normal"`` survives a process
    crash but not an OS crash.
    """

    queries = QUERIES

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._read(self._fetch, sql, params)

    def in_transaction(self, conn: object) -> InTransaction:
        """The bus on ``conn``, the caller's own ``sqlite3.Connection`` to this database,
        inside the transaction it has open (or opens now): for ``publish_in_transaction``.

        Refused with ``ConfigurationError``: another kind of connection, a connection to
        another file, or one in autocommit mode with no transaction open (the caller's
        writes were committed already: nothing could commit with them). A database this
        version has not migrated raises ``MigrationRequired``.
        """
        if not isinstance(conn, sqlite3.Connection):
            raise ConfigurationError(
                "publish_in_transaction takes the sqlite3.Connection your transaction runs "
                f"on, got {type(conn).__name__}"
            )
        try:
            files = [row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
            same = bool(files and files[0]) and os.path.samefile(files[0], self.path)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(f"cannot use that connection: {exc}") from exc
        if not same:
            raise ConfigurationError(
                f"the connection is to {files[0] if files and files[0] else 'another database'}"
                f", not to {self.path}: the event must commit in the same database as the runs"
            )
        if version < SCHEMA_VERSION:
            raise MigrationRequired(
                f"{self.path} has schema version {version}, this Legato needs "
                f"{SCHEMA_VERSION}: open it once with Legato (legato db migrate, or start "
                "the app) before publishing into it"
            )
        if not conn.in_transaction:
            autocommit = getattr(conn, "autocommit", _LEGACY)
            if autocommit is True or (autocommit == _LEGACY and conn.isolation_level is None):
                raise ConfigurationError(
                    "the connection is in autocommit mode with no transaction open, so your "
                    "writes are committed already and the event could not commit with them: "
                    'run conn.execute("BEGIN") before your writes'
                )
            # Legacy transaction control would begin one at our first INSERT; beginning it
            # here makes the registry read below part of the same transaction.
            conn.execute("BEGIN IMMEDIATE")
        return InTransaction(self, conn)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert self._reader is not None
        return self._reader.execute(sql, params).fetchall()
