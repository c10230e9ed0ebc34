"""Expectations: deadlines over flows that no single component owns.

``app.expect(name, after=..., then=..., within=...)`` says: after an event matching
``after``, events matching each of ``then`` must follow for the same key (the correlation
id by default) within ``within``, unless one matching ``unless`` comes first. Legato
watches it as a durable consumer of its own:

- One internal subscription per expectation (``expectation:<name>``) receives every event
  that matches any of its patterns, **ordered by the expectation's key**: the events of
  one key are handled one at a time, in log order, by whichever worker holds them, so the
  decision about a key always sees the previous event's writes. Each event's effect on
  the instances (open, fulfil, cancel) commits in the transaction that settles its
  delivery: a crash before it delivers the event again; after it, never.
- Each trigger event opens one instance (identified by the trigger's ``source`` and
  ``id``: a duplicate opens nothing). Its deadline is the trigger's ``recordedtime`` plus
  ``within``: a durable timer, a row the workers' upkeep pass scans, so it fires on an
  idle system and across restarts.
- An awaited (or ``unless``) event that comes before any trigger of its key is kept as
  an *arrival*; a trigger that comes later (out of order) counts arrivals recorded up to
  ``early`` before it (``within`` unless told otherwise). Once a key has instances, an
  event none of them wants (a duplicate, or one for an instance closed already) is not
  kept: it must not settle the key's next trigger.
- The deadline of an open instance violates it: the status change, the
  ``legato.expectation.violated`` event (a deterministic id) and the ``start`` workflow's
  run (its id derived from that event) are one batch, guarded by the instance still being
  open, so it happens exactly once however many workers race or crash.
- An awaited event after the violation makes it ``late_fulfilled`` and publishes
  ``legato.expectation.recovered``.
- Replayed deliveries (``legato events replay``) change nothing: archived events never
  open, close or violate an instance.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from legato.bus.publishing import build_event, encode_event, new_event_op
from legato.bus.subscriptions import (
    DEFAULT_DELIVERY_RETRY,
    EXPECTATION_PREFIX,
    Subscription,
    check_ordered_by,
    ordering_key,
)
from legato.errors import DefinitionError, InvalidPattern
from legato.model.deliveries import StoredEvent, SubscriptionKind
from legato.model.events import Event, format_time
from legato.model.expectations import (
    VIOLATED_TYPE,
    Arrival,
    ExpectationInstance,
    ExpectationStatus,
)
from legato.model.patterns import Pattern, compile_pattern
from legato.model.payloads import dumps
from legato.model.runs import RunStatus
from legato.observability import tracing
from legato.storage.base import (
    NewArrival,
    NewEvent,
    NewExpectation,
    NewRun,
    UpdateExpectation,
    Write,
)

if TYPE_CHECKING:
    from legato.engine.worker import Engine

log = logging.getLogger(__name__)

VIOLATED = VIOLATED_TYPE
"""The type of the event a violation publishes."""
RECOVERED = "legato.expectation.recovered"
"""The type of the event a late fulfilment publishes."""

SOURCE_PREFIX = "/legato/expectations/"
"""The ``source`` of an expectation's events: this and its name (URI-quoted)."""

DUE_BATCH = 200
"""Deadlines handled per upkeep pass at most (the next pass takes the rest)."""

_OPEN = ExpectationStatus.OPEN.value
_VIOLATED = ExpectationStatus.VIOLATED.value
_NAMESPACE = uuid.UUID("6f1d2c1e-9a53-4c8e-8d0f-6c6567617430")


@dataclass(slots=True)
class Expectation:
    """One ``app.expect`` definition."""

    name: str
    after: Pattern
    then: tuple[Pattern, ...]
    within_s: float
    key: str
    unless: Pattern | None
    start: str | None
    early_s: float
    subscription: Subscription

    @property
    def source(self) -> str:
        """The ``source`` of the events this expectation publishes."""
        return SOURCE_PREFIX + quote(self.name, safe="")


