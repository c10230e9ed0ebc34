"""Fixtures for end-to-end tests of the ``legato`` executable on real databases: SQLite
files, or PostgreSQL schemas in the PostgreSQL pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.cli_driver import Cli, Workers
from tests.fixtures.db import fresh_database


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh database (``fresh_database``: a SQLite file, or a PostgreSQL
    schema in the PostgreSQL pass)."""
    return Cli(fresh_database(tmp_path))


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
    cli = Cli(fresh_database(directory))
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
