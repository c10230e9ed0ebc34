"""Options every command shares, and the client the commands talk through."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from legato.cli.errors import USAGE, fail
from legato.client import Client
from legato.errors import ConfigurationError
from legato.storage import DATABASE_ENV, DEFAULT_DATABASE_URL, database_url, parse_database_url

# No typer envvar=: the command must tell a URL given with --database from one read from
# the environment, so that an error names the one to fix. database_url() reads it.
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        metavar="URL",
        help="Database URL: sqlite:///relative.db, sqlite:////absolute/path.db, "
        f"postgresql://user@host/db or memory://. Default: ${DATABASE_ENV}, else "
        f"{DEFAULT_DATABASE_URL}.",
    ),
]

WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow.")
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(help="Only runs created at or after this time (ISO 8601; UTC if no offset)."),
]
UntilOption = Annotated[
    datetime | None, typer.Option(help="Only runs created before this time (ISO 8601).")
]
CorrelationOption = Annotated[
    str | None, typer.Option("--correlation-id", help="Only runs of this business flow.")
]
PrefixOption = Annotated[
    str | None, typer.Option("--prefix", help="Only runs whose id starts with this.")
]
"""The run filters ``legato runs list`` and ``legato runs bulk`` share."""

ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who does this, recorded with it (default: cli:USER, your login name).",
    ),
]


def who(by: str | None) -> str:
    """``--by``, else ``cli:`` and the login name: who an action is recorded as done by."""
    if by:
        return by
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        import os

        return f"cli:uid-{os.getuid()}"


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON instead of tables."),
]


def resolve_database(database: str | None) -> str:
    """The URL a command uses (``--database``, else the environment, else the default).

    A bad URL is a usage error whose hint names where it came from.
    """
    try:
        return database_url(database)
    except ConfigurationError as exc:
        hint = "fix --database" if database else f"fix or unset {DATABASE_ENV}"
        raise fail(str(exc), hint=hint, exit_code=USAGE) from None


def _origin(database: str | None) -> str:
    if database:
        return "that is where --database points"
    if os.environ.get(DATABASE_ENV):
        return f"that is where {DATABASE_ENV} points"
    return f"that is the default, ./legato.db (no --database, no {DATABASE_ENV})"


def require_database(url: str, database: str | None) -> None:
    """Refuse, creating nothing, when ``url`` is a SQLite file that does not exist.

    Only ``legato start`` and ``legato worker`` create a database: a read (or a cancel)
    on a mistyped path would otherwise leave an empty database there and report "no runs".
    """
    path = parse_database_url(url).path
    try:
        if path is None or Path(path).exists():
            return
    except OSError:
        return  # cannot even look (a directory it may not enter): opening says why
    where = Path(path).absolute()
    detail = "" if where.parent.is_dir() else f" (the directory {where.parent} does not exist)"
    raise fail(
        f"no Legato database at {where}{detail}",
        hint=f"{_origin(database)}; `legato worker` or `legato start` creates a database",
    )


@contextmanager
def connect(database: str | None, *, create: bool = False) -> Iterator[Client]:
    """A ``legato.Client`` on ``database`` (URL, else ``$LEGATO_DATABASE_URL``), closed after.

    Unless ``create``, a SQLite file that does not exist is refused and not created.
    """
    url = resolve_database(database)
    if not create:
        require_database(url, database)
    with Client(url) as client:
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
    except RecursionError:
        # The parser recurses per level; the API would refuse the value anyway (PayloadError).
        raise fail(
            f"{option} cannot be stored as JSON: it is nested too deeply",
            hint="nest lists and objects at most 254 levels deep, as the Python API requires",
            exit_code=USAGE,
        ) from None
