"""Fixtures for end-to-end tests of the ``legato`` executable on real SQLite files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.cli_driver import Cli, Workers, sqlite_url


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh SQLite file (not created until a command opens it)."""
    return Cli(sqlite_url(tmp_path / "legato.db"))


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
    cli = Cli(sqlite_url(directory / "legato.db"))
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
