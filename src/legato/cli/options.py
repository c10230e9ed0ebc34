"""Options every command shares, and the client the commands talk through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

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


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON and would not round-trip.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, option: str) -> Any:
    """``text`` parsed as strict JSON; a usage error (exit 2) naming ``option`` if it is not."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise typer.BadParameter(f"not valid JSON ({exc}): {text!r}", param_hint=option) from None
