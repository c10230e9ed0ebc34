"""How events and deliveries look on screen (Rich) and in ``--json``: ``legato events``,
``legato deadletters`` and ``legato flows`` share them."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from legato.bus.flows import trigger_workflow
from legato.bus.subscriptions import triggered_run_id
from legato.cli.render import when, whole_column
from legato.flowchart import error_line, published_by
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent

_NONE = "—"
_DELIVERY_STYLES = {
    DeliveryStatus.PENDING: "yellow",
    DeliveryStatus.DONE: "green",
    DeliveryStatus.DEAD: "bold red",
}


def status_text(status: DeliveryStatus) -> Text:
    """A delivery status, coloured: dead letters stand out."""
    return Text(status.value, style=_DELIVERY_STYLES.get(status, ""))


def error_text(error: Mapping[str, Any] | None) -> Text:
    """``error_line`` in red, or a dash."""
    return Text(error_line(error), style="red") if error else Text(_NONE)


def events_table(events: list[StoredEvent]) -> Table:
    """The log as a table: seq, recorded, type, id, publisher, subject, routed."""
    table = Table()
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("recorded", no_wrap=True)
    whole_column(table, "type", [s.event.type for s in events])
    whole_column(table, "id", [s.event.id for s in events])
    table.add_column("published by", overflow="fold")
    table.add_column("subject", overflow="fold")
    table.add_column("routed", no_wrap=True)
    for s in events:
        table.add_row(
            str(s.seq),
            when(s.recorded_at, short=True),
            Text(s.event.type),  # Text, not str: data is never Rich markup
            Text(s.event.id),
            Text(published_by(s)),
            Text(s.event.subject or _NONE),
            Text("unrouted", style="yellow") if s.routed == 0 else Text(str(s.routed)),
        )
    return table


def event_view(stored: StoredEvent, deliveries: list[Delivery]) -> RenderableType:
    """``legato events show``: the attributes, the data, and every subscriber's delivery."""
    e = stored.event
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    rows: list[tuple[str, str | None]] = [
        ("type", e.type),
        ("source", e.source),
        ("subject", e.subject),
        ("seq", str(stored.seq)),
        ("recorded", when(stored.recorded_at)),
        ("time", None if e.time is None else when(e.time)),
        ("correlation", e.correlationid),
        ("causation", e.causationid),
        ("partition key", e.partitionkey),
        ("published by", published_by(stored)),
        ("awaits reply", None if not stored.reply_types else ", ".join(stored.reply_types)),
        ("content type", e.datacontenttype),
        ("schema", e.dataschema),
        ("trace", e.traceparent),
        *((name, str(value)) for name, value in e.extensions.items()),
    ]
    for name, value in rows:
        if value is not None:
            facts.add_row(name, Text(value))
    facts.add_row("data", JSON.from_data(e.to_dict().get("data"), default=str))
    parts: list[RenderableType] = [facts, Text("")]
    if deliveries:
        parts.append(deliveries_table(deliveries, stored))
    else:
        parts.append(
            Text("no deliveries: no subscription matched it when it was published", style="yellow")
        )
    hint = _next(stored, deliveries)
    if hint:
        parts += [Text(""), Text(f"next: {hint}", style="bold")]
    return Panel(Group(*parts), title=Text(f"event {e.id}"), title_align="left", expand=False)


def deliveries_table(deliveries: list[Delivery], stored: StoredEvent) -> Table:
    """Each subscriber's delivery: status, attempts, due time, last error, run started."""
    table = Table(show_edge=False, box=None, padding=(0, 2), header_style="bold dim")
    for column in ("subscription", "status", "attempts", "due", "last error", "run"):
        table.add_column(column, overflow="fold")
    for d in deliveries:
        workflow = trigger_workflow(d.subscription)
        status = status_text(d.status)
        if d.replay:
            status.append(" (replay)", style="dim")
        table.add_row(
            Text(d.subscription),
            status,
            str(d.attempts),
            _NONE if d.due_at is None or d.status is not DeliveryStatus.PENDING else when(d.due_at),
            error_text(d.error),
            Text(_NONE if workflow is None else triggered_run_id(workflow, stored.event)),
        )
    return table


def _next(stored: StoredEvent, deliveries: list[Delivery]) -> str:
    source = f" --source {shlex.quote(stored.event.source)}"
    dead = [d for d in deliveries if d.status is DeliveryStatus.DEAD]
    if dead:
        return (
            f"fix the handler, then `legato deadletters redrive {shlex.quote(stored.event.id)}"
            f"{source}` delivers it again from the first attempt"
        )
    if any(d.status is DeliveryStatus.PENDING for d in deliveries):
        return "a worker serving the pending subscriptions delivers it when it is due"
    return ""
