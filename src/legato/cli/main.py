"""``legato``: the entry point; nouns are added from their modules."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from legato.app import App

cli = typer.Typer(help="Legato: durable business workflows.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", "-d", envvar="LEGATO_DATABASE_URL",
                 help="Database URL (sqlite:///path.db, memory://). Default: ./legato.db"),
]


def load_app(target: str) -> App:
    """Import ``MODULE:APP`` (the current directory is on the path) and return the App."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise typer.BadParameter(f"expected MODULE:APP, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    if attr:
        app = getattr(module, attr, None)
    else:
        found = [v for v in vars(module).values() if isinstance(v, App)]
        app = found[0] if len(found) == 1 else None
    if not isinstance(app, App):
        raise typer.BadParameter(f"{target!r} is not a legato.App (write MODULE:APP)")
    return app


@cli.command()
def worker(
    target: Annotated[str, typer.Argument(help="The app to serve, as MODULE:APP")],
    database: DatabaseOption = None,
) -> None:
    """Run the engine for an app until stopped; unfinished runs are recovered at start."""
    logging.basicConfig(level=os.environ.get("LEGATO_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = load_app(target)
    if database is not None:
        app.use_database(database)
    asyncio.run(app.run_worker())


def main() -> None:
    """Console-script entry point."""
    cli()
