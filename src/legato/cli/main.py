"""``legato``: the entry point; nouns are added from their modules.

Every command goes through ``legato.Client`` (or, for ``worker`` and ``demo``, an
``App``), and every user error is turned into a message by ``legato.cli.errors``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from typing import Annotated

import typer

import legato
from legato.app import App
from legato.cli import demo, runs, signals, tasks, workflows
from legato.cli.errors import LegatoGroup
from legato.cli.options import DatabaseOption

cli = typer.Typer(
    cls=LegatoGroup,
    help="Legato: durable business workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(runs.runs_app, name="runs")
cli.add_typer(workflows.workflows_app, name="workflows")
cli.add_typer(tasks.tasks_app, name="tasks")
cli.command("start")(runs.start)
cli.command("cancel")(runs.cancel)
cli.command("signal")(signals.signal)
cli.command("demo")(demo.demo)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"legato {legato.__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Legato: durable business workflows."""


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
    target: Annotated[
        str, typer.Argument(metavar="MODULE:APP", help="The app to serve, as MODULE:APP")
    ],
    database: DatabaseOption = None,
) -> None:
    """Run the engine for an app until stopped; unfinished runs are recovered at start."""
    logging.basicConfig(
        level=os.environ.get("LEGATO_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = load_app(target)
    if database is not None:
        app.use_database(database)
    # Say what is served where: an operator's first question when a run stays pending.
    logging.getLogger(__name__).info(
        "worker for app %r serving %s on %s; stop with Ctrl-C or SIGTERM",
        app.name,
        ", ".join(sorted(app.registry.workflows)) or "no workflows",
        app.database or "a custom store",
    )
    asyncio.run(app.run_worker())


def main() -> None:
    """Console-script entry point."""
    cli()
