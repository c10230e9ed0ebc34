"""``legato``: the entry point; nouns are added from their modules.

Every command goes through ``legato.Client`` (or, for ``worker`` and ``demo``, an
``App``), and every user error is turned into a message by ``legato.cli.errors``.
"""

from __future__ import annotations

from typing import Annotated

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup, TyperOption

import legato
from legato.cli import (
    actions,
    alerts,
    db,
    deadletters,
    demo,
    events,
    expectations,
    flows,
    runs,
    server,
    signals,
    subscriptions,
    tasks,
    tokens,
    worker,
    workers,
    workflows,
)
from legato.cli.errors import LegatoGroup
from legato.cli.worker import load_app as load_app  # legato.testing.crash imports it here

cli = typer.Typer(
    cls=LegatoGroup,
    help="Legato: durable business workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(runs.runs_app, name="runs")
cli.add_typer(workflows.workflows_app, name="workflows")
cli.add_typer(tasks.tasks_app, name="tasks")
cli.add_typer(workers.workers_app, name="workers")
cli.add_typer(events.events_app, name="events")
cli.add_typer(deadletters.deadletters_app, name="deadletters")
cli.add_typer(flows.flows_app, name="flows")
cli.add_typer(subscriptions.subscriptions_app, name="subscriptions")
cli.add_typer(expectations.expectations_app, name="expectations")
cli.add_typer(alerts.alerts_app, name="alerts")
cli.add_typer(db.db_app, name="db")
cli.add_typer(tokens.tokens_app, name="tokens")
for name, command in (
    ("retry", actions.retry),
    ("resume-compensation", actions.resume_compensation),
    ("restart", actions.restart),
    ("bulk", actions.bulk),
):
    runs.runs_app.command(name)(command)
cli.command("start")(runs.start)
cli.command("cancel")(runs.cancel)
cli.command("signal")(signals.signal)
cli.command("worker")(worker.worker)
cli.command("server")(server.server)
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


def _hide_flag_metavars(command: object) -> None:
    """Show flags as ``--json``, not ``--json <bool>``: a flag takes no value to describe.

    Typer's help prints each option's type; an empty metavar replaces it. The ``--help``
    option is made on first use, so it is made here first to be fixed as well.
    """
    if not isinstance(command, TyperCommand | TyperGroup):
        return
    for param in [*command.params, command.get_help_option(typer.Context(command))]:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _hide_flag_metavars(sub)


def main() -> None:
    """Console-script entry point."""
    command = typer.main.get_command(cli)
    _hide_flag_metavars(command)
    command()
