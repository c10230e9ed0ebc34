"""Legato's database read directly, never through the engine, on either backend.

The integration tests look at what was committed (run rows, history records, deliveries)
with a plain connection of their own: ``sqlite3`` on a SQLite file, ``psycopg`` on
PostgreSQL, where Legato's tables live in the schema the URL's ``schema=`` option names
(the connection's ``search_path``). Statements are written once, SQLite-style, with
``?`` placeholders; on PostgreSQL they become ``%s`` (and a literal ``%``, ``%%``).

``own_connection`` is the connection a test's "service" keeps to the same database for
its own tables (and for ``publish_in_transaction``): not in autocommit mode, so its
writes wait for its commit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from legato.storage import parse_database_url


def is_postgres(url: str) -> bool:
    """True for a ``postgresql://`` URL, False for a SQLite one."""
    return parse_database_url(url).scheme == "postgresql"


def sql_for(url: str, statement: str) -> str:
    """``statement`` (``?`` placeholders) in the dialect of ``url``'s database."""
    return to_postgres(statement) if is_postgres(url) else statement


def to_postgres(statement: str) -> str:
    """A SQLite-style statement in psycopg's placeholders."""
    return statement.replace("%", "%%").replace("?", "%s")


def own_connection(url: str) -> Any:
    """A new connection to ``url``'s database, in transaction mode (commit to keep its
    writes): a ``sqlite3.Connection``, or a ``psycopg.Connection`` whose ``search_path``
    is Legato's schema, so the test's own tables sit beside Legato's and go with them."""
    parsed = parse_database_url(url)
    if parsed.scheme != "postgresql":
        assert parsed.path is not None, url
        return sqlite3.connect(parsed.path, timeout=30.0)
    import psycopg

    assert parsed.conninfo is not None
    schema = parsed.options.get("schema", "legato")
    return psycopg.connect(parsed.conninfo, options=f"-c search_path={schema}")


class DirectDb:
    """A plain reader on the database at ``url`` (autocommit: each read sees what is
    committed; on SQLite, WAL: reads never block the writers).

    On SQLite, no rows while the file or its tables do not exist yet (the worker creates
    them); the reader never creates the file itself.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = parse_database_url(url)
        self.postgres = parsed.scheme == "postgresql"
        self.path = Path(parsed.path) if parsed.path is not None else None
        self._conninfo = parsed.conninfo
        self._schema = parsed.options.get("schema", "legato")
        self._conn: Any = None

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``?`` placeholders), as tuples."""
        if self.postgres:
            return self._postgres_rows(sql, params)
        if self._conn is None:
            assert self.path is not None
            if not self.path.exists():
                return []
            # mode=rw: never create the file; the worker must.
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=rw", uri=True, isolation_level=None, timeout=30.0
            )
        try:
            return self._conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def _postgres_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        if self._conn is None:
            assert self._conninfo is not None
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, options=f"-c search_path={self._schema}"
            )
        return self._conn.execute(to_postgres(sql), params).fetchall()  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DirectDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_bytes(value: Any) -> bytes:
    """A BLOB (SQLite) or BYTEA (PostgreSQL, a ``memoryview`` or ``bytes``) as bytes."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)
