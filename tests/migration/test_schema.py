"""The numbered migrations produce exactly ``schema.sql``, and are numbered honestly."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

from legato.storage.base import SCHEMA_VERSION
from legato.storage.sqlite import SqliteStore

SQLITE_PACKAGE = resources.files("legato.storage.sqlite")
MIGRATIONS = SQLITE_PACKAGE.joinpath("migrations")
NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")

# SQL tokens: string literals and quoted identifiers are kept verbatim, comments dropped,
# and runs of whitespace collapse. Whitespace next to punctuation carries no meaning, so
# it is dropped there; everything else (case, order, every word) must match exactly.
_TOKEN = re.compile(
    r"""'(?:[^']|'')*'          # string literal
      | "(?:[^"]|"")*"          # quoted identifier
      | --[^\n]*                # line comment
      | /\*.*?\*/               # block comment
      | \s+                     # whitespace
      | [(),;]                  # punctuation
      | [^\s(),;'"]+            # anything else (words, operators)
    """,
    re.VERBOSE | re.DOTALL,
)


def normalize_sql(sql: str | None) -> str | None:
    """``sql`` with comments removed and insignificant whitespace collapsed."""
    if sql is None:
        return None
    out: list[str] = []
    pending_space = False
    for token in _TOKEN.findall(sql):
        if token.startswith("--") or token.startswith("/*") or token.isspace():
            pending_space = True
            continue
        if token in "(),;" or (out and out[-1] in "(,"):
            pending_space = False
        if pending_space and out:
            out.append(" ")
        out.append(token)
        pending_space = False
    return "".join(out).strip()


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str, str | None]]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    return [(t, n, tbl, normalize_sql(sql)) for t, n, tbl, sql in rows]


def migration_files() -> list[str]:
    return sorted(e.name for e in MIGRATIONS.iterdir() if e.name.endswith(".sql"))


def schema_from_schema_sql() -> list[tuple[str, str, str, str | None]]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SQLITE_PACKAGE.joinpath("schema.sql").read_text("utf-8"))
        return schema_of(conn)
    finally:
        conn.close()


def test_normalization_ignores_comments_and_layout_only() -> None:
    a = "CREATE TABLE t (\n  a TEXT, -- note\n  b INT /* x */ NOT NULL\n)"
    assert normalize_sql(a) == normalize_sql("CREATE TABLE t(a TEXT,b INT NOT NULL)")
    assert normalize_sql(a) != normalize_sql("CREATE TABLE t (a TEXT, b INT)")
    assert normalize_sql("WHERE s IN ('a  b')") != normalize_sql("WHERE s IN ('a b')")
    assert normalize_sql("WHERE s = '--x'") == "WHERE s = '--x'"


def test_schema_sql_defines_the_tables_legato_uses() -> None:
    tables = {name for kind, name, _, _ in schema_from_schema_sql() if kind == "table"}
    assert tables == {
        "runs",
        "history",
        "workers",
        "workflows",
        "signals",
        "tasks",
        "events",
        "subscriptions",
        "registry",
        "deliveries",
        "expectations",
        "expectation_arrivals",
        "alerts",
        "api_tokens",
    }


def test_migrations_applied_in_order_produce_schema_sql() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for name in migration_files():
            conn.executescript(MIGRATIONS.joinpath(name).read_text("utf-8"))
        assert schema_of(conn) == schema_from_schema_sql()
    finally:
        conn.close()


async def test_opening_a_new_database_migrates_it_to_schema_sql(tmp_path: Path) -> None:
    path = tmp_path / "legato.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert schema_of(conn) == schema_from_schema_sql()
    finally:
        conn.close()


def test_migrations_are_named_by_number_and_purpose() -> None:
    names = migration_files()
    assert names, "no migrations shipped"
    bad = [n for n in names if not NAME.match(n)]
    assert bad == [], f"migrations must be named NNNN_purpose.sql: {bad}"


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    numbers = [int(NAME.match(n).group(1)) for n in migration_files() if NAME.match(n)]
    assert numbers == list(range(1, len(numbers) + 1))


def test_last_migration_is_the_schema_version() -> None:
    numbers = [int(n[:4]) for n in migration_files()]
    assert max(numbers) == SCHEMA_VERSION
