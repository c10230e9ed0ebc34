"""``legato subscriptions ...``: the durable consumers registered on a database.

Each ``@app.on`` handler and each ``@app.workflow(on=...)`` trigger is registered by the
workers that define it. One whose code is gone stays registered (events are still routed
to it, and wait for it) until ``remove`` forgets it.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.model.deliveries import DeliveryStatus
from legato.views import subscription_json

subscriptions_app = typer.Typer(
    help="List registered subscriptions; remove one whose handler is gone.",
    no_args_is_help=True,
)


_MOST = 10_000
"""Deliveries counted per subscription and status; past it, the list says ``10000+``."""


def _count(n: int) -> str:
    return f"{n}+" if n >= _MOST else str(n)


@subscriptions_app.command("list")
def list_subscriptions(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List subscriptions with their pattern and how many deliveries wait or are dead."""
    rows = []
    with connect(database) as client:
        for sub in client.list_subscriptions():
            pending, dead = (
                len(client.list_deliveries(status=s.value, subscription=sub.name, limit=_MOST))
                for s in (DeliveryStatus.PENDING, DeliveryStatus.DEAD)
            )
            rows.append((sub, pending, dead))
    if as_json:
        print_json([subscription_json(*row) for row in rows])
        return
    if not rows:
        console().print(
            "no subscriptions registered yet: a worker registers its @app.on handlers and "
            "triggers when it starts",
            markup=False,
        )
        return
    table = Table()
    whole_column(table, "subscription", [sub.name for sub, _, _ in rows])
    table.add_column("kind", no_wrap=True)
    table.add_column("pattern", overflow="fold")
    table.add_column("ordered by", no_wrap=True)
    table.add_column("pending", justify="right")
    table.add_column("dead", justify="right")
    table.add_column("registered", no_wrap=True)
    for sub, pending, dead in rows:
        pattern = (
            sub.pattern if isinstance(sub.pattern, str) else orjson.dumps(sub.pattern).decode()
        )
        table.add_row(
            Text(sub.name),
            sub.kind.value,
            Text(pattern),
            Text(sub.ordered_by or "—"),
            _count(pending),
            _count(dead),
            when(sub.registered_at, short=True),
        )
    print_table(table)


@subscriptions_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The subscription to forget.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a subscription whose handler is gone from the code, with its deliveries.

    New events are no longer routed to it, and `legato events prune` is no longer held
    back by what it would never take. A worker whose code still defines it registers it
    again when it starts.
    """
    with connect(database) as client:
        dropped = client.remove_subscription(name)
    if as_json:
        print_json({"subscription": name, "deliveries_removed": dropped})
        return
    console().print(
        f"subscription {name} removed, with {dropped} deliveries (pending or dead) to it; "
        "new events are no longer routed to it",
        markup=False,
    )
