"""A flow (``legato.bus.flows.Flow``) as a Mermaid ``flowchart``: what ``legato flows show
--mermaid`` prints and what the console's flow page draws.

It lives beside ``legato.mermaid`` (the escaping every chart shares) rather than in the CLI
or the console, so that both ways in use one drawing and neither imports the other. It
needs no terminal library: labels are plain text, escaped for Mermaid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from legato.bus.flows import DeliveryNode, EventNode, Flow, RunNode, children
from legato.bus.subscriptions import EXPECTATION_PREFIX
from legato.mermaid import escape
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent
from legato.model.events import format_time
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.model.runs import RunStatus

Node = EventNode | DeliveryNode | RunNode


def shown(node: Node) -> list[Node]:
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


def expectation_words(inst: ExpectationInstance, stamp: Callable[[datetime], str]) -> str:
    """What an instance waits for or how it ended, in a few words; times by ``stamp``."""
    missing = ", ".join(inst.missing_patterns)
    if inst.status is ExpectationStatus.OPEN:
        return f"{missing} by {stamp(inst.deadline)}"
    if inst.status is ExpectationStatus.VIOLATED:
        return f"{missing} missing at {stamp(inst.deadline)}"
    return f"at {stamp(inst.closed_at)}" if inst.closed_at is not None else ""


# In words, for the chart and for the CLI's tables and tree (legato.cli.render_bus).


def error_line(error: Mapping[str, Any] | None) -> str:
    """A delivery's last error in one line, ``Type: message (attempt n)``; empty if none."""
    if not error:
        return ""
    kind = str(error.get("type") or "error").rpartition(".")[2]
    attempt = f" (attempt {error['attempt']})" if error.get("attempt") else ""
    return f"{kind}: {error.get('message', '')}{attempt}"


def outcome(delivery: Delivery) -> str:
    """A delivery's outcome in a few words: ``done after 1 attempt``, ``dead after 3
    attempts``, ``pending, 2 attempts failed``; ``(replay)`` for a replayed one."""
    d = delivery
    plural = "" if d.attempts == 1 else "s"
    replay = " (replay)" if d.replay else ""
    if d.status is DeliveryStatus.PENDING:
        tried = f", {d.attempts} attempt{plural} failed" if d.attempts else ""
        return f"pending{tried}{replay}"
    return f"{d.status.value} after {d.attempts} attempt{plural}{replay}"


def published_by(stored: StoredEvent) -> str:
    """``run R #K`` for an event a run published, else its source."""
    if stored.run_id is None:
        return stored.event.source
    return f"run {stored.run_id}" + ("" if stored.call_key is None else f" #{stored.call_key}")


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
_EXPECTATION_CLASS = {
    ExpectationStatus.OPEN: "pending",
    ExpectationStatus.FULFILLED: "done",
    ExpectationStatus.VIOLATED: "dead",
    ExpectationStatus.CANCELLED: "done",
    ExpectationStatus.LATE_FULFILLED: "pending",
}


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
    # recursion: a flow can be deeper than Python's stack.
    stack: list[tuple[Node, str | None, str | None, str]] = [
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
            f"{inst.status.value}: {expectation_words(inst, _utc)}",
        )
        chart.add(f"ex{n}>{label}]", f"ex{n}", _EXPECTATION_CLASS[inst.status])
        if inst.trigger_seq in drawn:
            chart.edges.append(f"    ev{inst.trigger_seq} -.->|expects| ex{n}")
    return chart.text(flow.correlation_id)


def _utc(at: datetime) -> str:
    return format_time(at.replace(microsecond=0))


def _edge(parent: Node, child: Node, parent_id: str, n: int) -> tuple[str | None, str]:
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

    def new_id(self, node: Node) -> str:
        if isinstance(node, EventNode):
            return f"ev{node.stored.seq}"
        self.runs += 1
        return f"run{self.runs}"

    def draw(self, node: Node, node_id: str) -> None:
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
            self.add(f"{node_id}[{label}]", node_id, "event")
        elif isinstance(node, DeliveryNode):
            d = node.delivery
            label = _label(d.subscription, outcome(d), error_line(d.error))
            self.add(f"{node_id}{{{{{label}}}}}", node_id, d.status.value)
        else:
            state = "not found" if node.status is None else node.status.value
            label = _label(f"run {node.run_id}", f"{node.workflow or '?'}: {state}")
            style = "failed" if node.status in _FAILED else "run"
            self.add(f"{node_id}([{label}])", node_id, style)

    def add(self, line: str, node_id: str, style: str) -> None:
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
