"""The flow of a correlation id: what happened, in causal order, and how each part ended.

A flow is a forest read from the log: each event with the subscribers it was delivered to
and how that went, the runs those deliveries started, and under each run the events it
published. ``build_flow`` is pure: it takes what a client returns (the events of one
correlation id, their deliveries, the runs it names; ``runs_to_read`` says which) and
places every event once:

- under the run that published it, if that run is in the flow;
- else under the delivery of its cause (``causationid``) to the handler that published it
  (a handler publishes with the source ``/<app>/<subscription>``);
- else under its cause, if the cause is in the flow;
- else at the top: a root.

Runs that published events of the flow but were not started by one of its events are
roots too. A ``legato.expectation.violated`` event has the run its expectation started
under it. The flow also carries the expectation instances its triggers opened. A cycle
(data no engine writes, but the log is read as found) is cut at its
oldest event, which becomes a root: nothing is dropped and nothing is shown twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from legato.bus.subscriptions import TRIGGER_PREFIX, triggered_run_id
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent
from legato.model.expectations import VIOLATED_TYPE, ExpectationInstance
from legato.model.runs import Run, RunStatus


@dataclass(frozen=True, slots=True)
class RunNode:
    """A run of the flow: ``status`` None when the run is not (or no longer) stored."""

    run_id: str
    workflow: str | None
    status: RunStatus | None
    published: tuple[EventNode, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryNode:
    """One subscriber's delivery of an event: its outcome, and what came of it.

    ``run`` is the run a trigger's delivery (subscription ``workflow:<name>``) started;
    ``published`` the events a handler published while handling it.
    """

    delivery: Delivery
    run: RunNode | None = None
    published: tuple[EventNode, ...] = ()

    @property
    def workflow(self) -> str | None:
        """The workflow a trigger starts, or None for a handler."""
        return trigger_workflow(self.delivery.subscription)


@dataclass(frozen=True, slots=True)
class EventNode:
    """An event of the flow, with its deliveries and the events it caused directly.

    ``caused``: events whose ``causationid`` is this event's id and that no run or
    handler delivery of the flow claims (published by an outside client, say).
    ``reply_to``: the id of the request of the flow this event answers (its cause, a
    ``legato.request`` awaiting this event's type), which went to the requesting run.
    """

    stored: StoredEvent
    deliveries: tuple[DeliveryNode, ...] = ()
    caused: tuple[EventNode, ...] = ()
    reply_to: str | None = None
    run: RunNode | None = None
    """The run this event started other than by a delivery: a violation's workflow."""


FlowNode = EventNode | RunNode


@dataclass(frozen=True, slots=True)
class Flow:
    """Everything that happened for one correlation id, as a forest, oldest root first."""

    correlation_id: str
    roots: tuple[FlowNode, ...]
    expectations: tuple[ExpectationInstance, ...] = ()
    """The expectation instances whose trigger belongs to this flow, oldest first."""

    def walk(self) -> Iterator[EventNode | DeliveryNode | RunNode]:
        """Every node, parents before children (depth first, in the order shown)."""
        stack: list[EventNode | DeliveryNode | RunNode] = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(children(node)))

    @property
    def events(self) -> list[EventNode]:
        """The flow's events, in the order shown."""
        return [n for n in self.walk() if isinstance(n, EventNode)]

    @property
    def runs(self) -> list[RunNode]:
        """The flow's runs, in the order shown."""
        return [n for n in self.walk() if isinstance(n, RunNode)]

    def deliveries(self, status: DeliveryStatus | None = None) -> list[DeliveryNode]:
        """The flow's deliveries (only those in ``status``, if given)."""
        return [
            n
            for n in self.walk()
            if isinstance(n, DeliveryNode) and (status is None or n.delivery.status is status)
        ]


def children(node: EventNode | DeliveryNode | RunNode) -> list[EventNode | DeliveryNode | RunNode]:
    """The nodes directly under ``node``, in the order shown."""
    if isinstance(node, EventNode):
        return [*([node.run] if node.run is not None else []), *node.deliveries, *node.caused]
    if isinstance(node, DeliveryNode):
        return [*([node.run] if node.run is not None else []), *node.published]
    return list(node.published)


def trigger_workflow(subscription: str) -> str | None:
    """The workflow a trigger subscription (``workflow:<name>``) starts, else None."""
    if subscription.startswith(TRIGGER_PREFIX):
        return subscription[len(TRIGGER_PREFIX) :]
    return None


