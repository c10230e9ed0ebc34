"""``legato workflows ...``: the workflows registered on a database, and one's graph."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from legato import graph, graphchart
from legato.cli.errors import USAGE, fail
from legato.cli.loading import environment, load_app
from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, whole_column
from legato.storage import DATABASE_ENV

workflows_app = typer.Typer(
    help="List registered workflows; draw one's steps as a Mermaid flowchart.",
    no_args_is_help=True,
)


@workflows_app.command("list")
def list_workflows(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the workflows that workers have registered on this database."""
    with connect(database) as client:
        names = client.list_workflows()
    if as_json:
        print_json([{"name": name} for name in names])
        return
    if not names:
        console().print(
            "no workflows registered yet: start a worker for your app "
            "(legato worker MODULE:APP) and it registers its workflows"
        )
        return
    table = Table()
    whole_column(table, "workflow", names)
    for name in names:
        table.add_row(Text(name))
    print_table(table)


@workflows_app.command("graph")
def graph_workflow(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:APP",
            help="The app, as for `legato worker`: MODULE:APP or path/to/file.py:APP.",
        ),
    ],
    name: Annotated[str, typer.Argument(metavar="NAME", help="The workflow to draw.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the graph's nodes and edges as JSON.")
    ] = False,
) -> None:
    """Draw a workflow's steps, waits, branches and loops as a Mermaid flowchart.

    The graph is read from the workflow's code, which is imported but not run: no
    database is needed. Steps with a compensation point to their undo.
    """
    # The app is only read: whatever LEGATO_DATABASE_URL says, it opens no database.
    with environment(DATABASE_ENV, "memory://"):
        app = load_app(target, usage="legato workflows graph {target} NAME")
    if name not in app.registry.workflows:
        known = ", ".join(sorted(app.registry.workflows)) or "none"
        raise fail(
            f"app {app.name!r} has no workflow {name!r}; its workflows: {known}", exit_code=USAGE
        )
    drawn = graph.workflow_graph(app, name)
    typer.echo(graphchart.to_json(drawn) if as_json else graphchart.to_mermaid(drawn), nl=False)
