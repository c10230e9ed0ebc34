"""Options every command shares, and the client the commands talk through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from legato.client import Client

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        envvar="LEGATO_DATABASE_URL",
        show_envvar=True,
        help="Database URL (sqlite:///path.db, memory://). Default: ./legato.db",
    ),
]

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON instead of tables."),
]


@contextmanager
def connect(database: str | None) -> Iterator[Client]:
    """A ``legato.Client`` on ``database`` (URL, else ``$LEGATO_DATABASE_URL``), closed after."""
    with Client(database) as client:
        yield client