def _seconds(value: object, what: str, *, zero: bool = False) -> float:
    if not isinstance(value, timedelta) or value < timedelta(0) or (not zero and not value):
        wanted = "a timedelta of zero or more" if zero else "a positive timedelta"
        raise DefinitionError(f"{what} must be {wanted}, got {value!r}")
    return value.total_seconds()


def _pattern(name: str, argument: str, pattern: str | Mapping[str, Any]) -> Pattern:
    try:
        return compile_pattern(pattern)
    except InvalidPattern as exc:
        raise InvalidPattern(f"expectation {name!r}: {argument}: {exc}") from None


def as_filter(pattern: Pattern) -> dict[str, Any]:
    """``pattern`` as an EventBridge content filter (a type pattern becomes one on ``type``)."""
    source = pattern.source
    if isinstance(source, dict):
        return source
    if "*" not in source:
        return {"type": [source]}
    while "**" in source:  # the same match; a wildcard refuses consecutive stars
        source = source.replace("**", "*")
    return {"type": [{"wildcard": source.replace("\\", "\\\\")}]}


def define(
    name: object,
    *,
    after: str | Mapping[str, Any],
    then: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
    within: timedelta,
    key: str = "correlationid",
    unless: str | Mapping[str, Any] | None = None,
    start: str | None = None,
    early: timedelta | None = None,
) -> Expectation:
    """An expectation, every argument checked (``DefinitionError`` / ``InvalidPattern``)."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise DefinitionError(f"an expectation's name is a non-empty string, got {name!r}")
    awaited = [then] if isinstance(then, str | Mapping) else list(then)
    if not awaited:
        raise DefinitionError(f"expectation {name!r}: then= names at least one pattern")
    within_s = _seconds(within, f"expectation {name!r}: within")
    early_s = (
        within_s if early is None else _seconds(early, f"expectation {name!r}: early", zero=True)
    )
    if start is not None and not isinstance(start, str):
        start = getattr(start, "name", start)
    if start is not None and (not isinstance(start, str) or not start):
        raise DefinitionError(f"expectation {name!r}: start= names a workflow, got {start!r}")
    try:
        checked_key = check_ordered_by(key)
    except DefinitionError:
        checked_key = None
    if checked_key is None:
        raise DefinitionError(
            f"expectation {name!r}: key={key!r} is neither an event attribute (lower-case "
            "letters and digits, like 'correlationid' or 'subject') nor a data path "
            "('data.order_id')"
        )
    after_p = _pattern(name, "after", after)
    then_p = tuple(_pattern(name, f"then[{i}]", p) for i, p in enumerate(awaited))
    unless_p = None if unless is None else _pattern(name, "unless", unless)
    patterns = [after_p, *then_p, *([unless_p] if unless_p is not None else [])]
    combined = compile_pattern({"$or": [as_filter(p) for p in patterns]})
    subscription = Subscription(
        EXPECTATION_PREFIX + name,
        SubscriptionKind.EXPECTATION,
        combined,
        DEFAULT_DELIVERY_RETRY,
        ordered_by=checked_key,
        expectation=name,
    )
    return Expectation(
        name, after_p, then_p, within_s, checked_key, unless_p, start, early_s, subscription
    )


def instance_id(event: Event) -> str:
    """The instance a trigger event opens: named by its ``source`` and ``id``."""
    return f"{event.source} {event.id}"


def _batch_key(name: str, instance: str) -> str:
    return f"\x00expectation {name} {instance}"


def _ts(when: datetime | None, default: float) -> float:
    return default if when is None else when.timestamp()


@dataclass(slots=True)
class Decision:
    """What one event does to an expectation: the writes, and the events among them to
    hand to this worker's subscribers once they commit."""

    ops: list[Write]
    published: list[tuple[NewEvent, Event, dict[str, Any]]]


