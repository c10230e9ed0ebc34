"""Connections to one PostgreSQL database: a writer with group commit, a pool of readers.

As on SQLite, one connection on one thread applies this process's writes, grouped
(``storage/groupcommit.py``): records from many runs commit in one transaction, one
round trip of COMMIT for all of them. Reads go to a small pool on threads of their own,
so a slow list never holds up a commit. Many processes on many machines do the same on
one database; what keeps them apart are the guarded writes and the ``SKIP LOCKED``
claims, not this module.

Both sides come from ``psycopg_pool``: a connection that broke (the server restarted, a
failover moved the primary) is dropped when it is handed back and replaced in the
background with backoff, so the next write or read after an outage reconnects by itself.
Until then each write waits at most ``connect_timeout`` and fails with a
``StorageError`` naming the server; the engine backs off and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from legato.errors import StorageError
from legato.storage.groupcommit import GroupCommit
from legato.storage.postgres._errors import postgres_error
from legato.storage.postgres._migrate import migrate, require_current

T = TypeVar("T")
log = logging.getLogger("legato.storage.postgres")

_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


IDLE_IN_TRANSACTION_TIMEOUT = "5s"
"""A session left idle inside a transaction this long is ended by the server. Legato's
transactions never wait on anything but the database; a worker stopped mid-transaction
(SIGSTOP, a frozen VM) would otherwise hold its row locks forever, and the worker taking
its runs over would wait on them."""
LOCK_TIMEOUT = "10s"
"""A statement waiting this long for a lock fails (and is retried) instead of hanging."""


def session_name(process: str) -> str:
    """The ``application_name`` of the sessions of the process ``process`` names
    (``host:pid``, how a worker id begins), as the server keeps it (63 bytes at most)."""
    return f"legato:{process}".encode()[:63].decode(errors="ignore")


def this_session_name() -> str:
    """This process's sessions' name: a worker that takes over a stalled worker's runs
    ends that worker's sessions by it (``PostgresStore.remove_workers``)."""
    return session_name(f"{socket.gethostname()}:{os.getpid()}")


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


