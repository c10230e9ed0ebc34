"""``legato.bus.flows``: the causation tree of a correlation id, built from what a client
reads (events, deliveries, runs), and its Mermaid drawing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from legato.bus.flows import (
    DeliveryNode,
    EventNode,
    Flow,
    RunNode,
    build_flow,
    runs_to_read,
)
from legato.bus.subscriptions import triggered_run_id
from legato.cli.flows import escape_label, to_mermaid
from legato.model import RunStatus
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent
from legato.model.events import Event
from legato.model.ids import RunId
from legato.model.runs import Run

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def stored(
    seq: int,
    event_id: str,
    type: str = "thing.happened",
    *,
    source: str = "/client",
    cause: str | None = None,
    run_id: str | None = None,
    call_key: str | None = None,
    reply_types: tuple[str, ...] | None = None,
) -> StoredEvent:
    event = Event(id=event_id, source=source, type=type, correlationid="c", causationid=cause)
    return StoredEvent(seq, event, T0 + timedelta(seconds=seq), 1, run_id, call_key, reply_types)


def delivered(
    seq: int, subscription: str, status: str = "done", attempts: int = 1, **extra: Any
) -> Delivery:
    return Delivery(subscription, seq, DeliveryStatus(status), attempts, None, T0, **extra)


def run(run_id: str, workflow: str, status: str = "completed") -> Run:
    return Run(RunId(run_id), workflow, RunStatus(status), None, None, None, T0, T0)


def outline(flow: Flow) -> list[str]:
    """The tree as indented lines: ``event ID``, ``to SUB (status)``, ``run ID (status)``."""
    lines: list[str] = []

    def add(node: EventNode | DeliveryNode | RunNode, depth: int) -> None:
        pad = "  " * depth
        if isinstance(node, EventNode):
            lines.append(f"{pad}event {node.stored.event.id}")
            inner: list[Any] = [*node.deliveries, *node.caused]
        elif isinstance(node, DeliveryNode):
            lines.append(f"{pad}to {node.delivery.subscription} ({node.delivery.status.value})")
            inner = [*([node.run] if node.run else []), *node.published]
        else:
            status = "not found" if node.status is None else node.status.value
            lines.append(f"{pad}run {node.run_id} ({status})")
            inner = list(node.published)
        for child in inner:
            add(child, depth + 1)

    for root in flow.roots:
        add(root, 0)
    return lines


def test_a_handlers_event_goes_under_its_delivery_of_the_cause() -> None:
    placed = stored(1, "e1", "order.placed")
    receipt = stored(2, "e2", "receipt.sent", source="/shop/send_receipt", cause="e1")
    deliveries = {
        1: [delivered(1, "audit"), delivered(1, "send_receipt")],
        2: [delivered(2, "archive", "dead", 5)],
    }

    flow = build_flow("c", [receipt, placed], deliveries, {})

    assert outline(flow) == [
        "event e1",
        "  to audit (done)",
        "  to send_receipt (done)",
        "    event e2",
        "      to archive (dead)",
    ]


def test_a_trigger_delivery_holds_the_run_it_started_and_the_run_what_it_published() -> None:
    requested = stored(1, "e1", "shipping.requested")
    run_id = triggered_run_id("ship", requested.event)
    shipped = stored(2, "e2", "shipping.shipped", cause="e1", run_id=run_id, call_key="1")

    flow = build_flow(
        "c",
        [requested, shipped],
        {1: [delivered(1, "workflow:ship")]},
        {run_id: run(run_id, "ship")},
    )

    assert outline(flow) == [
        "event e1",
        "  to workflow:ship (done)",
        f"    run {run_id} (completed)",
        "      event e2",
    ]
    ship = flow.roots[0]
    assert isinstance(ship, EventNode)
    assert ship.deliveries[0].workflow == "ship"
    started = ship.deliveries[0].run
    assert started is not None and started.workflow == "ship"


def test_a_run_not_started_by_the_flow_is_a_root_placed_by_its_first_event() -> None:
    outside = stored(1, "e1")
    first = stored(2, "o-1:1", "order.placed", run_id="o-1", call_key="1")
    second = stored(3, "o-1:2", "order.paid", run_id="o-1", call_key="2")

    flow = build_flow("c", [second, outside, first], {}, {"o-1": run("o-1", "place", "running")})

    assert outline(flow) == ["event e1", "run o-1 (running)", "  event o-1:1", "  event o-1:2"]


def test_an_outside_event_caused_by_a_flow_event_goes_under_its_cause() -> None:
    first = stored(1, "e1")
    answer = stored(2, "e2", source="/crm", cause="e1")
    orphan = stored(3, "e3", cause="gone-long-ago")

    flow = build_flow("c", [first, answer, orphan], {1: [delivered(1, "audit")]}, {})

    assert outline(flow) == ["event e1", "  to audit (done)", "  event e2", "event e3"]
    root = flow.roots[0]
    assert isinstance(root, EventNode)
    assert [e.stored.event.id for e in root.caused] == ["e2"]
    chart = to_mermaid(flow).splitlines()
    assert "    ev1 --> ev1_d1" in chart
    assert "    ev1 -->|caused| ev2" in chart


def test_a_trigger_that_has_not_made_its_run_shows_none_and_a_missing_run_no_status() -> None:
    waiting = stored(1, "e1")
    made = stored(2, "e2")
    deliveries = {
        1: [delivered(1, "workflow:ship", "pending", 0)],
        2: [delivered(2, "workflow:ship")],
    }

    flow = build_flow("c", [waiting, made], deliveries, {})

    gone = triggered_run_id("ship", made.event)
    assert outline(flow) == [
        "event e1",
        "  to workflow:ship (pending)",
        "event e2",
        "  to workflow:ship (done)",
        f"    run {gone} (not found)",
    ]


def test_runs_to_read_names_triggered_runs_then_publishers_once_each() -> None:
    trigger = stored(1, "e1")
    by_run = stored(2, "r:1", run_id="r")
    again = stored(3, "r:2", run_id="r")

    names = runs_to_read(
        [again, by_run, trigger], {1: [delivered(1, "workflow:w"), delivered(1, "audit")]}
    )

    assert names == [triggered_run_id("w", trigger.event), "r"]


def test_a_causation_cycle_is_cut_at_its_oldest_event_and_nothing_is_lost() -> None:
    a = stored(1, "a", cause="b")
    b = stored(2, "b", cause="a")
    c = stored(3, "c", cause="b")
    selfish = stored(4, "d", cause="d")

    flow = build_flow("c", [a, b, c, selfish], {}, {})

    assert outline(flow) == ["event a", "  event b", "    event c", "event d"]


def test_a_run_that_published_the_event_that_started_it_is_shown_once() -> None:
    # Data no engine writes: event e1 says run R published it, and R is e1's trigger run.
    probe = stored(1, "e1")
    run_id = triggered_run_id("w", probe.event)
    looped = stored(1, "e1", run_id=run_id)

    flow = build_flow("c", [looped], {1: [delivered(1, "workflow:w")]}, {})

    assert outline(flow) == ["event e1", "  to workflow:w (done)", f"    run {run_id} (not found)"]


def test_a_reply_names_the_request_it_answers() -> None:
    request = stored(1, "q", "stock.check", run_id="r", reply_types=("stock.ok",))
    reply = stored(2, "a", "stock.ok", source="/stock", cause="q")
    other = stored(3, "x", "stock.noise", source="/stock", cause="q")

    flow = build_flow("c", [request, reply, other], {}, {})

    by_id = {e.stored.event.id: e for e in flow.events}
    assert by_id["a"].reply_to == "q"
    assert by_id["x"].reply_to is None
    assert by_id["q"].reply_to is None


def test_a_flow_deeper_than_pythons_stack_is_built_and_walked() -> None:
    depth = 3000
    chain = [stored(1, "e1", source="/app/relay")]
    chain += [
        stored(n, f"e{n}", source="/app/relay", cause=f"e{n - 1}") for n in range(2, depth + 1)
    ]
    deliveries = {n: [delivered(n, "relay")] for n in range(1, depth + 1)}

    flow = build_flow("c", chain, deliveries, {})

    assert len(flow.roots) == 1
    assert len(flow.events) == depth
    assert len(flow.deliveries(DeliveryStatus.DONE)) == depth
    assert to_mermaid(flow).count("-->|published|") == depth - 1


def test_flow_counts_deliveries_by_status() -> None:
    deliveries = {
        1: [delivered(1, "a", "dead", 3), delivered(1, "b", "pending", 1), delivered(1, "c")],
    }

    flow = build_flow("c", [stored(1, "e1")], deliveries, {})

    assert len(flow.deliveries()) == 3
    assert [d.delivery.subscription for d in flow.deliveries(DeliveryStatus.DEAD)] == ["a"]
    assert [d.delivery.subscription for d in flow.deliveries(DeliveryStatus.PENDING)] == ["b"]


def test_mermaid_labels_escape_markup_and_fold_whitespace() -> None:
    assert escape_label('say "hi" <b>#1</b> & `x`') == (
        "say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt; #amp; #96;x#96;"
    )
    assert escape_label("two\nlines\t here") == "two lines here"
    assert escape_label("x" * 100) == "x" * 79 + "…"


def test_mermaid_node_ids_are_made_not_taken_from_the_data() -> None:
    hostile = stored(1, 'end"]; click A call evil()', 'x"] --> y', source="/s --> t")
    flow = build_flow("c", [hostile], {1: [delivered(1, 'sub"]{{', "dead", 2)]}, {})

    chart = to_mermaid(flow)

    assert "    ev1[" in chart
    assert "    ev1_d1{{" in chart
    assert "    ev1 --> ev1_d1" in chart
    assert "    class ev1_d1 dead" in chart
    for line in chart.splitlines()[1:]:
        if line.startswith("    ev1[") or line.startswith("    ev1_d1{{"):
            label = line.split('"', 1)[1].rsplit('"', 1)[0]
            assert '"' not in label