def _triggered(
    events: Sequence[StoredEvent], deliveries: Mapping[int, Sequence[Delivery]]
) -> dict[str, tuple[int, str]]:
    """Run id → (event seq, subscription) of the trigger delivery that starts it."""
    started: dict[str, tuple[int, str]] = {}
    for stored in sorted(events, key=lambda s: s.seq):
        for delivery in deliveries.get(stored.seq, ()):
            workflow = trigger_workflow(delivery.subscription)
            if workflow is not None:
                run_id = triggered_run_id(workflow, stored.event)
                started.setdefault(run_id, (stored.seq, delivery.subscription))
    return started


def _started_by_violations(events: Sequence[StoredEvent]) -> dict[str, int]:
    """Run id → seq of the ``legato.expectation.violated`` event that started it."""
    started: dict[str, int] = {}
    for stored in sorted(events, key=lambda s: s.seq):
        data = stored.event.data
        if stored.event.type == VIOLATED_TYPE and isinstance(data, Mapping):
            run_id = data.get("run_id")
            if isinstance(run_id, str):
                started.setdefault(run_id, stored.seq)
    return started


def runs_to_read(
    events: Sequence[StoredEvent], deliveries: Mapping[int, Sequence[Delivery]]
) -> list[str]:
    """The runs ``build_flow`` shows: those the events' triggers (and violations) started,
    and those that published the events; in order of first mention."""
    named = dict.fromkeys(_triggered(events, deliveries))
    named.update(dict.fromkeys(_started_by_violations(events)))
    for stored in sorted(events, key=lambda s: s.seq):
        if stored.run_id is not None:
            named.setdefault(stored.run_id)
    return list(named)


# A node while the tree is laid out: ("event", seq, ""), ("delivery", seq, subscription)
# or ("run", 0, run id).
_Key = tuple[str, int, str]
_Node = EventNode | DeliveryNode | RunNode


@dataclass(slots=True)
class _Layout:
    """Where each node goes (``parent``; None for a root) and its place among its
    siblings (``rank``: a delivery's run first, then an event's deliveries as listed,
    then events by seq and runs by the first event they published)."""

    parent: dict[_Key, _Key | None]
    rank: dict[_Key, tuple[int, int]]
    stored: dict[_Key, StoredEvent]
    delivery: dict[_Key, Delivery]
    reply_to: dict[_Key, str]

    def place(self, key: _Key) -> tuple[tuple[int, int], _Key]:
        return self.rank[key], key

    def below(self) -> dict[_Key, list[_Key]]:
        out: dict[_Key, list[_Key]] = {}
        for key, above in self.parent.items():
            if above is not None:
                out.setdefault(above, []).append(key)
        for keys in out.values():
            keys.sort(key=self.place)
        return out


def _lay_out(
    ordered: Sequence[StoredEvent],
    deliveries: Mapping[int, Sequence[Delivery]],
    runs: Mapping[str, Run],
) -> _Layout:
    by_id: dict[str, StoredEvent] = {}
    for stored in ordered:
        by_id.setdefault(stored.event.id, stored)
    layout = _Layout({}, {}, {}, {}, {})
    for stored in ordered:
        key = ("event", stored.seq, "")
        layout.parent[key] = _event_parent(stored, by_id, deliveries)
        layout.rank[key] = (1, stored.seq)
        layout.stored[key] = stored
        cause = by_id.get(stored.event.causationid or "")
        if cause is not None and stored.event.type in (cause.reply_types or ()):
            layout.reply_to[key] = cause.event.id
        for i, delivery in enumerate(deliveries.get(stored.seq, ())):
            sub = ("delivery", stored.seq, delivery.subscription)
            layout.parent[sub], layout.rank[sub], layout.delivery[sub] = key, (0, i), delivery
    first_published: dict[str, int] = {}
    for stored in ordered:
        if stored.run_id is not None:
            first_published.setdefault(stored.run_id, stored.seq)
    for run_id, (seq, subscription) in _triggered(ordered, deliveries).items():
        started = ("delivery", seq, subscription)
        # A trigger's pending or dead delivery has not made its run: nothing to show yet.
        if (
            run_id in runs
            or run_id in first_published
            or layout.delivery[started].status is DeliveryStatus.DONE
        ):
            layout.parent[("run", 0, run_id)] = started
            layout.rank[("run", 0, run_id)] = (0, -1)
    for run_id, seq in _started_by_violations(ordered).items():
        key = ("run", 0, run_id)
        if key not in layout.parent and (run_id in runs or run_id in first_published):
            layout.parent[key], layout.rank[key] = ("event", seq, ""), (0, -1)
    for run_id, seq in first_published.items():
        key = ("run", 0, run_id)
        if key not in layout.parent:
            layout.parent[key], layout.rank[key] = None, (1, seq)
    return layout


