"""``legato deadletters ...``: deliveries that ran out of attempts, through ``legato.Client``.

A delivery whose handler failed on every attempt its retry policy allows is kept as a
dead letter, with its last error and traceback. After fixing the handler, ``redrive``
makes them pending again, from the first attempt, for a worker serving the subscription.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from legato.cli.errors import fail
from legato.cli.events import one_source
from legato.cli.options import ByOption, DatabaseOption, JsonOption, connect, who
from legato.cli.render import console, print_json, print_table, when, whole_column
from legato.cli.render_bus import error_text
from legato.model.deliveries import Delivery, RedrivePreview, StoredEvent
from legato.views import dead_letter_json

deadletters_app = typer.Typer(help="List and redrive dead letters.", no_args_is_help=True)

_RATE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(?:/\s*(s|m|h))?")
_PER_SECOND = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> float:
    """Deliveries per second from ``10``, ``10/s``, ``30/m`` or ``600/h``; a usage error
    otherwise."""
    match = _RATE.fullmatch(text.strip().lower())
    rate = 0.0 if match is None else float(match[1]) / _PER_SECOND[match[2] or "s"]
    if rate <= 0:
        raise typer.BadParameter(
            f"not a rate: {text!r}; give a positive number per second (10 or 10/s), "
            "per minute (30/m) or per hour (600/h)",
            param_hint="--rate",
        )
    return rate


def dead_letters_table(dead: list[Delivery], events: dict[int, StoredEvent]) -> Table:
    """Dead letters as a table: subscription, event, attempts, when, last error."""
    ids = [events[d.seq].event.id if d.seq in events else str(d.seq) for d in dead]
    table = Table()
    whole_column(table, "subscription", [d.subscription for d in dead])
    whole_column(table, "event id", ids)
    table.add_column("type", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("died", no_wrap=True)
    table.add_column("last error", overflow="fold")
    for d, event_id in zip(dead, ids, strict=True):
        stored = events.get(d.seq)
        table.add_row(
            Text(d.subscription),  # Text, not str: names and ids are data, never Rich markup
            Text(event_id),
            Text("?" if stored is None else stored.event.type),
            str(d.attempts),
            when(d.updated_at, short=True),
            _redriven(d, error_text(d.error)),
        )
    return table


def _confirmed(preview: RedrivePreview, yes: bool, as_json: bool) -> None:
    """Show what a subscription's redrive takes; return once the user said go (or there
    is nothing to redrive), else exit 1 with nothing done."""
    if preview.count == 0:
        return
    if not as_json:
        out = console()
        out.print(
            f"{preview.count} dead letter(s) of {preview.subscription} would be delivered again:",
            markup=False,
        )
        more = preview.count - len(preview.event_ids)
        out.print("  " + ", ".join(preview.event_ids) + (f" … and {more} more" if more else ""))
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        if as_json:
            print_json(
                {"subscription": preview.subscription, "redriven": None, "preview": asdict(preview)}
            )
        raise fail(
            f"nothing done: {preview.count} dead letter(s) would be redriven",
            hint="run it again with --yes to go ahead",
        )
    typer.confirm(f"redrive these {preview.count} dead letter(s)?", abort=True)


def _redriven(d: Delivery, error: Text) -> Text:
    """The last error, and who last redrove the dead letter (it died again since)."""
    if d.redriven_at is None:
        return error
    who_ = "" if d.redriven_by is None else f" by {d.redriven_by}"
    return Text.assemble(error, f"\n(dead again after a redrive{who_} {when(d.redriven_at)})")


@deadletters_app.command("list")
def list_dead_letters(
    subscription: Annotated[
        str | None,
        typer.Option("--subscription", "-s", help="Only dead letters of this subscription."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=10_000, help="At most this many, oldest event first."
        ),
    ] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dead letters, oldest event first, with their last error."""
    with connect(database) as client:
        dead = client.list_dead_letters(subscription=subscription, limit=limit)
        events = client.events_at(d.seq for d in dead)
    if as_json:
        print_json([dead_letter_json(d, events.get(d.seq)) for d in dead])
        return
    if not dead:
        of = "" if subscription is None else f" for {subscription}"
        console().print(f"no dead letters{of}", markup=False)
        return
    print_table(dead_letters_table(dead, events))
    out = console()
    if len(dead) == limit:
        out.print(f"the {limit} oldest dead letters shown; --limit N shows more", style="dim")
    out.print(
        "see one with `legato events show EVENT_ID`; after fixing its handler, "
        "`legato deadletters redrive EVENT_ID` or `--subscription NAME` delivers them again",
        style="dim",
    )


@deadletters_app.command("redrive")
def redrive(
    event_id: Annotated[
        str | None,
        typer.Argument(metavar="EVENT_ID", help="Redrive this event's dead letters."),
    ] = None,
    subscription: Annotated[
        str | None,
        typer.Option(
            "--subscription",
            "-s",
            help="Redrive this subscription's dead letters (with EVENT_ID: only its one).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="The event's source, when several sources used its id."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate", metavar="N/s", help="At most N dead letters a second (10, 10/s, 30/m)."
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="A subscription's: redrive without asking (after the preview)."
        ),
    ] = False,
    by: ByOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make dead letters pending again: a worker delivers them from the first attempt
    (each recorded as redriven --by, default cli:USER). A whole subscription's are a bulk
    action: how many is shown first, then it asks, unless --yes."""
    if event_id is None and subscription is None:
        raise typer.BadParameter(
            "say which dead letters: an EVENT_ID, or --subscription NAME for all of its",
            param_hint="EVENT_ID / --subscription",
        )
    per_second = None if rate is None else parse_rate(rate)
    preview = None
    with connect(database) as client, one_source():
        if event_id is None:
            assert subscription is not None
            preview = client.preview_redrive(subscription)
            _confirmed(preview, yes, as_json)
        count = client.redrive(
            event_id,
            subscription=subscription,
            source=source,
            rate=per_second,
            by=who(by),
            confirm=None if preview is None else preview.confirm,
        )
    if as_json:
        print_json(
            {"event_id": event_id, "subscription": subscription, "redriven": count}
            | ({} if preview is None else {"preview": asdict(preview)})
        )
        return
    what = " and ".join(
        part
        for part in (
            None if event_id is None else f"event {event_id}",
            None if subscription is None else f"subscription {subscription}",
        )
        if part
    )
    if count == 0:
        console().print(f"no dead letters for {what}; nothing to redrive", markup=False)
        return
    follow = (
        f"legato events show {shlex.quote(event_id)}"
        if event_id is not None
        else "legato deadletters list"
    )
    if event_id is not None and source is not None:
        follow += f" --source {shlex.quote(source)}"
    console().print(
        f"{count} dead letter(s) for {what} made pending again: a worker serving the "
        f"subscription delivers them from the first attempt. Follow with `{follow}`.",
        markup=False,
    )
