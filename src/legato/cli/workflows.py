"""``legato workflows ...``: the workflows registered on a database."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, whole_column

workflows_app = typer.Typer(help="List registered workflows.", no_args_is_help=True)


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