def build_flow(
    correlation_id: str,
    events: Sequence[StoredEvent],
    deliveries: Mapping[int, Sequence[Delivery]],
    runs: Mapping[str, Run],
    expectations: Sequence[ExpectationInstance] = (),
) -> Flow:
    """The flow of ``correlation_id`` from its events, each event's deliveries (by seq)
    and the runs found among ``runs_to_read`` (a run missing from ``runs`` is shown
    without a status), with the expectation instances of its triggers."""
    ordered = sorted(events, key=lambda s: s.seq)
    layout = _lay_out(ordered, deliveries, runs)
    below = layout.below()
    roots = [key for key, above in layout.parent.items() if above is None]
    roots += _cut_cycles(ordered, layout.parent, below, _reachable(roots, below))

    built: dict[_Key, _Node] = {}
    for key in _post_order(roots, below):
        inside = [built[k] for k in below.get(key, [])]
        published = tuple(n for n in inside if isinstance(n, EventNode))
        kind, _, name = key
        if kind == "event":
            delivered = tuple(n for n in inside if isinstance(n, DeliveryNode))
            run = next((n for n in inside if isinstance(n, RunNode)), None)
            built[key] = EventNode(
                layout.stored[key], delivered, published, layout.reply_to.get(key), run
            )
        elif kind == "delivery":
            run = next((n for n in inside if isinstance(n, RunNode)), None)
            built[key] = DeliveryNode(layout.delivery[key], run, published)
        else:
            found = runs.get(name)
            workflow = None if found is None else found.workflow
            status = None if found is None else found.status
            built[key] = RunNode(name, workflow, status, published)
    tops = [built[k] for k in sorted(roots, key=layout.place)]
    return Flow(
        correlation_id,
        tuple(n for n in tops if not isinstance(n, DeliveryNode)),
        tuple(sorted(expectations, key=lambda i: (i.opened_at, i.instance))),
    )


def _event_parent(
    stored: StoredEvent,
    by_id: Mapping[str, StoredEvent],
    deliveries: Mapping[int, Sequence[Delivery]],
) -> _Key | None:
    if stored.run_id is not None:
        return ("run", 0, stored.run_id)
    cause = by_id.get(stored.event.causationid or "")
    if cause is None or cause.seq == stored.seq:
        return None
    for delivery in deliveries.get(cause.seq, ()):
        name = delivery.subscription
        if trigger_workflow(name) is None and stored.event.source.endswith("/" + name):
            return ("delivery", cause.seq, name)
    return ("event", cause.seq, "")


def _cut_cycles(
    ordered: Sequence[StoredEvent],
    parent: Mapping[_Key, _Key | None],
    below: dict[_Key, list[_Key]],
    seen: set[_Key],
) -> list[_Key]:
    """Make roots of what no root reaches: each cycle cut at its oldest event."""
    cut: list[_Key] = []
    for stored in ordered:
        start: _Key = ("event", stored.seq, "")
        if start in seen:
            continue
        path: list[_Key] = []
        key: _Key | None = start
        while key is not None and key not in path and key not in seen:
            path.append(key)
            key = parent[key]
        if key is None or key in seen:  # pragma: no cover - unseen means no root above
            continue
        cycle = path[path.index(key) :]
        oldest = min((k for k in cycle if k[0] == "event"), key=lambda k: k[1])
        above = parent[oldest]
        if above is not None:
            below[above].remove(oldest)
        cut.append(oldest)
        seen |= _reachable([oldest], below)
    return cut


def _reachable(roots: list[_Key], below: Mapping[_Key, list[_Key]]) -> set[_Key]:
    seen: set[_Key] = set()
    stack = list(roots)
    while stack:
        key = stack.pop()
        if key not in seen:
            seen.add(key)
            stack.extend(below.get(key, []))
    return seen


def _post_order(roots: list[_Key], below: Mapping[_Key, list[_Key]]) -> list[_Key]:
    """Every key under ``roots``, children before parents (no recursion: a flow can be
    deeper than Python's stack)."""
    out: list[_Key] = []
    stack: list[tuple[_Key, bool]] = [(k, False) for k in roots]
    while stack:
        key, expanded = stack.pop()
        if expanded:
            out.append(key)
        else:
            stack.append((key, True))
            stack.extend((k, False) for k in below.get(key, []))
    return out
