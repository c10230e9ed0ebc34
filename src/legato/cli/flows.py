"""``legato flows show``: everything that happened for one correlation id, as a tree.

The flow is read through ``legato.Client`` (the correlation id's events, each one's
deliveries, the runs they name) and laid out by ``legato.bus.flows.build_flow``; here it
is drawn as a Rich tree, as JSON, or as a Mermaid ``flowchart`` (``--mermaid``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    children,
)
from legato.bus.subscriptions import EXPECTATION_PREFIX
from legato.cli.errors import fail
from legato.cli.options import DatabaseOption, JsonOption, connect
from legato.cli.render import console, print_json, status_text, when
from legato.cli.render_bus import error_line, outcome, published_by
from legato.cli.render_bus import status_text as delivery_status_text
from legato.mermaid import escape
from legato.model.deliveries import DeliveryStatus
from legato.model.events import format_time
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.model.runs import RunStatus
from legato.views import flow_json

flows_app = typer.Typer(
    help="Show what happened for a correlation id: events, deliveries, runs.",
    no_args_is_help=True,
)

_PAGE = 1000
_Node = EventNode | DeliveryNode | RunNode


def shown(node: _Node) -> list[_Node]:
    """The children of ``node`` drawn: an expectation's own delivery is left out once
    done (the flow's expectations are drawn on their own); a pending or dead one stays."""
    return [
        n
        for n in children(node)
        if not (
            isinstance(n, DeliveryNode)
            and n.delivery.subscription.startswith(EXPECTATION_PREFIX)
            and n.delivery.status is DeliveryStatus.DONE
        )
    ]


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


def _expectation_words(
    inst: ExpectationInstance, stamp: Callable[[datetime], str] | None = None
) -> str:
    """What an instance waits for or how it ended, in a few words; times by ``stamp``
    (the terminal's local, short form unless given)."""
    show = stamp or (lambda at: when(at, short=True))
    missing = ", ".join(inst.missing_patterns)
    if inst.status is ExpectationStatus.OPEN:
        return f"{missing} by {show(inst.deadline)}"
    if inst.status is ExpectationStatus.VIOLATED:
        return f"{missing} missing at {show(inst.deadline)}"
    return f"at {show(inst.closed_at)}" if inst.closed_at is not None else ""


def _expectation_label(inst: ExpectationInstance) -> Text:
    text = Text("expect ", style="bold")
    text.append(inst.expectation, style="bold")
    text.append(f"  key {inst.key}  ")
    text.append(inst.status.value, style=_EXPECTATION_STYLES[inst.status])
    text.append(f"  {_expectation_words(inst)}  (trigger seq {inst.trigger_seq})", style="dim")
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


# -- Mermaid -------------------------------------------------------------------------------

_CLASSES = {
    "event": "fill:#eef3ff,stroke:#5b7bd5",
    "run": "fill:#eefbea,stroke:#3c9a3c",
    "done": "fill:#ffffff,stroke:#999999",
    "pending": "fill:#fff6d6,stroke:#c79100,stroke-dasharray:4 3",
    "dead": "fill:#ffe0e0,stroke:#cc0000,stroke-width:2px",
    "failed": "fill:#ffe0e0,stroke:#cc0000",
}
_FAILED = frozenset({RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.BLOCKED})
_LINE = 80


def escape_label(text: str) -> str:
    """``text`` as one line of a quoted Mermaid label, cut at 80 characters."""
    return escape(text, _LINE)


def _label(*lines: str) -> str:
    return '"' + "<br/>".join(escape_label(line) for line in lines if line) + '"'


def to_mermaid(flow: Flow) -> str:
    """The flow as a Mermaid ``flowchart``: events, deliveries (one node per subscriber
    of an event, styled ``done``, ``pending`` or ``dead``) and runs; a reply is linked to
    its request by a dotted edge.

    Node ids are made here (``ev<seq>``, ``ev<seq>_d<n>``, ``run<n>``), never taken from
    the data, so no id or name can break the chart; label text is escaped.
    """
    chart = _Chart()
    # (node, the id its parent gave it, the parent's id, the edge's label); a stack, not
    # recursion, as in flow_tree.
    stack: list[tuple[_Node, str | None, str | None, str]] = [
        (n, None, None, "") for n in reversed(flow.roots)
    ]
    while stack:
        node, given, above, edge = stack.pop()
        node_id = given or chart.new_id(node)
        chart.draw(node, node_id)
        if above is not None:
            chart.connect(above, node_id, edge)
        inner = [(n, *_edge(node, n, node_id, i)) for i, n in enumerate(shown(node), 1)]
        stack.extend((n, name, node_id, label) for n, name, label in reversed(inner))
    first_seq: dict[str, int] = {}
    for event in sorted(flow.events, key=lambda e: e.stored.seq):
        first_seq.setdefault(event.stored.event.id, event.stored.seq)
    for event in flow.events:
        if event.reply_to in first_seq:
            chart.edges.append(
                f"    ev{event.stored.seq} -.->|reply to| ev{first_seq[event.reply_to]}"
            )
    drawn = {e.stored.seq for e in flow.events}
    for n, inst in enumerate(flow.expectations, 1):
        label = _label(
            f"expect {inst.expectation}",
            # UTC, in full: a chart is the same wherever and whenever it is drawn.
            f"{inst.status.value}: {_expectation_words(inst, _utc)}",
        )
        style = _EXPECTATION_CLASS[inst.status]
        chart._add(f"ex{n}>{label}]", f"ex{n}", style)
        if inst.trigger_seq in drawn:
            chart.edges.append(f"    ev{inst.trigger_seq} -.->|expects| ex{n}")
    return chart.text(flow.correlation_id)


def _utc(at: datetime) -> str:
    return format_time(at.replace(microsecond=0))


_EXPECTATION_CLASS = {
    ExpectationStatus.OPEN: "pending",
    ExpectationStatus.FULFILLED: "done",
    ExpectationStatus.VIOLATED: "dead",
    ExpectationStatus.CANCELLED: "done",
    ExpectationStatus.LATE_FULFILLED: "pending",
}


def _edge(parent: _Node, child: _Node, parent_id: str, n: int) -> tuple[str | None, str]:
    """The id ``parent`` gives its ``n``-th child (a delivery's is its event's and its
    number), and the label of the edge between them."""
    if isinstance(child, DeliveryNode):
        return f"{parent_id}_d{n}", ""
    if isinstance(child, RunNode):
        return None, "started"
    return None, "caused" if isinstance(parent, EventNode) else "published"


@dataclass(slots=True)
class _Chart:
    nodes: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in _CLASSES})
    runs: int = 0

    def new_id(self, node: _Node) -> str:
        if isinstance(node, EventNode):
            return f"ev{node.stored.seq}"
        self.runs += 1
        return f"run{self.runs}"

    def draw(self, node: _Node, node_id: str) -> None:
        if isinstance(node, EventNode):
            stored = node.stored
            label = _label(
                stored.event.type,
                f"id {stored.event.id}",
                f"from {published_by(stored)}",
                "awaits " + ", ".join(stored.reply_types) if stored.reply_types else "",
                f"reply to {node.reply_to}" if node.reply_to is not None else "",
                "unrouted" if stored.routed == 0 and node.reply_to is None else "",
            )
            self._add(f"{node_id}[{label}]", node_id, "event")
        elif isinstance(node, DeliveryNode):
            d = node.delivery
            label = _label(d.subscription, outcome(d), error_line(d.error))
            self._add(f"{node_id}{{{{{label}}}}}", node_id, d.status.value)
        else:
            state = "not found" if node.status is None else node.status.value
            label = _label(f"run {node.run_id}", f"{node.workflow or '?'}: {state}")
            style = "failed" if node.status in _FAILED else "run"
            self._add(f"{node_id}([{label}])", node_id, style)

    def _add(self, line: str, node_id: str, style: str) -> None:
        self.nodes.append(f"    {line}")
        self.classes[style].append(node_id)

    def connect(self, above: str, node_id: str, edge: str) -> None:
        arrow = f"-->|{edge}|" if edge else "-->"
        self.edges.append(f"    {above} {arrow} {node_id}")

    def text(self, correlation_id: str) -> str:
        lines = [f"%% flow of correlation id {escape_label(correlation_id)}", "flowchart TD"]
        lines += self.nodes + self.edges
        lines += [f"    classDef {name} {style}" for name, style in _CLASSES.items()]
        lines += [f"    class {','.join(ids)} {name}" for name, ids in self.classes.items() if ids]
        return "\n".join(lines) + "\n"
