"""``legato.graph``: a workflow's graph read from its code, and its Mermaid and JSON forms."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import pytest

import legato
from legato import graph, graphchart
from legato.engine.registry import Step
from legato.graph import EdgeKind, NodeKind, WorkflowGraph


def _app() -> legato.App:
    return legato.App("graphs", "memory://")


def _steps(app: legato.App, *names: str) -> list[Step[..., Any]]:
    """Register one async step per name (named so, not by the test's ``<locals>``)."""

    def make(name: str) -> Step[..., Any]:
        async def body(*args: Any) -> Any:
            return None

        return app.step(name=name)(body)

    return [make(name) for name in names]


def _nodes(drawn: WorkflowGraph) -> list[tuple[NodeKind, str]]:
    return [(node.kind, node.label) for node in drawn.nodes]


def _edges(drawn: WorkflowGraph) -> list[str]:
    """Each edge as ``source label -> target label``, with ``[label]`` and ``(kind)``
    when it has them; in the order they were drawn."""
    labels = {node.id: node.label for node in drawn.nodes}
    out = []
    for edge in drawn.edges:
        text = f"{labels[edge.source]} -> {labels[edge.target]}"
        if edge.label:
            text += f" [{edge.label}]"
        if edge.kind is not EdgeKind.FLOW:
            text += f" ({edge.kind.value})"
        out.append(text)
    return out


def test_sequence_of_steps_is_drawn_in_source_order() -> None:
    app = _app()
    charge, reserve, ship = _steps(app, "charge", "reserve", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await charge(o)
        await reserve(o)
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn) == [
        (NodeKind.START, "order"),
        (NodeKind.STEP, "charge"),
        (NodeKind.STEP, "reserve"),
        (NodeKind.STEP, "ship"),
        (NodeKind.END, "end"),
    ]
    assert _edges(drawn) == [
        "order -> charge",
        "charge -> reserve",
        "reserve -> ship",
        "ship -> end",
    ]
    assert [node.id for node in drawn.nodes] == ["n1", "n2", "n3", "n4", "n5"]


def test_if_else_is_a_decision_whose_branches_meet_again() -> None:
    app = _app()
    review, approve, ship = _steps(app, "review", "approve", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        if o["total"] > 100:
            await review(o)
        else:
            await approve(o)
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn)[1:5] == [
        (NodeKind.DECISION, "o['total'] > 100"),
        (NodeKind.STEP, "review"),
        (NodeKind.STEP, "approve"),
        (NodeKind.STEP, "ship"),
    ]
    assert _edges(drawn) == [
        "order -> o['total'] > 100",
        "o['total'] > 100 -> review [yes]",
        "o['total'] > 100 -> approve [no]",
        "review -> ship",
        "approve -> ship",
        "ship -> end",
    ]


def test_if_without_a_drawn_call_is_left_out_and_one_without_else_passes_by() -> None:
    app = _app()
    (ship,) = _steps(app, "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        note = ""
        if o.get("gift"):
            note = "wrapped"  # nothing drawn: no decision for it
        if o.get("express"):
            await ship(o, note)

    drawn = graph.workflow_graph(app, "order")

    assert _edges(drawn) == [
        "order -> o.get('express')",
        "o.get('express') -> ship [yes]",
        "ship -> end",
        "o.get('express') -> end [no]",
    ]


def test_for_loop_has_a_back_edge_and_a_done_exit() -> None:
    app = _app()
    reserve, ship = _steps(app, "reserve", "ship")

    @app.workflow(name="order")
    async def order(items: list[str]) -> None:
        for item in items:
            await reserve(item)
        await ship(items)

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn)[1] == (NodeKind.LOOP, "for item in items")
    assert _edges(drawn) == [
        "order -> for item in items",
        "for item in items -> reserve [each]",
        "reserve -> for item in items (loop)",
        "for item in items -> ship [done]",
        "ship -> end",
    ]


def test_while_true_leaves_only_by_its_break() -> None:
    app = _app()
    poll, ship = _steps(app, "poll", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        while True:
            status = await poll(o)
            if status == "ready":
                break
            await legato.sleep(timedelta(minutes=5))
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert _edges(drawn) == [
        "order -> while True",
        "while True -> poll [yes]",
        "poll -> status == 'ready'",
        "status == 'ready' -> sleep timedelta(minutes=5) [no]",
        "sleep timedelta(minutes=5) -> while True (loop)",
        "status == 'ready' -> ship [yes]",
        "ship -> end",
    ]


def test_gather_forks_one_branch_per_call_and_joins() -> None:
    app = _app()
    charge, reserve, notify, ship = _steps(app, "charge", "reserve", "notify", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await asyncio.gather(charge(o), reserve(o), *(notify(who) for who in o["watchers"]))
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn)[1:6] == [
        (NodeKind.FORK, "in parallel"),
        (NodeKind.STEP, "charge"),
        (NodeKind.STEP, "reserve"),
        (NodeKind.STEP, "notify"),
        (NodeKind.JOIN, "all done"),
    ]
    assert _edges(drawn) == [
        "order -> in parallel",
        "in parallel -> charge",
        "in parallel -> reserve",
        "in parallel -> notify [for who in o['watchers']]",
        "charge -> all done",
        "reserve -> all done",
        "notify -> all done",
        "all done -> ship",
        "ship -> end",
    ]


def test_except_around_a_step_is_an_edge_labelled_with_the_exception() -> None:
    app = _app()
    charge, notify, ship = _steps(app, "charge", "notify", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        try:
            await charge(o)
        except legato.errors.StepFailed:
            await notify(o)
            raise
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn)[1:5] == [
        (NodeKind.STEP, "charge"),
        (NodeKind.STEP, "notify"),
        (NodeKind.RAISE, "re-raise"),
        (NodeKind.STEP, "ship"),
    ]
    assert _edges(drawn) == [
        "order -> charge",
        "charge -> notify [StepFailed] (error)",
        "notify -> re-raise",
        "charge -> ship",
        "ship -> end",
    ]


def test_waits_and_publish_are_nodes_named_by_their_arguments() -> None:
    app = _app()

    @app.workflow(name="child_flow")
    async def child_flow() -> None:
        return None

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await legato.wait_for_signal("approved", timeout=timedelta(days=1))
        await legato.human_task("review", o, assignee="ops")
        await legato.publish("order.placed", o)
        await legato.request("stock.check", o, reply=["stock.ok"])
        await legato.child(child_flow)
        await legato.sleep_until(o["at"])

    drawn = graph.workflow_graph(app, "order")

    assert _nodes(drawn)[1:-1] == [
        (NodeKind.SIGNAL, "wait for signal approved"),
        (NodeKind.HUMAN_TASK, "human task review for ops"),
        (NodeKind.PUBLISH, "publish order.placed"),
        (NodeKind.REQUEST, "request stock.check, await ['stock.ok']"),
        (NodeKind.CHILD, "child workflow child_flow"),
        (NodeKind.SLEEP, "sleep until o['at']"),
    ]


def test_step_with_a_compensation_points_to_its_undo_off_the_main_flow() -> None:
    app = _app()
    charge, ship = _steps(app, "charge", "ship")

    @charge.compensate
    async def refund(o: dict[str, Any], charge_id: str) -> None:
        return None

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await charge(o)
        await ship(o)

    drawn = graph.workflow_graph(app, "order")

    assert (NodeKind.COMPENSATION, "undo: refund") in _nodes(drawn)
    assert _edges(drawn) == [
        "order -> charge",
        "charge -> undo: refund (compensation)",
        "charge -> ship",
        "ship -> end",
    ]
    assert "-.-> n3" in graphchart.to_mermaid(drawn)


async def _ask_twice(question: str) -> Any:
    """A helper of this module that waits: drawn as a subgraph of the workflow."""
    try:
        return await legato.wait_for_signal(question, timeout=timedelta(hours=1))
    except legato.errors.WaitTimeout:
        return await legato.wait_for_signal(question)


def test_helper_of_the_same_module_is_drawn_as_a_subgraph_and_unknown_calls_are_left_out() -> None:
    app = _app()
    (ship,) = _steps(app, "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # not a Legato call: left out
        await o["client"].fetch()  # unresolved: left out
        answer = await _ask_twice("go?")
        await ship(o, answer)

    drawn = graph.workflow_graph(app, "order")

    [group] = drawn.groups
    assert group.label == "_ask_twice"
    assert [(n.label, n.group) for n in drawn.nodes] == [
        ("order", None),
        ("wait for signal question", group.id),
        ("wait for signal question", group.id),
        ("ship", None),
        ("end", None),
    ]
    assert _edges(drawn) == [
        "order -> wait for signal question",
        "wait for signal question -> wait for signal question [WaitTimeout] (error)",
        "wait for signal question -> ship",
        "wait for signal question -> ship",
        "ship -> end",
    ]
    mermaid = graphchart.to_mermaid(drawn)
    assert f'subgraph {group.id}["_ask_twice"]' in mermaid


def test_continue_as_new_ends_the_graph_without_an_end_node() -> None:
    app = _app()
    (sync,) = _steps(app, "sync")

    @app.workflow(name="poller")
    async def poller(cursor: int) -> None:
        cursor = await sync(cursor)
        legato.continue_as_new(cursor)

    drawn = graph.workflow_graph(app, "poller")

    assert _nodes(drawn) == [
        (NodeKind.START, "poller"),
        (NodeKind.STEP, "sync"),
        (NodeKind.CONTINUE_AS_NEW, "continue as new"),
    ]


def test_labels_are_escaped_so_a_step_name_cannot_break_the_chart_or_add_markup() -> None:
    app = _app()
    (pay,) = _steps(app, 'pay"<b>&x|y#1`')

    @app.workflow(name="<script>")
    async def order(o: dict[str, Any]) -> None:
        await pay(o)

    drawn = graph.workflow_graph(app, "<script>")
    mermaid = graphchart.to_mermaid(drawn)

    assert '    n2["pay#quot;#lt;b#gt;#amp;x#124;y#35;1#96;"]' in mermaid.splitlines()
    assert '    n1(["#lt;script#gt;"])' in mermaid.splitlines()
    assert "<" not in mermaid and "&" not in mermaid
    # Every node line is an id, a shape and one quoted label: nothing leaks out of it.
    for line in mermaid.splitlines()[1:3]:
        assert re.fullmatch(r'    n\d+\W{1,2}"[^"]*"\W{1,2}', line), line
    assert json.loads(graphchart.to_json(drawn))["nodes"][1]["label"] == 'pay"<b>&x|y#1`'


def test_mermaid_is_a_flowchart_of_the_graphs_ids_and_its_edges() -> None:
    app = _app()
    charge, ship = _steps(app, "charge", "ship")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        if o["paid"]:
            await charge(o)
        await ship(o)

    mermaid = graphchart.to_mermaid(graph.workflow_graph(app, "order"))

    assert mermaid.splitlines() == [
        "flowchart TD",
        '    n1(["order"])',
        "    n2{\"o['paid']\"}",
        '    n3["charge"]',
        '    n4["ship"]',
        '    n5(["end"])',
        "    n1 --> n2",
        '    n2 -->|"yes"| n3',
        "    n3 --> n4",
        '    n2 -->|"no"| n4',
        "    n4 --> n5",
    ]


def test_json_lists_nodes_edges_and_groups() -> None:
    app = _app()
    (charge,) = _steps(app, "charge")

    @app.workflow(name="order")
    async def order(o: dict[str, Any]) -> None:
        await charge(o)

    data = json.loads(graphchart.to_json(graph.workflow_graph(app, "order")))

    assert data["workflow"] == "order"
    assert [(n["id"], n["kind"], n["label"]) for n in data["nodes"]] == [
        ("n1", "start", "order"),
        ("n2", "step", "charge"),
        ("n3", "end", "end"),
    ]
    assert data["edges"][0] == {"source": "n1", "target": "n2", "kind": "flow", "label": ""}
    assert data["groups"] == []


def test_unknown_workflow_raises_naming_the_known_ones() -> None:
    app = _app()

    @app.workflow(name="order")
    async def order() -> None:
        return None

    with pytest.raises(legato.errors.UnknownWorkflow, match="Known workflows: order"):
        graph.workflow_graph(app, "nope")


def test_course_purchase_example_names_its_steps_in_order() -> None:
    from examples.course_purchase.app import app

    drawn = graph.workflow_graph(app, "purchase_course")

    assert _nodes(drawn) == [
        (NodeKind.START, "purchase_course"),
        (NodeKind.STEP, "authorize_payment"),
        (NodeKind.COMPENSATION, "undo: refund_payment"),
        (NodeKind.STEP, "create_enrollment"),
        (NodeKind.PUBLISH, "publish purchase.completed"),
        (NodeKind.END, "end"),
    ]


def test_order_to_cash_example_draws_the_fraud_review_helper_and_its_escalation() -> None:
    from examples.order_to_cash.app import app

    drawn = graph.workflow_graph(app, "process_order")

    steps = [label for kind, label in _nodes(drawn) if kind is NodeKind.STEP]
    assert steps == [
        "validate_payment",
        "reserve_inventory",
        "calculate_shipping",
        "send_confirmation",
    ]
    assert [g.label for g in drawn.groups] == ["fraud_review"]
    edges = _edges(drawn)
    loop = next(label for kind, label in _nodes(drawn) if kind is NodeKind.LOOP)
    task = "human task fraud_review for reviewer"
    assert f"{task} -> {loop} [WaitTimeout] (loop)" in edges
    assert "review['decision'] == 'reject' -> raise OrderRejected [yes]" in edges
