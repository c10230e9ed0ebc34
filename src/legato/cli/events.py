"""``legato events ...``: the event log, through ``legato.Client``.

Read the log (``list``, ``show`` with every subscriber's delivery), publish from the
command line, and operate on it: ``replay`` delivers archived events to one subscription
again, ``prune`` deletes old, fully delivered ones. Times are ISO 8601 or how long ago
(``30m``, ``12h``, ``7d``); durations are the same without the "ago".
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from legato.bus.clients import CLIENT_SOURCE
from legato.cli.errors import USAGE, fail
from legato.cli.options import DatabaseOption, JsonOption, connect, parse_json
from legato.cli.render import console, print_json, print_table
from legato.cli.render_bus import event_view, events_table
from legato.errors import AmbiguousEvent, EventNotFound
from legato.model.events import Event
from legato.views import delivery_json, stored_event_json

events_app = typer.Typer(help="List, show, publish, replay and prune events.", no_args_is_help=True)

_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_LONGEST = 1000 * 365 * 86_400  # datetimes end at year 9999: a longer time ago overflows
_TIME_FORMS = (
    "ISO 8601 (2026-12-01, 2026-12-01T09:30, 2026-12-01T09:30:00Z) "
    "or how long ago (45s, 30m, 12h, 7d, 2w, 1h30m)"
)


# -- parsing -------------------------------------------------------------------------------


def parse_duration(text: str, option: str) -> timedelta:
    """``45s``, ``30m``, ``12h``, ``7d``, ``2w`` or a sum of them (``1h30m``); a usage error
    naming ``option`` otherwise."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise typer.BadParameter(
            f"not a duration: {text!r}; give a number and a unit, s m h d or w "
            "(45s, 30m, 12h, 7d, 2w, 1h30m)",
            param_hint=option,
        )
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _PART.findall(compact))
    if seconds > _LONGEST:
        raise typer.BadParameter(f"{text!r} is longer than 1,000 years", param_hint=option)
    return timedelta(seconds=seconds)


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """An aware datetime from ISO 8601 (local time when it names no offset) or from how
    long before ``now`` (``30m``, ``7d``); a usage error naming ``option`` otherwise."""
    compact = text.strip().lower()
    if _DURATION.fullmatch(compact):
        return (now or datetime.now(UTC)) - parse_duration(compact, option)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r}; give {_TIME_FORMS}", param_hint=option
        ) from None
    return at if at.utcoffset() is not None else at.astimezone()


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    now = datetime.now(UTC)
    start = None if since is None else parse_time(since, "--since", now)
    end = None if until is None else parse_time(until, "--until", now)
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(
            f"--until ({end.isoformat()}) is not after --since ({start.isoformat()})",
            param_hint="--since / --until",
        )
    return start, end


@contextmanager
def one_source() -> Iterator[None]:
    """Say ``--source`` when an event id names events of several sources (the client's
    ``AmbiguousEvent`` says ``source=...``, as the Python API takes it)."""
    try:
        yield
    except AmbiguousEvent as exc:
        raise fail(str(exc), hint="say which with --source SOURCE", exit_code=USAGE) from None


SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", metavar="TIME", help=f"Only events recorded at or after TIME: {_TIME_FORMS}."
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="Only events recorded before TIME (same forms)."),
]
SourceOption = Annotated[
    str | None,
    typer.Option("--source", help="The event's source, when several sources used the same id."),
]
EventIdArgument = Annotated[
    str, typer.Argument(metavar="EVENT_ID", help="The event's id (see `legato events list`).")
]


# -- commands ------------------------------------------------------------------------------


