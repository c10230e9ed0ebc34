"""Bring a SQLite database to the current schema, or refuse it with a clear error."""

from __future__ import annotations

import sqlite3

from legato.errors import NotALegatoDatabase, SchemaTooNew
from legato.storage.base import SCHEMA_VERSION
from legato.storage.migrations import SchemaState, shipped, state_of
from legato.storage.sqlite._errors import sqlite_error

APPLICATION_ID = 0x4C47544F  # "LGTO": marks the file as Legato's (PRAGMA application_id)


PACKAGE = "legato.storage.sqlite.migrations"


def migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` of every migration shipped, in order."""
    return shipped(PACKAGE)


def schema_state(conn: sqlite3.Connection, where: str) -> SchemaState:
    """The version of the file on ``conn``; raises if it is not Legato's or too new."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise NotALegatoDatabase(
                f"{where} is a SQLite database, but not a Legato one (it has {tables} "
                "other objects). Point Legato at a new file or an empty database."
            )
        version = 0
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version, SCHEMA_VERSION, where)
    return state_of(version, PACKAGE)


def ensure_schema(conn: sqlite3.Connection, where: str) -> tuple[int, int]:
    """Create or migrate the schema in ``conn``; raise if the file is not ours or too new.

    Returns the version before and after."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        raise sqlite_error(exc, where, "opening it for writing") from exc
    try:
        before = version = schema_state(conn, where).version
        for number, _name, sql in migrations():
            if number > version:
                for statement in _statements(sql):
                    conn.execute(statement)
                version = number
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before, version


def _statements(sql: str) -> list[str]:
    # executescript() would commit our transaction; split on complete statements instead.
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return [s for s in statements if s.strip(" \n;")]