@dataclass(slots=True)
class Seen:
    """One event as one expectation sees it: its key and what it is to it."""

    event: Event
    seq: int
    batch: str
    key: str
    at: float
    cancels: bool
    awaited: list[int]
    triggers: bool


def seen(
    exp: Expectation, event: Event, obj: Mapping[str, Any], seq: int, batch: str, now: float
) -> Seen | None:
    """``event`` (at log position ``seq``) as ``exp`` sees it; None if it has no key (it
    cannot take part: it is ignored). Its writes will go under the batch key ``batch``."""
    key = ordering_key(obj, exp.key)
    if key is None:
        log.debug("event %s has no %s: expectation %r ignores it", event.id, exp.key, exp.name)
        return None
    return Seen(
        event,
        seq,
        batch,
        key,
        _ts(event.recordedtime, now),
        exp.unless is not None and exp.unless.matches(obj),
        [i for i, p in enumerate(exp.then) if p.matches(obj)],
        exp.after.matches(obj),
    )


async def decide_all(engine: Engine, exp: Expectation, events: Sequence[Seen]) -> list[Decision]:
    """What each of ``events`` (of distinct keys) does to ``exp``'s instances, read in
    two queries for all of them (their instances, and the arrivals their triggers
    count); each decision's writes go under its event's batch key, so each commits with
    its delivery's settle or not at all."""
    keys = list(dict.fromkeys(s.key for s in events))
    by_key: dict[str, list[ExpectationInstance]] = {}
    for inst in await engine.store.expectation_instances(exp.name, keys):
        by_key.setdefault(inst.key, []).append(inst)
    triggers = [s for s in events if s.triggers]
    arrived: dict[str, list[Arrival]] = {}
    if triggers:
        since = min(s.at for s in triggers) - exp.early_s
        trigger_keys = list(dict.fromkeys(s.key for s in triggers))
        for arrival in await engine.store.arrivals(exp.name, trigger_keys, since):
            arrived.setdefault(arrival.key, []).append(arrival)
    now = engine.clock.time()
    return [
        decide(engine, exp, s, by_key.get(s.key, []), arrived.get(s.key, []), now) for s in events
    ]


def decide(
    engine: Engine,
    exp: Expectation,
    s: Seen,
    instances: Sequence[ExpectationInstance],
    arrivals: Sequence[Arrival],
    now: float,
) -> Decision:
    """What ``s`` does to its key's ``instances``, given what ``arrivals`` came before."""
    decision = Decision([], [])
    key, batch, seq = s.key, s.batch, s.seq
    changed: dict[str, tuple[ExpectationInstance, str, set[int], bool]] = {}
    if s.cancels:
        hit = False
        for inst in instances:
            if inst.status is ExpectationStatus.OPEN:
                cancelled = ExpectationStatus.CANCELLED.value
                changed[inst.instance] = (inst, cancelled, set(inst.missing), True)
                hit = True
        if not hit and not instances:  # early for a trigger to come (none was before)
            decision.ops.append(NewArrival(batch, exp.name, key, "unless", seq, s.at))
    for index in s.awaited:
        hit = False
        for inst in instances:
            base = changed.get(inst.instance)
            status = inst.status.value if base is None else base[1]
            missing = set(inst.missing) if base is None else base[2]
            if status not in (_OPEN, _VIOLATED) or index not in missing:
                continue
            missing.discard(index)
            if not missing:
                status = (
                    ExpectationStatus.FULFILLED.value
                    if status == _OPEN
                    else ExpectationStatus.LATE_FULFILLED.value
                )
            changed[inst.instance] = (inst, status, missing, not missing)
            hit = True
        if not hit and not instances:  # early for a trigger to come (none was before)
            decision.ops.append(NewArrival(batch, exp.name, key, f"then:{index}", seq, s.at))
    for inst, status, missing, closes in changed.values():
        decision.ops.append(
            UpdateExpectation(
                batch,
                exp.name,
                inst.instance,
                status,
                dumps(sorted(missing)),
                inst.status.value,
                closed_at=now if closes else None,
                closed_by=seq if closes else None,
            )
        )
        if status == ExpectationStatus.LATE_FULFILLED.value:
            more = {"fulfilled_by": s.event.id}
            _publish(engine, exp, inst, RECOVERED, decision, batch, now, more)
    if s.triggers:
        ident = instance_id(s.event)
        if all(inst.instance != ident for inst in instances):
            decision.ops.append(_open(exp, s, ident, arrivals, now))
    return decision


