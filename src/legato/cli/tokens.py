"""``legato tokens create|list|revoke``: the bearer tokens of ``legato server``.

A token's secret is printed once, by ``create``; the database keeps only its digest. Its
name is what the records of operator actions say did them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.model.tokens import Scope
from legato.views import token_json

tokens_app = typer.Typer(
    help="Create, list and revoke the bearer tokens of `legato server`.", no_args_is_help=True
)

_SCOPES = ", ".join(s.value for s in Scope)


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who uses it: operator actions record this name.")],
    scope: Annotated[
        str, typer.Option("--scope", help=f"What it may do: {_SCOPES}.")
    ] = Scope.READ.value,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret: the only time it is shown."""
    with connect(database, create=True) as client:
        new = client.create_token(name, scope)
    if as_json:
        print_json(token_json(new.token) | {"secret": new.secret})
        return
    out = console()
    out.print(f"created token {new.token.name!r} (scope {new.token.scope.value}):", markup=False)
    out.print(new.secret, markup=False, soft_wrap=True)
    out.print("Keep it now: it is not shown again, and Legato keeps only its hash.", markup=False)


@tokens_app.command("list")
def list_tokens(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List tokens: name, scope, created, revoked (never secrets)."""
    with connect(database) as client:
        tokens = client.list_tokens()
    if as_json:
        print_json([token_json(t) for t in tokens])
        return
    if not tokens:
        console().print("no tokens: create one with `legato tokens create NAME`", markup=False)
        return
    table = Table()
    whole_column(table, "name", [t.name for t in tokens])
    table.add_column("scope", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("revoked", no_wrap=True)
    for t in tokens:
        table.add_row(
            Text(t.name),
            t.scope.value,
            when(t.created_at, short=True),
            Text("—") if t.revoked_at is None else Text(when(t.revoked_at), style="red"),
        )
    print_table(table)


@tokens_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: requests carrying it are refused from now on. Its name stays taken."""
    with connect(database) as client:
        token = client.revoke_token(name)
    if as_json:
        print_json(token_json(token))
        return
    console().print(f"revoked token {token.name!r}", markup=False)
