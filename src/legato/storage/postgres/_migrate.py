"""PostgreSQL's schema version, and bringing a database to the current one.

Legato's tables live in one schema of their own (``legato`` by default). Its version is
the row of ``legato_version``. Migrating takes a transaction-scoped advisory lock named
after the schema, so two migrators started at once (two deploys, a deploy and a test)
apply each migration once: the second waits, then finds nothing left to do. DDL is
transactional on PostgreSQL: a migration that fails leaves the schema as it was.
"""

from __future__ import annotations

import time
from typing import Any

from legato.errors import MigrationRequired, NotALegatoDatabase, SchemaTooNew
from legato.storage.base import SCHEMA_VERSION
from legato.storage.migrations import SchemaState, shipped, state_of

MIGRATE_COMMAND = "legato db migrate"


PACKAGE = "legato.storage.postgres.migrations"


def migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` of every PostgreSQL migration shipped, in order."""
    return shipped(PACKAGE)


def schema_state(conn: Any, schema: str, where: str) -> SchemaState:
    """The version of Legato's tables in ``schema``; raises if they are not Legato's or
    are newer than this code."""
    tables = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    names = {row[0] for row in tables}
    if not names:
        version = 0
    elif "legato_version" not in names:
        raise NotALegatoDatabase(
            f"schema {schema!r} of {where} holds tables that are not Legato's "
            f"({', '.join(sorted(names)[:5])}...): give Legato a schema of its own "
            "(?schema=NAME in the URL)"
        )
    else:
        row = conn.execute(f"SELECT version FROM {schema}.legato_version WHERE id = 1").fetchone()
        version = 0 if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version, SCHEMA_VERSION, where)
    return state_of(version, PACKAGE)


def require_current(conn: Any, schema: str, where: str, url: str) -> None:
    """Raise ``MigrationRequired`` (naming the command that fixes it) unless current."""
    state = schema_state(conn, schema, where)
    if state.current:
        return
    found = "has no Legato schema yet" if state.version == 0 else f"is at schema {state.version}"
    raise MigrationRequired(
        f"{where} {found}; this Legato needs schema {SCHEMA_VERSION} "
        f"({len(state.pending)} migration(s) to apply: {', '.join(state.pending)}). "
        f"Run: {MIGRATE_COMMAND} --database {url}"
    )


def migrate(conn: Any, schema: str, where: str) -> tuple[int, int]:
    """Apply the pending migrations in one transaction; ``(version before, after)``.

    ``conn`` is in autocommit mode; the transaction and its advisory lock are ours.
    """
    conn.execute("BEGIN")
    try:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"legato.migrate:{schema}",)
        )
        state = schema_state(conn, schema, where)
        before = version = state.version
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"SET LOCAL search_path TO {schema}")
        for number, _name, sql in migrations():
            if number > version:
                conn.execute(sql)
                version = number
        if version != before:
            conn.execute(
                "INSERT INTO legato_version (id, version, migrated_at) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
                "migrated_at = excluded.migrated_at",
                (version, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before, version