def _open(
    exp: Expectation, s: Seen, ident: str, arrivals: Sequence[Arrival], now: float
) -> NewExpectation:
    """The new instance a trigger opens, counting what arrived up to ``early`` before it."""
    missing = set(range(len(exp.then)))
    status = _OPEN
    closed_by = None
    since = s.at - exp.early_s
    for arrival in arrivals:
        if arrival.at < since:
            continue
        if arrival.role == "unless":
            status, closed_by = ExpectationStatus.CANCELLED.value, arrival.seq
            break
        index = int(arrival.role.removeprefix("then:"))
        if index in missing:
            missing.discard(index)
            closed_by = arrival.seq
    if status == _OPEN and not missing:
        status = ExpectationStatus.FULFILLED.value
    closed = status != _OPEN
    return NewExpectation(
        s.batch,
        exp.name,
        ident,
        s.key,
        status,
        dumps(sorted(missing)),
        s.seq,
        s.event.correlationid,
        s.at,
        s.at + exp.within_s,
        closed_at=now if closed else None,
        closed_by=closed_by if closed else None,
        awaited=dumps([p.describe() for p in exp.then]),
    )


def event_id(kind: str, exp: str, instance: str) -> str:
    """The deterministic id of an expectation's ``kind`` event for ``instance``."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\x00{exp}\x00{instance}"))


def _trigger(inst: ExpectationInstance) -> dict[str, Any]:
    source, _, trigger_id = inst.instance.partition(" ")
    return {"source": source, "id": trigger_id, "seq": inst.trigger_seq}


def _payload(
    exp: Expectation, inst: ExpectationInstance, trigger: dict[str, Any], **more: Any
) -> dict[str, Any]:
    return {
        "expectation": exp.name,
        "key": inst.key,
        "instance": inst.instance,
        "trigger": trigger,
        "missing": [exp.then[i].describe() for i in inst.missing if i < len(exp.then)],
        "opened_at": format_time(inst.opened_at),
        "deadline": format_time(inst.deadline),
        **more,
    }


def _publish(
    engine: Engine,
    exp: Expectation,
    inst: ExpectationInstance,
    type: str,
    decision: Decision,
    batch: str,
    now: float,
    more: dict[str, Any],
    trigger: StoredEvent | None = None,
) -> Event:
    """The event ``type`` about ``inst``: with its trigger event whole when ``trigger`` is
    read (then it also continues the trigger's trace), else the trigger's source, id
    and seq."""
    about = _trigger(inst)
    traceparent = None
    if trigger is not None:
        about = {**trigger.event.to_dict(), "seq": trigger.seq}
        if engine.tracer is not None:
            traceparent = tracing.producer(engine.tracer, type, trigger.event.traceparent)
    event = build_event(
        type,
        _payload(exp, inst, about, **more),
        source=exp.source,
        id=event_id(type, exp.name, inst.instance),
        subject=inst.key,
        correlationid=inst.correlation_id,
        causationid=_trigger(inst)["id"],
        traceparent=traceparent,
        recorded_at=now,
        producer=engine.tracer,
    )
    obj, payload = encode_event(event, engine.max_payload_bytes)
    op = new_event_op(
        event, obj, payload, engine.router, now, batch_key=batch, owner_of=engine.consumer.owner_of
    )
    decision.ops.append(op)
    decision.published.append((op, event, obj))
    return event


def violation(
    engine: Engine,
    exp: Expectation,
    inst: ExpectationInstance,
    trigger: StoredEvent | None = None,
) -> Decision:
    """The writes of ``inst``'s deadline passing: the status, the event (carrying
    ``trigger``, the trigger event, unless pruned), the run: one batch key for all (the
    run's id when there is a run), so they commit together."""
    now = engine.clock.time()
    violation_id = event_id(VIOLATED, exp.name, inst.instance)
    if exp.start is not None:
        batch = started_run_id(exp.start, exp.source, violation_id)
    else:
        batch = _batch_key(exp.name, inst.instance)
    decision = Decision([], [])
    decision.ops.append(
        UpdateExpectation(
            batch,
            exp.name,
            inst.instance,
            _VIOLATED,
            dumps(list(inst.missing)),
            _OPEN,
            violation_id=violation_id,
        )
    )
    started = {"run_id": batch if exp.start is not None else None}
    event = _publish(engine, exp, inst, VIOLATED, decision, batch, now, started, trigger)
    if exp.start is not None:
        workflow = engine.registry.workflows[exp.start]
        decision.ops.append(
            NewRun(
                batch,
                exp.start,
                RunStatus.PENDING.value,
                dumps([decision.published[-1][2]]),
                now,
                None if workflow.timeout_s is None else now + workflow.timeout_s,
                None,
                correlation_id=event.correlationid or event.id,
                traceparent=event.traceparent,
            )
        )
    return decision


def started_run_id(workflow: str, source: str, violation_id: str) -> str:
    """The id of the run a violation starts: the same however often it is decided."""
    return f"{workflow}:{source}:{violation_id}"[:255]


DEADLINE_HOLD_S = 5.0
"""How long a worker holds the instances whose deadline it fires: enough to decide and
commit; if it dies first, another takes them once the hold ends."""


async def fire_due(engine: Engine) -> int:
    """Violate the open instances of this app's expectations whose deadline passed (at
    most ``DUE_BATCH``); return how many were due. Each is its own batch, guarded by the
    instance still being open: a worker that loses the race (another violated it, or the
    awaited event came) writes nothing and moves on."""
    names = list(engine.registry.expectations)
    if not names:
        return 0
    fired = 0
    now = engine.clock.time()
    first = await engine.store.next_expectation_due(names)
    if first is None or first > now:
        return 0  # one read through the partial index: nothing to claim
    # Claimed, not just read: workers firing deadlines at once take different instances.
    due = await engine.store.claim_due_expectations(names, now, DUE_BATCH, now + DEADLINE_HOLD_S)
    pending = []
    for inst in due:
        trigger = await engine.store.get_event(inst.trigger_seq)  # None: pruned
        exp = engine.registry.expectations[inst.expectation]
        decision = violation(engine, exp, inst, trigger)
        pending.append((inst, decision, engine.journal.submit(*decision.ops)))
    for inst, decision, batch in pending:
        outcome = await batch
        error = outcome.failed.get(decision.ops[0].run_id)
        if error is not None:
            log.debug("deadline of %s %r not applied: %s", inst.expectation, inst.instance, error)
            continue
        fired += 1
        log.warning(
            "expectation %r violated for key %r: %s did not arrive by %s (trigger %s)",
            inst.expectation,
            inst.key,
            ", ".join(_missing(engine, inst)),
            format_time(inst.deadline),
            inst.instance,
        )
        for op, event, obj in decision.published:
            engine.consumer.take(op, event, obj)
    if fired and any(engine.registry.expectations[i.expectation].start for i in due):
        engine.poke()  # claim the runs the violations started
    return len(due)


def _missing(engine: Engine, inst: ExpectationInstance) -> list[str]:
    exp = engine.registry.expectations[inst.expectation]
    return [exp.then[i].describe() for i in inst.missing if i < len(exp.then)]
