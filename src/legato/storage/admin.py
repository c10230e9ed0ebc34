"""``legato db``'s work: a database's schema version, and migrating it.

SQLite files are migrated when Legato opens them (an embedded file has one user at a
time that could do it); ``migrate`` does the same without starting anything. PostgreSQL
databases are migrated only here (``legato db migrate``, once per deploy): workers and
clients refuse a schema that is not current, naming this command.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from legato.errors import StorageError
from legato.storage import DatabaseUrl, parse_database_url
from legato.storage.base import SCHEMA_VERSION
from legato.storage.migrations import SchemaState


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """What ``legato db status`` reports about one database."""

    url: str  # password hidden
    dialect: str
    exists: bool
    version: int
    supported: int = SCHEMA_VERSION
    pending: list[str] = field(default_factory=list)
    schema: str | None = None  # PostgreSQL: the schema holding Legato's tables

    @property
    def current(self) -> bool:
        return self.exists and self.version == self.supported and not self.pending


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``legato db migrate`` did: the version before and after, the files applied."""

    url: str
    dialect: str
    before: int
    after: int
    applied: list[str]


def database_status(url: str) -> DatabaseStatus:
    """The schema version of the database at ``url`` and what migrating would apply;
    creates nothing (a SQLite file that does not exist is reported as such)."""
    parsed = parse_database_url(url)
    if parsed.scheme == "memory":
        return DatabaseStatus(parsed.url, "memory", True, SCHEMA_VERSION)
    if parsed.scheme == "postgresql":
        with _postgres(parsed) as (conn, schema, where):
            from legato.storage.postgres._migrate import schema_state as pg_state

            state = pg_state(conn, schema, where)
        return _status(parsed, "postgresql", True, state, schema)
    assert parsed.path is not None
    if not os.path.exists(parsed.path):
        from legato.storage.migrations import state_of
        from legato.storage.sqlite._migrate import PACKAGE

        return _status(parsed, "sqlite", False, state_of(0, PACKAGE), None)
    from legato.storage.sqlite._migrate import schema_state as sqlite_state

    uri = f"file:{urllib.parse.quote(os.path.abspath(parsed.path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {parsed.path}: {exc}") from exc
    try:
        state = sqlite_state(conn, parsed.path)
    except sqlite3.DatabaseError as exc:
        from legato.errors import NotALegatoDatabase

        raise NotALegatoDatabase(f"{parsed.path} is not a Legato database: {exc}") from exc
    finally:
        conn.close()
    return _status(parsed, "sqlite", True, state, None)


def migrate_database(url: str) -> Migrated:
    """Bring the database at ``url`` to this Legato's schema (creating a SQLite file, or
    Legato's schema in a PostgreSQL database, if there is none yet)."""
    parsed = parse_database_url(url)
    if parsed.scheme == "memory":
        return Migrated(parsed.url, "memory", SCHEMA_VERSION, SCHEMA_VERSION, [])
    if parsed.scheme == "postgresql":
        from legato.storage.postgres._migrate import migrate, migrations

        with _postgres(parsed) as (conn, schema, where):
            before, after = migrate(conn, schema, where)
        shipped = migrations()
    else:
        from legato.storage.sqlite import SqliteStore
        from legato.storage.sqlite._migrate import migrations

        assert parsed.path is not None
        before = database_status(url).version
        SqliteStore(parsed.path)._connect(True).close()  # opening the writer migrates
        after = SCHEMA_VERSION
        shipped = migrations()
    applied = [name for number, name, _ in shipped if before < number <= after]
    return Migrated(parsed.display, parsed.scheme, before, after, applied)


def _status(
    parsed: DatabaseUrl, dialect: str, exists: bool, state: SchemaState, schema: str | None
) -> DatabaseStatus:
    return DatabaseStatus(
        parsed.display, dialect, exists, state.version, SCHEMA_VERSION, state.pending, schema
    )


@contextmanager
def _postgres(parsed: DatabaseUrl) -> Iterator[tuple[Any, str, str]]:
    """A plain autocommit connection to a PostgreSQL URL, its errors named."""
    import psycopg

    from legato.storage.postgres._errors import postgres_error
    from legato.storage.postgres.store import _where

    assert parsed.conninfo is not None
    where = _where(parsed.conninfo)
    try:
        with psycopg.connect(parsed.conninfo, autocommit=True, connect_timeout=10) as conn:
            yield conn, parsed.options.get("schema", "legato"), where
    except psycopg.Error as exc:
        raise postgres_error(exc, where, "reading or migrating its schema") from exc
