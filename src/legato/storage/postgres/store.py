"""``PostgresStore``: runs, history and the event bus in one PostgreSQL database.

The control flow is ``SqlStore``'s (shared by every SQL adapter), the statements are
``queries`` (SQLite's, in PostgreSQL's spelling, with ``SKIP LOCKED`` claims), and the
connections, their threads and group commit are ``_connections``. Nothing here decides
what a status or a record means: that is the engine's, the same on every adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import psycopg

from legato.errors import ConfigurationError, MigrationRequired
from legato.storage import hide_password
from legato.storage.base import Write
from legato.storage.postgres._bridge import AsyncConn
from legato.storage.postgres._connections import (
    Conn,
    PostgresConnections,
    session_name,
    this_session_name,
)
from legato.storage.postgres._errors import is_duplicate
from legato.storage.postgres._migrate import schema_state
from legato.storage.postgres._notify import Wakeups, makes_work_for_others
from legato.storage.postgres.queries import PostgresQueries
from legato.storage.sqlbase import SqlQueries, SqlStore
from legato.storage.sqlbus import InTransaction

log = logging.getLogger("legato.storage.postgres")

STALLED_TRANSACTION_S = 2.0
"""A dead worker's session inside a transaction open this long is ended when its runs are
released (``PostgresStore._end_sessions``)."""


class PostgresStore(PostgresConnections, SqlStore):
    """A ``Store`` on a PostgreSQL database, shared by any number of worker processes.

    ``conninfo`` is what libpq takes (a ``postgresql://`` URL without Legato's own
    options, or ``key=value`` pairs). Legato's tables live in ``schema``. The schema must
    be current (``legato db migrate``) unless ``migrate=True``, which brings it there.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "legato",
        url: str | None = None,
        where: str | None = None,
        readers: int = 4,
        connect_timeout: float = 10.0,
        notify: bool = True,
        migrate: bool = False,
    ) -> None:
        # Its statements are set in __init__ from SQLite's, so mypy cannot see them.
        self.queries = cast(SqlQueries, PostgresQueries(schema))
        super().__init__(
            conninfo,
            url=url or hide_password(conninfo),
            where=where or _where(conninfo),
            schema=schema,
            readers=readers,
            connect_timeout=connect_timeout,
            migrate=migrate,
        )

        self._wakeups = Wakeups(conninfo, schema, self.where) if notify else None
        self._schema_current = False  # seen current by publish_in_transaction

    def _is_duplicate(self, exc: BaseException) -> bool:
        return is_duplicate(exc)

    # -- wake-ups between processes (_notify.py) -----------------------------------------

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """LISTEN for other processes' work (unless ``?notify=off``)."""
        if self._wakeups is None:
            return super().watch(wake)
        return self._wakeups.watch(wake)

    def _changed(self) -> None:
        if self._wakeups is not None:
            self._wakeups.changed()

    async def write(self, ops: Sequence[Write]) -> dict[str, str]:
        conflicts = await super().write(ops)
        if makes_work_for_others(ops):
            self._changed()
        return conflicts

    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        released = await super().release_runs(worker_id, run_ids)
        if released:
            self._changed()
        return released

    async def remove_workers(self, worker_ids: Sequence[str]) -> int:
        await self._read(self._end_sessions, worker_ids)
        released = await super().remove_workers(worker_ids)
        if released:
            self._changed()
        return released

    async def release_orphaned_runs(self) -> int:
        released = await super().release_orphaned_runs()
        if released:
            self._changed()
        return released

    def _end_sessions(self, worker_ids: Sequence[str]) -> None:
        """End the database sessions of the processes of workers presumed dead.

        A worker stopped (SIGSTOP, a frozen VM) in the middle of sending a transaction
        holds its row locks with no timeout to end them: the server waits for the rest of
        the pipeline, so ``idle_in_transaction_session_timeout`` never starts. Its runs
        could not be released until it woke. Ending its sessions rolls that transaction
        back; if it wakes, its pool reconnects and its writes to the runs it lost are
        refused (fencing). Sessions are found by ``application_name`` (``legato:host:pid``,
        how a worker id begins), and only those inside a transaction open for over
        ``STALLED_TRANSACTION_S`` (a live worker's last milliseconds: a process that got a
        dead worker's pid is left alone); this process's own are never ended. Without the
        right to (another role, not a superuser or ``pg_signal_backend``), the release
        waits for the locks as before.
        """
        mine = this_session_name()
        names = sorted(
            {session_name(w.rsplit(":", 1)[0]) for w in worker_ids if w.count(":") >= 2} - {mine}
        )
        if not names:
            return
        try:
            ended = self._fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = ANY(%s) AND pid <> pg_backend_pid() "
                "AND xact_start < now() - make_interval(secs => %s)",
                (names, STALLED_TRANSACTION_S),
            )
        except psycopg.Error as exc:
            log.warning("could not end the sessions of dead workers %s: %s", names, exc)
            return
        count = sum(1 for (done,) in ended if done)
        if count:
            log.warning("ended %d database session(s) of dead worker(s) %s", count, names)

    async def close(self) -> None:
        if self._wakeups is not None:
            await self._wakeups.close()
        await super().close()

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._read(self._fetch, sql, params)

    def in_transaction(self, conn: object) -> InTransaction:
        """The bus on ``conn``, the caller's own ``psycopg.Connection`` to this database,
        inside the transaction it has open (or opens now): for ``publish_in_transaction``.
        (``publish_in_transaction_async`` comes here from a thread, with its
        ``AsyncConnection`` wrapped by ``on_loop``.)

        Refused with ``ConfigurationError``: another kind of connection, one to another
        database, or one in autocommit mode with no transaction open (the caller's writes
        were committed already). A database not at this version's schema raises
        ``MigrationRequired``.
        """
        if isinstance(conn, psycopg.AsyncConnection):
            raise ConfigurationError(
                "publish_in_transaction takes a psycopg.Connection; for a "
                "psycopg.AsyncConnection, await publish_in_transaction_async"
            )
        if not isinstance(conn, psycopg.Connection | AsyncConn):
            raise ConfigurationError(
                "publish_in_transaction takes the psycopg.Connection your transaction runs "
                f"on (publish_in_transaction_async: the psycopg.AsyncConnection), got "
                f"{type(conn).__name__}"
            )
        ours = Conn(conn) if isinstance(conn, psycopg.Connection) else conn
        try:
            status = conn.info.transaction_status
            if status == psycopg.pq.TransactionStatus.INERROR:
                raise ConfigurationError(
                    "the connection's transaction failed already (an earlier statement "
                    "raised): roll it back before publishing"
                )
            if status == psycopg.pq.TransactionStatus.IDLE and conn.autocommit:
                raise ConfigurationError(
                    "the connection is in autocommit mode with no transaction open, so "
                    "your writes are committed already and the event could not commit "
                    'with them: run conn.execute("BEGIN") (or use conn.transaction()) '
                    "before your writes"
                )
            database = conn.execute("SELECT current_database()").fetchone()
            mine = database_name(self.conninfo)
            if database is not None and mine is not None and database[0] != mine:
                raise ConfigurationError(
                    f"the connection is to database {database[0]!r}, not to {mine!r}: the "
                    "event must commit in the same database as the runs"
                )
            # Once per store: a schema found current stays so while this code runs.
            current = self._schema_current or schema_state(conn, self.schema, self.where).current
        except psycopg.Error as exc:
            raise ConfigurationError(f"cannot use that connection: {exc}") from exc
        if not current:
            raise MigrationRequired(
                f"{self.where} is not at this Legato's schema: run legato db migrate first"
            )
        self._schema_current = True
        return InTransaction(self, ours)

    def on_loop(self, conn: object, loop: asyncio.AbstractEventLoop) -> AsyncConn:
        """``conn``, the caller's ``psycopg.AsyncConnection`` on ``loop``, for
        ``in_transaction`` called from a thread (``_bridge.py``)."""
        if not isinstance(conn, psycopg.AsyncConnection):
            raise ConfigurationError(
                "publish_in_transaction_async takes the psycopg.AsyncConnection your "
                f"transaction runs on (publish_in_transaction: a psycopg.Connection), got "
                f"{type(conn).__name__}"
            )
        return AsyncConn(conn, loop)


def database_name(conninfo: str) -> str | None:
    """The database ``conninfo`` names (None: libpq's default, the user's name)."""
    try:
        return psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname")  # type: ignore[return-value]
    except psycopg.ProgrammingError:
        return None


def _where(conninfo: str) -> str:
    """``host:port/database`` of ``conninfo``, for messages (never the password)."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the PostgreSQL server"
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    hosts = [f"{h}:{p}" for h, p in zip(host.split(","), _ports(port, host), strict=False)]
    return f"{','.join(hosts)}/{parts.get('dbname') or parts.get('user') or ''}"


def _ports(port: str, host: str) -> list[str]:
    ports = port.split(",")
    return ports * len(host.split(",")) if len(ports) == 1 else ports
