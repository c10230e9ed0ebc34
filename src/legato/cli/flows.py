"""``legato flows show``: everything that happened for one correlation id, as a tree.

The flow is read through ``legato.Client`` (the correlation id's events, each one's
deliveries, the runs they name) and laid out by ``legato.bus.flows.build_flow``; here it
is drawn as a Rich tree, as JSON, or as a Mermaid ``flowchart`` (``--mermaid``, drawn by
``legato.flowchart``, which the console's flow page uses too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import orjson
import typer
from rich.text import Text
from rich.tree import Tree

from legato.bus.flows import (
    DeliveryNode,
    EventNode,
    Flow,
    RunNode,
)
from legato.cli.errors import fail
from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, status_text, when
from legato.cli.render_bus import status_text as delivery_status_text
from legato.flowchart import error_line, expectation_words, outcome, published_by, shown, to_mermaid
from legato.flowchart import escape_label as escape_label  # its old home: still importable
from legato.model.deliveries import DeliveryStatus
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.views import flow_json

flows_app = typer.Typer(
    help="Show what happened for a correlation id: events, deliveries, runs.",
    no_args_is_help=True,
)

_PAGE = 1000
_Node = EventNode | DeliveryNode | RunNode


# -- JSON ----------------------------------------------------------------------------------


# -- the tree ------------------------------------------------------------------------------


def _event_label(node: EventNode, under_run: bool) -> Text:
    s = node.stored
    text = Text("event ", style="bold")
    text.append(s.event.type, style="bold cyan")
    text.append(f"  {s.event.id}")
    by = f"call {s.call_key}" if under_run and s.call_key else f"from {published_by(s)}"
    text.append(f"  ({by}; seq {s.seq}, {when(s.recorded_at, short=True)})", style="dim")
    if s.reply_types:
        text.append(f"  awaits {', '.join(s.reply_types)}", style="magenta")
    if node.reply_to is not None:
        text.append(f"  reply to {node.reply_to}", style="magenta")
    elif s.routed == 0:
        text.append("  unrouted", style="yellow")
    return text


def _delivery_label(node: DeliveryNode) -> Text:
    d = node.delivery
    text = Text("→ ", style="dim")
    text.append(d.subscription, style="bold")
    text.append("  ")
    words = outcome(d)
    text.append(words, style=delivery_status_text(d.status).style)
    if d.status is DeliveryStatus.PENDING and d.due_at is not None:
        text.append(f", due {when(d.due_at, short=True)}", style="yellow")
    if d.error and d.status is not DeliveryStatus.DONE:
        text.append(f"  {error_line(d.error)}", style="red")
    return text


def _run_label(node: RunNode) -> Text:
    text = Text("run ", style="bold")
    text.append(node.run_id, style="bold")
    text.append(f"  {node.workflow or '?'}  ")
    if node.status is None:
        text.append("not found", style="dim")
    else:
        text.append_text(status_text(node.status))
    return text


def flow_tree(flow: Flow) -> Tree:
    """The flow as a Rich tree: runs, the events they published, each subscriber's
    delivery, and the runs those started."""
    dead = len(flow.deliveries(DeliveryStatus.DEAD))
    pending = len(flow.deliveries(DeliveryStatus.PENDING))
    title = Text(f"flow {flow.correlation_id}", style="bold")
    title.append(f": {len(flow.events)} event(s), {len(flow.runs)} run(s)")
    if dead:
        title.append(f", {dead} dead letter(s)", style="bold red")
    if pending:
        title.append(f", {pending} pending", style="yellow")
    tree = Tree(title)
    # Built with a stack, not recursion: a flow can be deeper than Python's stack.
    stack: list[tuple[_Node, Tree, bool]] = [(n, tree, False) for n in reversed(flow.roots)]
    while stack:
        node, above, under_run = stack.pop()
        if isinstance(node, EventNode):
            branch = above.add(_event_label(node, under_run))
        elif isinstance(node, DeliveryNode):
            branch = above.add(_delivery_label(node))
        else:
            branch = above.add(_run_label(node))
        is_run = isinstance(node, RunNode)
        stack.extend((n, branch, is_run) for n in reversed(shown(node)))
    if flow.expectations:
        expected = tree.add(Text("expectations", style="bold"))
        for inst in flow.expectations:
            expected.add(_expectation_label(inst))
    return tree


_EXPECTATION_STYLES = {
    ExpectationStatus.OPEN: "yellow",
    ExpectationStatus.FULFILLED: "green",
    ExpectationStatus.VIOLATED: "bold red",
    ExpectationStatus.CANCELLED: "dim",
    ExpectationStatus.LATE_FULFILLED: "yellow",
}


def _short(at: datetime) -> str:
    return when(at, short=True)


def _expectation_label(inst: ExpectationInstance) -> Text:
    text = Text("expect ", style="bold")
    text.append(inst.expectation, style="bold")
    text.append(f"  key {inst.key}  ")
    text.append(inst.status.value, style=_EXPECTATION_STYLES[inst.status])
    text.append(
        f"  {expectation_words(inst, _short)}  (trigger seq {inst.trigger_seq})", style="dim"
    )
    if inst.violation_id is not None:
        text.append(f"  violation {inst.violation_id}", style="red")
    return text


@flows_app.command("show")
def show(
    correlation_id: Annotated[
        str,
        typer.Argument(
            metavar="CORRELATION_ID",
            help="The flow's correlation id: the first event's id, or the id of the run "
            "that began it.",
        ),
    ],
    mermaid: Annotated[
        bool, typer.Option("--mermaid", help="Print a Mermaid flowchart instead of a tree.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the causation tree of a flow: who published each event, how each subscriber's
    delivery went, the runs they started and what those published."""
    if mermaid and as_json:
        raise typer.BadParameter("give --json or --mermaid, not both", param_hint="--mermaid")
    with connect(database) as client:
        flow = client.flow(correlation_id)
    if not flow.roots:
        raise fail(
            f"no events with correlation id {correlation_id!r}",
            hint="see the correlation ids in `legato events list --json`; a run's events "
            "carry its run id unless an event started it",
        )
    if as_json:
        try:
            print_json(flow_json(flow))
        except (orjson.JSONEncodeError, RecursionError):
            raise fail(
                "the flow is nested too deeply to print as JSON",
                hint="see it as a tree (without --json) or with --mermaid",
            ) from None
    elif mermaid:
        typer.echo(to_mermaid(flow), nl=False)
    else:
        console().print(flow_tree(flow))
