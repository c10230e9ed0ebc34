"""``legato workers list``: the worker processes registered on a database.

Each worker registers itself when it starts and heartbeats while it runs; the runs it
owns are the ones it holds in flight. A worker whose heartbeat is older than the lease
is presumed dead, and the next worker to start takes its runs over.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.client import Client
from legato.model import RunStatus
from legato.views import worker_json

workers_app = typer.Typer(help="List the workers registered on a database.", no_args_is_help=True)

_UNFINISHED = [s for s in RunStatus if not s.is_terminal]
_COUNT_LIMIT = 100_000
"""Runs read per status to count owners; a count that reaches it is shown as a floor."""


def owned_runs(client: Client) -> tuple[Counter[str], bool]:
    """How many unfinished runs each worker owns, and whether the counts are complete."""
    counts: Counter[str] = Counter()
    complete = True
    for status in _UNFINISHED:
        runs = client.list_runs(status=status.value, limit=_COUNT_LIMIT)
        complete = complete and len(runs) < _COUNT_LIMIT
        counts.update(run.owner for run in runs if run.owner is not None)
    return counts, complete


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
        counts, complete = owned_runs(client)
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
