"""Wires the fixture modules of tests/fixtures/ in (fixtures themselves live there), and
chooses what the PostgreSQL pass runs."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.engine",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leaves out what this pytest process must not run (see ``_runs_here``)."""
    kept, dropped = [], []
    for item in items:
        (kept if _runs_here(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _runs_here(item: pytest.Item) -> bool:
    """False for a test marked ``serial`` in a pytest-xdist worker (it restarts a server
    the tests running beside it use: scripts/test runs those alone, ``-m serial``), and
    for what the PostgreSQL pass leaves out (``_in_postgres_pass``)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and item.get_closest_marker("serial"):
        return False
    return _in_postgres_pass(item)


def _in_postgres_pass(item: pytest.Item) -> bool:
    """In the PostgreSQL pass (``LEGATO_TEST_BACKEND=postgres``) every test whose database
    comes from ``fresh_database`` runs on PostgreSQL. Left out, since the main pass ran
    them already: tests marked ``sqlite_only`` (about SQLite files themselves) or
    ``postgres_only`` (about the server), and tests parametrized over the backends (they
    ran on each, PostgreSQL included)."""
    from tests.fixtures.db import BACKENDS, ON_POSTGRES

    if not ON_POSTGRES:
        return True
    if item.get_closest_marker("sqlite_only") or item.get_closest_marker("postgres_only"):
        return False
    callspec = getattr(item, "callspec", None)
    return callspec is None or not any(
        isinstance(value, str) and value in BACKENDS for value in callspec.params.values()
    )
