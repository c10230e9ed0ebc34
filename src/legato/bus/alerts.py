"""Alerts: operators learn of trouble from Legato, not from customers.

Every ``alert_interval`` a worker's upkeep pass looks for what is stuck or broken:

- ``stuck_run``: a run that should be moving (pending, running, compensating, or parked
  past its wake-up time) and has made no progress for its workflow's ``stuck_after``
  (an hour unless told otherwise);
- ``run_needs_operator``: a run in ``compensation_failed`` or ``blocked``;
- ``expectation_violated``: an expectation instance past its deadline;
- ``dead_letter``: a delivery that ran out of attempts;
- ``unrouted_event``: events of a type that no subscription matched;
- ``dead_worker``: a worker presumed dead while it held runs.

Each condition is an alert with a deterministic id (``<kind>:<subject>``). A condition
seen for the first time raises it: the alert row and a ``legato.alert.raised`` event
commit together, guarded so that only one worker raises it. An alert whose condition is
gone is resolved (``legato.alert.resolved``) the same way; a cause that comes back raises
it again. A read that hit its limit resolves nothing of its kind that pass: an alert is
resolved only when its cause is known to be gone.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from legato.bus.publishing import build_event, encode_event, new_event_op
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.deliveries import DeliveryStatus
from legato.model.events import format_time
from legato.model.expectations import ExpectationStatus
from legato.model.payloads import dumps
from legato.model.runs import RunStatus
from legato.storage.base import RaiseAlert, ResolveAlert, Write

if TYPE_CHECKING:
    from legato.engine.worker import Engine

log = logging.getLogger(__name__)

RAISED = "legato.alert.raised"
"""The type of the event an alert raised publishes."""
RESOLVED = "legato.alert.resolved"
"""The type of the event an alert resolved publishes."""
SOURCE = "/legato/alerts"
"""The ``source`` of alert events."""

DEFAULT_STUCK_AFTER = timedelta(hours=1)
"""How long a run may go without progress before it is ``stuck_run``, unless its
workflow says otherwise (``@app.workflow(stuck_after=...)``)."""

DEFAULT_ALERT_INTERVAL = timedelta(seconds=10)
"""How often a worker looks for alerts, unless ``legato.App(alert_interval=...)`` says."""

LIMIT = 1000
"""Conditions of one kind read per pass at most."""

_MOVING = frozenset({"pending", "running", "compensating"})
_NAMESPACE = uuid.UUID("0b4c8a52-3f0e-4d27-9a1b-6c6567617431")


@dataclass(slots=True)
class Condition:
    """Something an alert is about, as found now."""

    kind: AlertKind
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        return f"{self.kind.value}:{self.subject}"


@dataclass(slots=True)
class Scan:
    """What one pass found: conditions by alert id, and the kinds read in full (an alert
    of another kind is not resolved: its condition may lie beyond the read's limit)."""

    found: dict[str, Condition] = field(default_factory=dict)
    complete: set[AlertKind] = field(default_factory=set)

    def add(self, condition: Condition) -> None:
        self.found.setdefault(condition.alert_id, condition)

    def read(self, kind: AlertKind, rows: int) -> None:
        if rows < LIMIT:
            self.complete.add(kind)


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h {minutes % 60}m" if minutes >= 60 else f"{minutes}m"


async def scan(engine: Engine) -> Scan:
    """The conditions that are alerts now."""
    store = engine.store
    now = engine.clock.time()
    found = Scan()
    default_s = DEFAULT_STUCK_AFTER.total_seconds()
    # Each worker judges its own app's workflows only, by their stuck_after: two apps on
    # one database with different limits must not raise and resolve each other's alerts.
    limits = {name: wf.stuck_after_s or default_s for name, wf in engine.registry.workflows.items()}
    quiet = await store.quiet_runs(now - min([default_s, *limits.values()]), LIMIT)
    found.read(AlertKind.STUCK_RUN, len(quiet))
    for q in quiet:
        limit = limits.get(q.workflow)
        if limit is None or q.progress_at >= now - limit:
            continue
        if q.status not in _MOVING and (q.wake_at is None or q.wake_at >= now - limit):
            continue  # parked, and not yet overdue by its own workflow's stuck_after
        found.add(
            Condition(
                AlertKind.STUCK_RUN,
                q.run_id,
                f"run {q.run_id} ({q.workflow}, {q.status}) has made no progress for "
                f"{_ago(now - q.progress_at)}",
                {"run_id": q.run_id, "workflow": q.workflow, "status": q.status},
            )
        )
    needs = 0
    for status in (RunStatus.COMPENSATION_FAILED, RunStatus.BLOCKED):
        runs = await store.list_runs(status=status.value, limit=LIMIT, payloads=False)
        needs = max(needs, len(runs))
        for run in runs:
            found.add(
                Condition(
                    AlertKind.RUN_NEEDS_OPERATOR,
                    run.run_id,
                    f"run {run.run_id} ({run.workflow}) is {status.value}: it needs an "
                    f"operator (legato runs show {run.run_id})",
                    {"run_id": run.run_id, "workflow": run.workflow, "status": status.value},
                )
            )
    found.read(AlertKind.RUN_NEEDS_OPERATOR, needs)
    violated = await store.list_expectations(status=ExpectationStatus.VIOLATED.value, limit=LIMIT)
    found.read(AlertKind.EXPECTATION_VIOLATED, len(violated))
    for inst in violated:
        found.add(
            Condition(
                AlertKind.EXPECTATION_VIOLATED,
                f"{inst.expectation} {inst.instance}",
                f"expectation {inst.expectation} violated for key {inst.key}: "
                f"{', '.join(inst.missing_patterns)} missing at "
                f"{format_time(inst.deadline.replace(microsecond=0))}",
                {
                    "expectation": inst.expectation,
                    "key": inst.key,
                    "instance": inst.instance,
                    "correlation_id": inst.correlation_id,
                    "violation_id": inst.violation_id,
                },
            )
        )
    dead = await store.list_deliveries(status=DeliveryStatus.DEAD.value, limit=LIMIT)
    found.read(AlertKind.DEAD_LETTER, len(dead))
    for d in dead:
        message = (d.error or {}).get("message", "")
        found.add(
            Condition(
                AlertKind.DEAD_LETTER,
                f"{d.subscription} {d.seq}",
                f"event {d.seq} is a dead letter of {d.subscription} after {d.attempts} "
                f"attempt(s): {str(message)[:200]}",
                {"subscription": d.subscription, "seq": d.seq, "attempts": d.attempts},
            )
        )
    await _unrouted(engine, found)
    for worker_id, released in engine.presumed_dead.items():
        found.add(
            Condition(
                AlertKind.DEAD_WORKER,
                worker_id,
                f"worker {worker_id} was presumed dead holding runs: {released} released "
                "for another worker to take over",
                {"worker_id": worker_id, "released": released},
            )
        )
    engine.presumed_dead.clear()  # raised now; resolved at the next pass (taken over)
    found.complete.add(AlertKind.DEAD_WORKER)
    return found


async def _unrouted(engine: Engine, found: Scan) -> None:
    """Unrouted events, read on from where this worker left off, one condition per type;
    a type stays one until a subscription would match its last unrouted event."""
    store = engine.store
    seen = engine.unrouted_seen
    while True:
        page = await store.list_events(unrouted=True, after_seq=seen.cursor, limit=LIMIT)
        for stored in page:
            if not stored.event.type.startswith("legato."):  # Legato's own: for whoever cares
                seen.last[stored.event.type] = (stored.seq, stored.event.id)
        if page:
            seen.cursor = page[-1].seq
        if len(page) < LIMIT:
            break
    for type, (seq, event_id) in list(seen.last.items()):
        stored_event = await store.get_event(seq)
        if stored_event is None or engine.router.route(stored_event.event.to_dict(), 0.0):
            del seen.last[type]  # pruned, or someone listens now: the cause cleared
            continue
        found.add(
            Condition(
                AlertKind.UNROUTED_EVENT,
                type,
                f"events of type {type} match no subscription (the last: {event_id}, seq "
                f"{seq}); they are kept, listed by legato events list --unrouted",
                {"type": type, "seq": seq, "event_id": event_id},
            )
        )
    found.complete.add(AlertKind.UNROUTED_EVENT)


@dataclass(slots=True)
class UnroutedSeen:
    """How far a worker has read unrouted events, and the last one of each type."""

    cursor: int = 0
    last: dict[str, tuple[int, str]] = field(default_factory=dict)


def event_id(kind: str, alert_id: str, times: int) -> str:
    """The deterministic id of an alert's ``kind`` event for its ``times``-th raising."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\x00{alert_id}\x00{times}"))


async def check(engine: Engine) -> tuple[int, int]:
    """Raise the alerts whose cause is new, resolve those whose cause is gone; return how
    many were raised and resolved."""
    found = await scan(engine)
    raised = {a.alert_id: a for a in await engine.store.list_alerts(status="raised", limit=10**6)}
    new = [c for c in found.found.values() if c.alert_id not in raised]
    earlier = {a.alert_id: a for a in await engine.store.get_alerts([c.alert_id for c in new])}
    changes: list[tuple[str, list[Write], list[Any]]] = []
    now = engine.clock.time()
    for condition in new:
        before = earlier.get(condition.alert_id)
        times = 1 if before is None else before.times + 1
        changes.append(_raise(engine, condition, times, now))
    for alert in raised.values():
        if alert.alert_id not in found.found and await _cleared(engine, alert, found):
            changes.append(_resolve(engine, alert, now))
    pending = [(label, ops, pub, engine.journal.submit(*ops)) for label, ops, pub in changes]
    counts = [0, 0]
    for label, ops, published, batch in pending:
        outcome = await batch
        if ops[0].run_id in outcome.failed:
            continue  # another worker did it first
        for op, event, obj in published:
            engine.consumer.take(op, event, obj)
        if label == RAISED:
            counts[0] += 1
            log.warning("alert raised: %s", ops[0].summary)  # type: ignore[union-attr]
        else:
            counts[1] += 1
            log.info("alert resolved: %s", ops[0].alert_id)  # type: ignore[union-attr]
    return counts[0], counts[1]


async def _cleared(engine: Engine, alert: Alert, found: Scan) -> bool:
    """Whether the cause of ``alert`` (not among this pass's conditions) is gone. Kinds
    whose subject can be looked at are checked one by one, so a read that hit its limit
    resolves nothing it did not see; the others only when their read was complete."""
    store, d = engine.store, alert.details
    if alert.kind is AlertKind.STUCK_RUN:
        if d.get("workflow") not in engine.registry.workflows:
            return False  # another app's: its workers judge it by its stuck_after
        return AlertKind.STUCK_RUN in found.complete
    if alert.kind is AlertKind.RUN_NEEDS_OPERATOR:
        run = await store.get_run(str(d.get("run_id")))
        return run is None or run.status.value != d.get("status")
    if alert.kind is AlertKind.EXPECTATION_VIOLATED:
        instances = await store.expectation_instances(
            str(d.get("expectation")), [str(d.get("key"))]
        )
        return not any(
            i.instance == d.get("instance") and i.status is ExpectationStatus.VIOLATED
            for i in instances
        )
    if alert.kind is AlertKind.DEAD_LETTER:
        deliveries = await store.deliveries(int(d.get("seq", 0)))
        return not any(
            x.subscription == d.get("subscription") and x.status is DeliveryStatus.DEAD
            for x in deliveries
        )
    return alert.kind in found.complete


def _raise(
    engine: Engine, condition: Condition, times: int, now: float
) -> tuple[str, list[Write], list[Any]]:
    alert_id = condition.alert_id
    batch = f"\x00alert {alert_id}"
    eid = event_id(RAISED, alert_id, times)
    op = RaiseAlert(
        batch,
        alert_id,
        condition.kind.value,
        condition.subject,
        condition.summary,
        dumps(condition.details),
        now,
        times,
        eid,
    )
    data = {
        "alert_id": alert_id,
        "kind": condition.kind.value,
        "subject": condition.subject,
        "summary": condition.summary,
        "details": condition.details,
        "times": times,
    }
    ops, published = _event(engine, RAISED, eid, alert_id, data, batch, now)
    return RAISED, [op, *ops], published


def _resolve(engine: Engine, alert: Alert, now: float) -> tuple[str, list[Write], list[Any]]:
    batch = f"\x00alert {alert.alert_id}"
    eid = event_id(RESOLVED, alert.alert_id, alert.times)
    op = ResolveAlert(batch, alert.alert_id, now, alert.times, eid)
    data = {
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "subject": alert.subject,
        "summary": alert.summary,
        "details": alert.details,
        "times": alert.times,
        "raised_at": format_time(alert.raised_at),
    }
    ops, published = _event(engine, RESOLVED, eid, alert.alert_id, data, batch, now)
    return RESOLVED, [op, *ops], published


def _event(
    engine: Engine,
    type: str,
    eid: str,
    alert_id: str,
    data: dict[str, Any],
    batch: str,
    now: float,
) -> tuple[list[Write], list[Any]]:
    event = build_event(
        type,
        data,
        source=SOURCE,
        id=eid,
        subject=alert_id,
        recorded_at=now,
        producer=engine.tracer,
    )
    obj, payload = encode_event(event, engine.max_payload_bytes)
    op = new_event_op(
        event, obj, payload, engine.router, now, batch_key=batch, owner_of=engine.consumer.owner_of
    )
    return [op], [(op, event, obj)]


__all__ = ["RAISED", "RESOLVED", "AlertKind", "AlertStatus", "UnroutedSeen", "check", "scan"]
