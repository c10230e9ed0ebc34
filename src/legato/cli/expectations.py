"""``legato expectations ...``: the instances of ``app.expect`` expectations, through
``legato.Client``.

Each trigger event opens one instance for its key; it ends ``fulfilled`` when what it
awaits arrives in time, ``violated`` when its deadline passes first (a worker serving the
app notices, publishes ``legato.expectation.violated`` and starts its workflow),
``cancelled`` by an ``unless`` event, or ``late_fulfilled`` when what it awaited arrives
after the violation. ``list`` scans them all; ``show`` details one expectation's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from legato.bus.subscriptions import EXPECTATION_PREFIX
from legato.cli.errors import fail
from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.client import Client
from legato.model.deliveries import SubscriptionKind
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.views import instance_json

expectations_app = typer.Typer(
    help="List expectation instances and show one expectation's.", no_args_is_help=True
)

_NONE = "—"
_MOST = 10_000
"""Instances counted per status by ``show``; past it, the summary says ``10000+``."""

_STATUS_STYLES = {
    ExpectationStatus.OPEN: "cyan",
    ExpectationStatus.FULFILLED: "green",
    ExpectationStatus.VIOLATED: "bold red",
    ExpectationStatus.CANCELLED: "magenta",
    ExpectationStatus.LATE_FULFILLED: "yellow",
}

LimitOption = Annotated[
    int,
    typer.Option(
        "--limit", "-n", min=1, max=_MOST, help="At most this many instances, newest first."
    ),
]


def span(delta: timedelta) -> str:
    """A duration in its two largest units, for people: ``45s``, ``4m 59s``, ``2d 03h``."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def is_overdue(inst: ExpectationInstance, now: datetime) -> bool:
    """True for an open instance whose deadline has passed: no worker has violated it yet."""
    return inst.status is ExpectationStatus.OPEN and inst.deadline <= now


def remaining(inst: ExpectationInstance, now: datetime) -> Text:
    """How long an open instance has left (``due in 4m 59s``), or by how much it is late."""
    if is_overdue(inst, now):
        return Text(f"overdue {span(now - inst.deadline)}", style="red")
    return Text(f"due in {span(inst.deadline - now)}")


def status_text(status: ExpectationStatus) -> Text:
    """An instance's status, coloured by how worried the reader should be."""
    return Text(status.value, style=_STATUS_STYLES.get(status, ""))


def _missing(inst: ExpectationInstance) -> str:
    return ", ".join(inst.missing_patterns) or _NONE


def instances_table(instances: list[ExpectationInstance], now: datetime) -> Table:
    """Instances as a table: expectation, key, status, opened, deadline, closed, violation."""
    table = Table()
    whole_column(table, "expectation", [i.expectation for i in instances])
    whole_column(table, "key", [i.key for i in instances])
    table.add_column("status", no_wrap=True)
    table.add_column("opened", no_wrap=True)
    table.add_column("deadline", no_wrap=True)
    table.add_column("closed")  # may wrap: "due in 5m 59s" in two lines beats a cut id
    whole_column(table, "violation", [i.violation_id or _NONE for i in instances])
    for inst in instances:
        if inst.status is ExpectationStatus.OPEN:
            closed = remaining(inst, now)
        else:
            closed = Text(_NONE if inst.closed_at is None else when(inst.closed_at, short=True))
        table.add_row(
            Text(inst.expectation),  # Text, not str: names and keys are data, never markup
            Text(inst.key),
            status_text(inst.status),
            when(inst.opened_at, short=True),
            when(inst.deadline, short=True),
            closed,
            Text(inst.violation_id or _NONE),
        )
    return table


