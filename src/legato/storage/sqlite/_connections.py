"""The SQLite file's two connections, each on its own thread, and group commit.

One writer connection on one thread applies every write; bodies that arrive while a
transaction commits share the next one (group commit, ``storage/groupcommit.py``).
Reads use a second connection on another thread: in WAL mode they never wait for the
writer. ``SqliteStore`` builds its queries on these primitives.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from legato.errors import DatabaseMoved, StorageError
from legato.storage.groupcommit import GroupCommit
from legato.storage.sqlite._errors import is_read_only, sqlite_error
from legato.storage.sqlite._migrate import ensure_schema

T = TypeVar("T")


class SqliteConnections(GroupCommit):
    """A writer and a reader connection on one SQLite file, each used by one thread."""

    begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, path: str, *, synchronous: str = "full") -> None:
        if synchronous.lower() not in ("full", "normal", "off", "extra"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # One thread each: sqlite3 connections must not be used by two threads at once.
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_thread: ThreadPoolExecutor | None = None
        self._init_group_commit()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the opened file
        self._read_only: str | None = None  # why writes are refused, when opened read-only

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open both connections and create or migrate the schema."""
        if self._writer is not None:
            return
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="legato-sqlite-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="legato-sqlite-read")
        try:
            try:
                self._writer = await self._on(self._write_thread, self._connect, True)
            except StorageError as exc:
                if not _is_read_only_file(exc, self.path):
                    raise
                # Read-only media (a mounted backup, a read-only volume): reads still work.
                self._read_only = str(exc)
                self._write_thread.shutdown(wait=False)
                self._write_thread = None
            self._reader = await self._on(self._read_thread, self._connect, False)
            self._identity = _file_identity(self.path)
        except BaseException:
            await self.close()
            raise

    async def check_location(self) -> None:
        """Raise ``DatabaseMoved`` if the path no longer names the file this store opened.

        A file deleted or replaced under an open connection goes unnoticed by SQLite: the
        connection keeps writing to the unlinked file, and everything written since is
        lost when the process exits. One ``stat()``, cheap enough for every poll.
        """
        if self._identity is None:
            return
        try:
            now = _file_identity(self.path)
        except FileNotFoundError:
            raise DatabaseMoved(
                f"the database file {self.path} was deleted while this process had it open: "
                "what was written since went to the deleted file. Stop, restore the file "
                "from a backup if you have one, and start again"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot look at the database file {self.path}: {exc}") from exc
        if now != self._identity:
            raise DatabaseMoved(
                f"the database file {self.path} was replaced by another file while this "
                "process had the old one open: what was written since went to the old file. "
                "Stop, and start again on the file you mean to use"
            )

    def _connect(self, is_writer: bool) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StorageError(f"cannot open {self.path}: directory {directory} does not exist")
        try:
            conn = self._open_connection(is_writer)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, self.path, "opening it") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if is_writer:
                ensure_schema(conn, self.path)
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise sqlite_error(exc, self.path, "opening it") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_connection(self, is_writer: bool) -> sqlite3.Connection:
        if self._read_only is None or is_writer:
            return sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # Not even the WAL index can be made beside the file: read it as immutable
            # (nobody can write it here anyway).
            return sqlite3.connect(
                uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False
            )

    async def close(self) -> None:
        """Commit the writes already asked for, then close connections and stop the threads."""
        await self._wait_for_commits()
        for attr, pool_attr in (("_writer", "_write_thread"), ("_reader", "_read_thread")):
            conn, pool = getattr(self, attr), getattr(self, pool_attr)
            setattr(self, attr, None)
            setattr(self, pool_attr, None)
            if pool is not None:
                if conn is not None:
                    await asyncio.get_running_loop().run_in_executor(pool, conn.close)
                pool.shutdown(wait=True)

    async def _on(self, pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise self._not_open()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, self.path, "a read or write") from exc

    def _not_open(self) -> StorageError:
        if self._read_only is not None and self._reader is not None:
            return StorageError(f"{self._read_only} (opened read-only: nothing was written)")
        return StorageError(f"the SQLite store for {self.path} is not open")

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(self._write_thread, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(self._read_thread, fn, *args)

    # -- group commit's hooks (storage/groupcommit.py) ------------------------------------

    def _writer_connection(self) -> sqlite3.Connection:
        assert self._writer is not None
        return self._writer

    def _in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def _write_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.Error):
            return sqlite_error(exc, self.path, "a write")
        return exc

    def _writes_refused(self) -> BaseException | None:
        return self._not_open() if self._write_thread is None else None


def _file_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _is_read_only_file(exc: BaseException, path: str) -> bool:
    """True if opening for writing failed because an existing file cannot be written."""
    cause = exc.__cause__
    return cause is not None and is_read_only(cause) and os.path.exists(path)