@events_app.command("list")
def list_events(
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="Only events of this type (exact).")
    ] = None,
    correlation: Annotated[
        str | None, typer.Option("--correlation", "-c", help="Only events of this correlation id.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", "-r", help="Only events this run published.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    unrouted: Annotated[
        bool, typer.Option("--unrouted", help="Only events no subscription matched.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=1, max=10_000, help="At most this many events, oldest first."
        ),
    ] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List events in log order, oldest first, filtered."""
    start, end = _window(since, until)
    with connect(database) as client:
        events = client.list_events(
            type=type_,
            correlation_id=correlation,
            run_id=run_id,
            since=start,
            until=end,
            unrouted=unrouted,
            limit=limit,
        )
    if as_json:
        print_json([stored_event_json(s) for s in events])
        return
    if not events:
        filtered = (
            any(v is not None for v in (type_, correlation, run_id, since, until)) or unrouted
        )
        console().print("no events match" if filtered else "no events yet")
        return
    print_table(events_table(events))
    if len(events) == limit:
        console().print(
            f"the {limit} oldest matching events shown; --since TIME or --limit N shows more",
            style="dim",
        )


@events_app.command("show")
def show(
    event_id: EventIdArgument,
    source: SourceOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one event: its attributes and data, and every subscriber's delivery."""
    with connect(database) as client, one_source():
        stored = client.get_event(event_id, source)
        deliveries = client.deliveries(event_id, stored.event.source)
    if as_json:
        print_json(
            stored_event_json(stored)
            | {"deliveries": [delivery_json(d, stored) for d in deliveries]}
        )
    else:
        console().print(event_view(stored, deliveries))


@events_app.command("publish")
def publish(
    type_: Annotated[
        str, typer.Argument(metavar="TYPE", help="The event's type, like order.placed.")
    ],
    data_json: Annotated[str, typer.Option("--data", help="The event's data, as JSON.")],
    subject: Annotated[str | None, typer.Option("--subject", help="The event's subject.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="The partition key (its partitionkey).")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help=f"The event's source. Default: {CLIENT_SOURCE}.")
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The event's id (publishing the same source and id again writes nothing). "
            "Default: a new UUID.",
        ),
    ] = None,
    correlation: Annotated[
        str | None,
        typer.Option(
            "--correlation", help="The flow it joins (correlationid). Default: its own id."
        ),
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish an event; every subscription whose pattern matches gets a delivery."""
    data = parse_json(data_json, "--data")
    with connect(database) as client:
        existed = False
        if event_id is not None:
            try:
                client.get_event(event_id, source or CLIENT_SOURCE)
                existed = True
            except EventNotFound:
                pass
        event = client.publish(
            type_,
            data,
            subject=subject,
            key=key,
            id=event_id,
            source=source,
            correlationid=correlation,
        )
        stored = client.get_event(event.id, event.source)
        deliveries = client.deliveries(event.id, event.source)
    if as_json:
        print_json(
            stored_event_json(stored)
            | {"duplicate": existed, "deliveries": [delivery_json(d, stored) for d in deliveries]}
        )
        return
    ref = shlex.quote(event.id)
    if source is not None:
        ref += f" --source {shlex.quote(event.source)}"
    if existed:
        message = f"event {event.id} from {event.source} was published before; nothing was written"
    elif deliveries:
        names = ", ".join(d.subscription for d in deliveries)
        message = (
            f"published event {event.id} ({event.type}) to {len(deliveries)} "
            f"subscription(s): {names}"
        )
    else:
        message = (
            f"published event {event.id} ({event.type}); no subscription matched it (unrouted), "
            "it is kept in the log"
        )
    console().print(f"{message}. See it with `legato events show {ref}`.", markup=False)


@events_app.command("publish-cloudevents")
def publish_cloudevents(
    path: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="A structured CloudEvent (a JSON object) or a batch of them (a JSON array); "
            "- reads standard input.",
        ),
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish CloudEvents as they are, one or a batch (what POST /api/events takes as
    application/cloudevents+json or application/cloudevents-batch+json). Every event is
    checked before any is published."""
    text = _read(path)
    if text.lstrip().startswith("["):
        events = Event.from_json_batch(text)
        if not events:
            raise fail(f"{path}: the batch holds no event", exit_code=USAGE)
    else:
        events = [Event.from_json(text)]
    with connect(database) as client:
        published = [client.publish_event(e) for e in events]
    if as_json:
        print_json([e.to_dict() for e in published])
        return
    out = console()
    for e in published:
        out.print(f"published event {e.id} ({e.type}) from {e.source}", markup=False)
    out.print("see one with `legato events show EVENT_ID`", style="dim")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="FILE") from exc


@events_app.command("replay")
def replay(
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="TIME",
            help=f"Replay events recorded at or after TIME: {_TIME_FORMS}.",
        ),
    ],
    subscription: Annotated[
        str,
        typer.Option("--to", metavar="SUBSCRIPTION", help="The subscription to deliver them to."),
    ],
    until: UntilOption = None,
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="Only events of this type.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver archived events again to one subscription, each marked as a replay."""
    start, end = _window(since, until)
    assert start is not None  # --since is required
    with connect(database) as client:
        count = client.replay(subscription, since=start, until=end, type=type_)
    if as_json:
        print_json({"subscription": subscription, "scheduled": count})
    elif count:
        console().print(
            f"{count} event(s) scheduled for replay to {subscription}: a worker serving it "
            "delivers them again, marked as replay (legato.delivery().replay)",
            markup=False,
        )
    else:
        console().print(
            f"no event recorded in that window matches {subscription}'s pattern; nothing scheduled",
            markup=False,
        )


@events_app.command("prune")
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Delete events recorded longer ago than this (7d, 12h).",
        ),
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old events with their deliveries; an event with a pending delivery stays."""
    age = parse_duration(older_than, "--older-than")
    with connect(database) as client:
        count = client.prune_events(age)
    if as_json:
        print_json({"pruned": count, "older_than_s": age.total_seconds()})
    else:
        console().print(
            f"{count} event(s) recorded more than {older_than} ago pruned; events with a "
            "pending delivery are kept",
            markup=False,
        )
