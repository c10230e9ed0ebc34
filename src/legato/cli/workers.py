"""``legato workers list``: the worker processes registered on a database.

Each worker registers itself when it starts and heartbeats while it runs; the runs it
owns are the ones it holds in flight. A worker whose heartbeat is older than the lease
is presumed dead, and the next worker to start takes its runs over.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.views import worker_json

workers_app = typer.Typer(help="List the workers registered on a database.", no_args_is_help=True)


def _age(at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


@workers_app.command("list")
def list_workers(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List workers: id, host, pid, when started, last heartbeat, runs owned (--json: and
    the workflows each serves)."""
    with connect(database) as client:
        workers = client.list_workers()
        counts, complete = client.runs_owned()
    now = datetime.now(UTC)
    if as_json:
        print_json([worker_json(w, counts[w.worker_id]) for w in workers])
        return
    if not workers:
        console().print(
            "no workers registered: start one with `legato worker MODULE:APP`", markup=False
        )
        return
    table = Table()
    whole_column(table, "worker id", [w.worker_id for w in workers])
    whole_column(table, "host", [w.host for w in workers])
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("last heartbeat", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    for w in workers:
        quiet = w.is_presumed_dead(now)
        table.add_row(
            Text(w.worker_id),
            Text(w.host),
            str(w.pid),
            when(w.started_at, short=True),
            Text(
                _age(w.heartbeat_at, now) + (" (presumed dead)" if quiet else ""),
                style="red" if quiet else "",
            ),
            f"{counts[w.worker_id]}{'' if complete else '+'}",
        )
    print_table(table)
