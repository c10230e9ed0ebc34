"""A workflow's graph (``legato.graph``) as text: a Mermaid ``flowchart TD`` and JSON,
for ``legato workflows graph``."""

from __future__ import annotations

import json
from dataclasses import asdict

from legato.graph import WAITS, EdgeKind, Group, Node, NodeKind, WorkflowGraph
from legato.mermaid import quoted

_SHAPES: dict[NodeKind, tuple[str, str]] = {
    **dict.fromkeys(
        (NodeKind.START, NodeKind.END, NodeKind.CONTINUE_AS_NEW, NodeKind.RAISE), ("([", "])")
    ),
    **dict.fromkeys(WAITS, ("[/", "/]")),
    **dict.fromkeys((NodeKind.FORK, NodeKind.JOIN), ("((", "))")),
    NodeKind.STEP: ("[", "]"),
    NodeKind.COMPENSATION: ("[", "]"),
    NodeKind.CHILD: ("[[", "]]"),
    NodeKind.PUBLISH: (">", "]"),
    NodeKind.DECISION: ("{", "}"),
    NodeKind.LOOP: ("{{", "}}"),
}
_CLASSES: dict[str, tuple[str, frozenset[NodeKind]]] = {
    "wait": ("fill:#fff6d6,stroke:#c79100", WAITS),
    "undo": (
        "fill:#ffffff,stroke:#999999,stroke-dasharray:4 3",
        frozenset({NodeKind.COMPENSATION}),
    ),
    "fail": ("fill:#ffe0e0,stroke:#cc0000", frozenset({NodeKind.RAISE})),
}
_ARROWS = {
    EdgeKind.FLOW: "-->",
    EdgeKind.LOOP: "-->",
    EdgeKind.ERROR: "-->",
    EdgeKind.COMPENSATION: "-.->",
}


def to_mermaid(graph: WorkflowGraph) -> str:
    """The graph as a Mermaid ``flowchart TD``; helpers are subgraphs.

    Ids are the graph's own (``n1``, ``g1``), never a name from the code, and every label
    is quoted and escaped, so no step name can break the chart or add markup to it.
    """
    lines = ["flowchart TD"]
    members: dict[str | None, list[Node]] = {}
    for node in graph.nodes:
        members.setdefault(node.group, []).append(node)
    children: dict[str | None, list[Group]] = {}
    for group in graph.groups:
        children.setdefault(group.parent, []).append(group)

    def draw(group: str | None, indent: str) -> None:
        for node in members.get(group, []):
            opening, closing = _SHAPES[node.kind]
            lines.append(f"{indent}{node.id}{opening}{quoted(node.label)}{closing}")
        for inner in children.get(group, []):
            lines.append(f"{indent}subgraph {inner.id}[{quoted(inner.label)}]")
            draw(inner.id, indent + "    ")
            lines.append(f"{indent}end")

    draw(None, "    ")
    for edge in graph.edges:
        label = f"|{quoted(edge.label)}|" if edge.label else ""
        lines.append(f"    {edge.source} {_ARROWS[edge.kind]}{label} {edge.target}")
    for name, (style, kinds) in _CLASSES.items():
        ids = [node.id for node in graph.nodes if node.kind in kinds]
        if ids:
            lines += [f"    classDef {name} {style}", f"    class {','.join(ids)} {name}"]
    return "\n".join(lines) + "\n"


def to_json(graph: WorkflowGraph) -> str:
    """The graph as indented JSON text (``legato workflows graph --json``): ``workflow``,
    then ``nodes`` (``id``, ``kind``, ``label``, ``group``), ``edges`` (``source``,
    ``target``, ``kind``, ``label``) and ``groups`` (``id``, ``label``, ``parent``)."""
    return json.dumps(asdict(graph), indent=2) + "\n"
