"""Fixtures for end-to-end tests of the ``legato`` executable on real SQLite files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.cli_driver import Cli, Workers, sqlite_url

ON_POSTGRES = os.environ.get("LEGATO_TEST_BACKEND") == "postgres"
"""``LEGATO_TEST_BACKEND=postgres``: the CLI tests run on a fresh PostgreSQL schema each,
not a SQLite file (the tests that are about SQLite files skip themselves then)."""


def database_for(directory: Path) -> str:
    """A fresh database for one test: a SQLite file in ``directory`` (not created until a
    command opens it), or a migrated PostgreSQL schema."""
    if not ON_POSTGRES:
        return sqlite_url(directory / "legato.db")
    from legato.storage.admin import migrate_database
    from tests.fixtures.db import postgres_url

    url = postgres_url()
    migrate_database(url)
    return url


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh database (see ``database_for``)."""
    return Cli(database_for(tmp_path))


@pytest.fixture
def workers(cli: Cli, tmp_path: Path) -> Iterator[Workers]:
    """Start workers on ``cli``'s database; all are stopped when the test ends."""
    started = Workers(cli, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A database with one example worker serving it for the whole module."""
    directory = tmp_path_factory.mktemp("served")
    cli = Cli(database_for(directory))
    started = Workers(cli, directory)
    try:
        started.start()
        yield cli
    finally:
        started.stop_all()


@pytest.fixture
def registered(cli: Cli, workers: Workers) -> Callable[[], None]:
    """Register the example's workflows on ``cli``'s database, then stop the worker.

    Runs started afterwards stay ``pending``: nobody executes them.
    """

    def register() -> None:
        workers.stop(workers.start())

    return register


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, only the tests whose database is the ``cli`` (or ``served``) one:
    the others name SQLite files of their own, and ran on SQLite already."""
    if not ON_POSTGRES:
        return
    kept, dropped = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        on_acceptance = "tests/acceptance/" in str(item.fspath)
        (kept if not on_acceptance or {"cli", "served"} & set(names) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
