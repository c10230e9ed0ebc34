"""``legato flows show`` and the events in ``legato runs show``: what happened for one
correlation id, through the real CLI, delivered by ``tests.acceptance.events_app``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.acceptance.cli_driver import Cli
from tests.acceptance.events_app import deliver, register, start_checkout
from tests.acceptance.test_bad_input import assert_refused

_GUIDES = re.compile(r"^[│├└─ ]*")
_NODE = re.compile(r"^    (\w+)(\[|\{\{|\(\[)\"(.*)\"(\]|\}\}|\]\))$")


@pytest.fixture
def order_flow(cli: Cli) -> Cli:
    """An order.placed published by an outside client and delivered: ``audit`` done,
    ``billing`` dead, ``warehouse`` pending, and a ``fulfil`` run that published
    order.packed, whose ``notify`` handler published customer.notified."""
    register(cli.database)
    cli.ok("events", "publish", "order.placed", "--data", "{}", "--id", "o-1", "--subject", "o-1")
    deliver(cli.database)
    return cli


def tree_lines(text: str) -> list[tuple[int, str]]:
    """The tree's lines as (depth, label); Rich draws four columns per level."""
    lines = []
    for line in text.splitlines()[1:]:
        guides = _GUIDES.match(line)
        assert guides is not None
        lines.append((len(guides.group()) // 4, line[guides.end() :]))
    return lines


def mermaid_nodes(text: str) -> dict[str, str]:
    """Mermaid node id -> its label text, for every node line of the chart."""
    nodes = {}
    for line in text.splitlines():
        match = _NODE.match(line)
        if match:
            nodes[match[1]] = match[3]
    return nodes


def node_named(nodes: dict[str, str], text: str) -> str:
    (found,) = [node_id for node_id, label in nodes.items() if label.startswith(text)]
    return found


def test_flow_tree_shows_publishers_delivery_outcomes_runs_and_what_they_published(
    order_flow: Cli,
) -> None:
    text = order_flow.ok("flows", "show", "o-1")

    assert text.splitlines()[0] == ("flow o-1: 3 event(s), 1 run(s), 1 dead letter(s), 1 pending")
    lines = tree_lines(text)
    labels = [label for _, label in lines]
    assert [depth for depth, _ in lines] == [1, 2, 2, 2, 2, 3, 4, 5, 5, 6]
    assert labels[0].startswith("event order.placed  o-1  (from /legato/client; seq 1")
    assert labels[1] == "→ audit  done after 1 attempt"
    assert labels[2].startswith("→ billing  dead after 2 attempts  CardDeclined: card declined")
    assert labels[3].startswith("→ warehouse  pending, 1 attempt failed, due ")
    assert labels[3].endswith("ConnectionError: warehouse offline (attempt 1)")
    assert labels[4] == "→ workflow:fulfil  done after 1 attempt"
    assert labels[5] == "run fulfil:/legato/client:o-1  fulfil  completed"
    assert labels[6].startswith("event order.packed  fulfil:/legato/client:o-1:1  (call 1;")
    assert labels[7] == "→ audit  done after 1 attempt"
    assert labels[8] == "→ notify  done after 1 attempt"
    assert labels[9].startswith("event customer.notified  ")
    assert "(from /shop/notify;" in labels[9]
    assert labels[9].endswith("unrouted")


def test_flow_json_nests_deliveries_runs_and_published_events(order_flow: Cli) -> None:
    flow = order_flow.json("flows", "show", "o-1")

    assert (flow["events"], flow["runs"], flow["dead"], flow["pending"]) == (3, 1, 1, 1)
    (root,) = flow["roots"]
    assert (root["kind"], root["event"]["id"], root["run_id"]) == ("event", "o-1", None)
    by_name = {d["subscription"]: d for d in root["deliveries"]}
    assert by_name["billing"]["status"] == "dead"
    assert by_name["billing"]["error"]["message"] == "card declined for o-1"
    assert by_name["warehouse"]["status"] == "pending"
    run = by_name["workflow:fulfil"]["run"]
    assert (run["run_id"], run["status"]) == ("fulfil:/legato/client:o-1", "completed")
    (packed,) = run["published"]
    assert (packed["event"]["type"], packed["run_id"]) == ("order.packed", run["run_id"])
    notify = next(d for d in packed["deliveries"] if d["subscription"] == "notify")
    assert [e["event"]["type"] for e in notify["published"]] == ["customer.notified"]


def test_flow_mermaid_links_events_deliveries_and_runs_and_marks_dead_and_pending(
    order_flow: Cli,
) -> None:
    text = order_flow.ok("flows", "show", "o-1", "--mermaid")

    lines = text.splitlines()
    assert "flowchart TD" in lines[:2]
    nodes = mermaid_nodes(text)
    placed = node_named(nodes, "order.placed")
    billing = node_named(nodes, "billing")
    warehouse = node_named(nodes, "warehouse")
    fulfil = node_named(nodes, "workflow:fulfil")
    run = node_named(nodes, "run fulfil:/legato/client:o-1")
    packed = node_named(nodes, "order.packed")
    notify = node_named(nodes, "notify")
    notified = node_named(nodes, "customer.notified")
    for edge in (
        f"{placed} --> {billing}",
        f"{placed} --> {warehouse}",
        f"{fulfil} -->|started| {run}",
        f"{run} -->|published| {packed}",
        f"{notify} -->|published| {notified}",
    ):
        assert f"    {edge}" in lines, text
    assert "dead after 2 attempts<br/>CardDeclined: card declined for o-1" in nodes[billing]
    classes = {
        line.split()[2]: set(line.split()[1].split(","))
        for line in lines
        if line.startswith("    class ")
    }
    assert classes["dead"] == {billing}
    assert classes["pending"] == {warehouse}
    assert run in classes["run"]
    assert any(line.startswith("    classDef dead ") for line in lines)


def test_flow_mermaid_escapes_labels_and_makes_its_own_node_ids(cli: Cli) -> None:
    register(cli.database)
    weird_type = 'odd "type" <b>#1</b> end'
    cli.ok("events", "publish", weird_type, "--data", "{}", "--id", "a --> b; [x]")

    text = cli.ok("flows", "show", "a --> b; [x]", "--mermaid")

    nodes = mermaid_nodes(text)
    ((node_id, label),) = nodes.items()
    assert re.fullmatch(r"[A-Za-z0-9_]+", node_id)
    assert label.startswith("odd #quot;type#quot; #lt;b#gt;#35;1#lt;/b#gt; end<br/>id a --")
    assert "a --#gt; b; [x]" in label
    assert '"' not in label


def test_flow_of_a_request_shows_the_reply_going_back(cli: Cli) -> None:
    register(cli.database)
    deliver(cli.database, then=start_checkout("c-1", sku="pen"))

    text = cli.ok("flows", "show", "c-1")
    mermaid = cli.ok("flows", "show", "c-1", "--mermaid")

    labels = tree_lines(text)
    assert labels[0] == (1, "run c-1  checkout  completed")
    assert labels[1][1].startswith("event checkout.started  c-1:1  (call 1;")
    assert labels[2][1].startswith("event stock.check  c-1:2  (call 2;")
    assert labels[2][1].endswith("awaits stock.ok, stock.out")
    assert labels[3] == (3, "→ workflow:stock  done after 1 attempt")
    assert labels[4] == (4, "run stock:/shop/checkout:c-1:2  stock  completed")
    assert labels[5][0] == 5
    assert labels[5][1].startswith("event stock.ok  ")
    assert labels[5][1].endswith("reply to c-1:2")
    nodes = mermaid_nodes(mermaid)
    reply, request = node_named(nodes, "stock.ok"), node_named(nodes, "stock.check")
    assert f"    {reply} -.->|reply to| {request}" in mermaid.splitlines()


def test_flows_show_of_an_unknown_correlation_id_is_a_clear_error(cli: Cli) -> None:
    register(cli.database)

    assert_refused(cli.run("flows", "show", "nope"), 1, "no events with correlation id 'nope'")
    assert_refused(cli.run("flows", "show", "nope", "--json", "--mermaid"), 2, "not both")


def test_runs_show_lists_the_events_a_run_published_and_the_replies_it_awaits(
    cli: Cli,
) -> None:
    register(cli.database)
    deliver(cli.database, then=start_checkout("c-1", sku="pen"))
    deliver(cli.database, then=start_checkout("c-2", sku="unknown"))

    answered = cli.ok("runs", "show", "c-1")
    waiting = cli.ok("runs", "show", "c-2")
    published: list[dict[str, Any]] = cli.json("runs", "show", "c-2")["published"]

    assert re.search(r"1\s+checkout\.started\s+c-1:1\s+—", answered), answered
    assert re.search(r"2\s+stock\.check\s+c-1:2\s+replied", answered), answered
    assert re.search(r"2\s+stock\.check\s+c-2:2\s+awaits stock\.ok, stock\.out", waiting)
    assert published == [
        {
            "key": "1",
            "type": "checkout.started",
            "event_id": "c-2:1",
            "awaiting": None,
            "replied": False,
            "timed_out": False,
            "step": None,
        },
        {
            "key": "2",
            "type": "stock.check",
            "event_id": "c-2:2",
            "awaiting": ["stock.ok", "stock.out"],
            "replied": False,
            "timed_out": False,
            "step": None,
        },
    ]