class Conn:
    """A psycopg connection as the SQL base speaks to it: ``execute`` and ``executemany``
    (psycopg pipelines the latter: one round trip for many rows)."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(sql, rows)
        return cursor

    def executemany_returning(self, sql: str, rows: Any) -> list[Any]:
        """The first column of every row the statements returned, in order."""
        if not rows:
            return []
        cursor = self.raw.cursor()
        cursor.executemany(sql, rows, returning=True)
        found: list[Any] = []
        while True:
            found.extend(row[0] for row in cursor.fetchall())
            if not cursor.nextset():
                return found


class PostgresConnections(GroupCommit):
    """A writer connection (on one thread) and a pool of readers, to one database."""

    begin_sql = "BEGIN"

    def __init__(
        self,
        conninfo: str,
        *,
        url: str,
        where: str,
        schema: str = "legato",
        readers: int = 4,
        connect_timeout: float = 10.0,
        migrate: bool = False,
    ) -> None:
        self.conninfo = conninfo
        self.url = url  # as the user wrote it, password hidden: for messages
        self.where = where  # host:port/database, for messages
        self.schema = schema
        self._readers = max(1, readers)
        self._connect_timeout = connect_timeout
        self._migrate = migrate
        self._write_pool: ConnectionPool[Any] | None = None
        self._read_pool: ConnectionPool[Any] | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._conn: Conn | None = None  # the writer's, while a transaction runs
        self._init_group_commit()

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check (or, if asked, migrate) the schema, and start the pools.

        Raises ``StorageError`` naming the server if it cannot be reached or refuses us,
        ``MigrationRequired`` (naming ``legato db migrate``) if the schema is not current.
        """
        if self._write_pool is not None:
            return
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="legato-pg-write")
        self._read_threads = ThreadPoolExecutor(self._readers, thread_name_prefix="legato-pg-read")
        try:
            await self._on(self._write_thread, self._check_schema)
            self._write_pool = await self._on(self._write_thread, self._pool, 1, True)
            self._read_pool = await self._on(self._read_threads, self._pool, self._readers, False)
        except BaseException:
            await self.close()
            raise

    def _check_schema(self) -> None:
        with self._connect() as conn:
            if self._migrate:
                migrate(conn, self.schema, self.where)
            else:
                require_current(conn, self.schema, self.where, self.url)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise postgres_error(exc, self.where, "connecting") from exc

    def _pool(self, size: int, checked: bool) -> ConnectionPool[Any]:
        """A pool of ``size`` sessions. A ``checked`` pool tries each session before
        handing it out (a round trip: the writer's, once per batch, so a transaction never
        starts on a session the server dropped); readers instead read again on another
        session when one is found broken (``_fetch``), saving that round trip per read."""
        pool: ConnectionPool[Any] = ConnectionPool(
            self.conninfo,
            min_size=size,
            max_size=size,
            kwargs={"autocommit": True, **self._session_name()},
            open=False,
            timeout=self._connect_timeout,
            check=ConnectionPool.check_connection if checked else None,
            configure=_configure,
            reconnect_failed=self._reconnect_failed,
            name=f"legato-{self.schema}",
        )
        try:
            pool.open(wait=True, timeout=self._connect_timeout)
        except PoolTimeout as exc:
            pool.close()
            raise StorageError(
                f"cannot reach PostgreSQL at {self.where}: no connection within "
                f"{self._connect_timeout:g}s"
            ) from exc
        return pool

    def _session_name(self) -> dict[str, str]:
        """``application_name``, unless the URL chose one (then no session of this store
        can be ended by name)."""
        if "application_name" in conninfo_to_dict(self.conninfo):
            return {}
        return {"application_name": this_session_name()}

    def _reconnect_failed(self, pool: ConnectionPool[Any]) -> None:
        log.error("PostgreSQL at %s: the pool gave up reconnecting; trying again", self.where)
        pool.check()  # pragma: no cover - only after psycopg_pool's own long backoff

    async def check_location(self) -> None:
        """Nothing to check: a server has no file that could be replaced underneath."""

    async def close(self) -> None:
        """Commit the writes already asked for, then close the pools and stop the threads."""
        await self._wait_for_commits()
        loop = asyncio.get_running_loop()
        for pool_attr, thread_attr in (
            ("_write_pool", "_write_thread"),
            ("_read_pool", "_read_threads"),
        ):
            pool, threads = getattr(self, pool_attr), getattr(self, thread_attr)
            setattr(self, pool_attr, None)
            setattr(self, thread_attr, None)
            if threads is not None:
                if pool is not None:
                    await loop.run_in_executor(threads, pool.close)
                threads.shutdown(wait=True)

    # -- running statements ---------------------------------------------------------

    async def _on(self, threads: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if threads is None:
            raise self._not_open()
        try:
            return await asyncio.get_running_loop().run_in_executor(threads, fn, *args)
        except psycopg.Error as exc:
            raise postgres_error(exc, self.where, "a read or write") from exc
        except PoolTimeout as exc:
            raise StorageError(
                f"cannot reach PostgreSQL at {self.where}: no connection within "
                f"{self._connect_timeout:g}s ({exc})"
            ) from exc

    def _not_open(self) -> StorageError:
        return StorageError(f"the PostgreSQL store for {self.where} is not open")

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(self._write_thread, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(self._read_threads, fn, *args)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        pool = self._read_pool
        if pool is None:
            raise self._not_open()
        # After a server restart every pooled session is broken: each is found so (and
        # discarded by the pool) once, then a new one answers.
        for tries_left in range(self._readers, -1, -1):
            with pool.connection() as conn:
                try:
                    rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
                except psycopg.OperationalError:
                    if not conn.broken or tries_left == 0:
                        raise
                    continue
                return rows
        raise AssertionError("unreachable")  # pragma: no cover

    # -- group commit's hooks (storage/groupcommit.py) ------------------------------------

    def _tx_many(self, bodies: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        pool = self._write_pool
        if pool is None:
            raise self._not_open()
        with pool.connection() as raw:
            self._conn = Conn(raw)
            try:
                return super()._tx_many(bodies)
            finally:
                self._conn = None

    def _writer_connection(self) -> Conn:
        assert self._conn is not None
        return self._conn

    def _in_transaction(self, conn: Conn) -> bool:
        return conn.raw.info.transaction_status in _IN_TRANSACTION

    def _write_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, psycopg.Error):
            return postgres_error(exc, self.where, "a write")
        if isinstance(exc, PoolTimeout):
            return StorageError(
                f"cannot reach PostgreSQL at {self.where}: no connection within "
                f"{self._connect_timeout:g}s"
            )
        return exc

    def _writes_refused(self) -> BaseException | None:
        return self._not_open() if self._write_thread is None else None