def instance_view(inst: ExpectationInstance, now: datetime) -> RenderableType:
    """One instance in detail: its trigger, what it still awaits, how and when it closed."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    deadline = Text(when(inst.deadline))
    if inst.status is ExpectationStatus.OPEN:
        deadline.append(" (")
        deadline.append_text(remaining(inst, now))
        deadline.append(")")
    facts.add_row("status", status_text(inst.status))
    facts.add_row("trigger", f"seq {inst.trigger_seq}")
    facts.add_row("instance", Text(inst.instance))
    facts.add_row("correlation id", Text(inst.correlation_id or _NONE))
    facts.add_row("missing", _missing(inst))
    facts.add_row("opened", when(inst.opened_at))
    facts.add_row("deadline", deadline)
    facts.add_row("closed", _NONE if inst.closed_at is None else when(inst.closed_at))
    facts.add_row("closed by", _NONE if inst.closed_by is None else f"seq {inst.closed_by}")
    facts.add_row("violation", Text(inst.violation_id or _NONE))
    return Panel(facts, title=Text(f"key {inst.key}"), title_align="left", expand=False)


def _count(n: int) -> str:
    return f"{n}+" if n >= _MOST else str(n)


def count_by_status(client: Client, name: str, key: str | None) -> dict[str, int]:
    """How many instances of ``name`` (and ``key``) are in each status, up to ``_MOST``."""
    return {
        s.value: len(client.list_expectations(name=name, status=s, key=key, limit=_MOST))
        for s in ExpectationStatus
    }


def summary_line(name: str, key: str | None, counts: dict[str, int]) -> str:
    """``show``'s last line: how many instances, and how many in each status."""
    total = sum(counts.values())
    of = name if key is None else f"{name} for key {key}"
    each = ", ".join(f"{_count(n)} {status}" for status, n in counts.items())
    return f"{of}: {_count(total)} instance{'' if total == 1 else 's'} ({each})"


def registered_expectations(client: Client) -> list[str]:
    """The expectations a worker registered on the database (each has a subscription)."""
    return sorted(
        sub.name.removeprefix(EXPECTATION_PREFIX)
        for sub in client.list_subscriptions()
        if sub.kind is SubscriptionKind.EXPECTATION
    )


@expectations_app.command("list")
def list_instances(
    status: Annotated[
        ExpectationStatus | None,
        typer.Option("--status", "-s", help="Only instances in this status."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Only instances of this expectation.")
    ] = None,
    limit: LimitOption = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List expectation instances, newest first, with their deadline and how they closed."""
    with connect(database) as client:
        instances = client.list_expectations(name=name, status=status, limit=limit)
    if as_json:
        print_json([instance_json(i) for i in instances])
        return
    out = console()
    if not instances:
        filtered = status is not None or name is not None
        out.print(
            "no expectation instances match"
            if filtered
            else "no expectation instances yet: a trigger event opens one",
            markup=False,
        )
        return
    now = datetime.now(UTC)
    print_table(instances_table(instances, now))
    if len(instances) == limit:
        out.print(f"the {limit} newest instances shown; --limit N shows more", style="dim")
    if any(is_overdue(i, now) for i in instances):
        out.print(
            "an overdue instance is violated by the next worker serving its app; "
            "is one running on this database?",
            style="dim",
        )
    see = "see one expectation's instances in detail with `legato expectations show NAME`"
    if any(i.violation_id for i in instances):
        see += ", a violation with `legato events show VIOLATION_ID`"
    out.print(see, style="dim", markup=False)


@expectations_app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The expectation's name.")],
    key: Annotated[
        str | None, typer.Option("--key", "-k", help="Only the instances of this key.")
    ] = None,
    limit: LimitOption = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one expectation's instances in detail, and how many are in each status."""
    with connect(database) as client:
        instances = client.list_expectations(name=name, key=key, limit=limit)
        counts = (
            count_by_status(client, name, key)
            if instances
            else {s.value: 0 for s in ExpectationStatus}
        )
        known = [] if instances else registered_expectations(client)
        # Another key's instance, or a registration, says the name is right.
        exists = (
            bool(instances)
            or name in known
            or bool(key is not None and client.list_expectations(name=name, limit=1))
        )
    if not exists:
        raise fail(
            f"no expectation {name!r} on this database: no instance of it, and no worker "
            "registered it",
            hint=(
                f"registered expectations: {', '.join(known)}"
                if known
                else "a worker registers its app's expectations when it starts"
            ),
        )
    if as_json:
        print_json(
            {
                "expectation": name,
                "key": key,
                "counts": counts,
                "instances": [instance_json(i) for i in instances],
            }
        )
        return
    out = console()
    if not instances:
        of = "" if key is None else f" for key {key}"
        out.print(
            f"no instances of expectation {name}{of} yet: a trigger event opens one",
            markup=False,
        )
        return
    now = datetime.now(UTC)
    out.print(Group(*(instance_view(i, now) for i in instances)))
    if len(instances) == limit:
        out.print(f"the {limit} newest instances shown; --limit N shows more", style="dim")
    out.print(Text(summary_line(name, key, counts), style="bold"))
