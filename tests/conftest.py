"""Wires the fixture modules of tests/fixtures/ in (fixtures themselves live there), and
chooses what the PostgreSQL pass runs."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.engine",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the PostgreSQL pass (``LEGATO_TEST_BACKEND=postgres``) every test whose database
    comes from ``fresh_database`` runs on PostgreSQL. Left out, since the main pass ran
    them already: tests marked ``sqlite_only`` (about SQLite files themselves) or
    ``postgres_only`` (about the server), and tests parametrized over the backends (they
    ran on each, PostgreSQL included)."""
    from tests.fixtures.db import BACKENDS, ON_POSTGRES

    if not ON_POSTGRES:
        return
    kept, dropped = [], []
    for item in items:
        once = item.get_closest_marker("sqlite_only") or item.get_closest_marker("postgres_only")
        callspec = getattr(item, "callspec", None)
        per_backend = callspec is not None and any(
            isinstance(value, str) and value in BACKENDS for value in callspec.params.values()
        )
        (dropped if once or per_backend else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
