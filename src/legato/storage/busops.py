"""The write ops of the event bus, expectations and alerts (part of the ``Store`` port).

``legato.storage.base`` re-exports them beside the run ops: a batch mixes both, and
``Write`` names them all. Like every op, each is a record of what to write; what an
event, a delivery or an instance *means* is decided in ``legato.bus``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class NewDelivery:
    """One subscription's delivery of a ``NewEvent``: part of that op, not an op itself.

    ``owner`` set: the delivery is claimed by that worker as it is written (the publisher
    serves the subscription and delivers it at once).
    """

    subscription: str
    due_at: float
    ordering_key: str | None = None
    owner: str | None = None


@dataclass(slots=True)
class NewEvent:
    """Insert an event into the log unless one with its ``(source, event_id)`` exists, and
    with it its ``deliveries``; a duplicate writes nothing, its deliveries neither.

    ``run_id`` is the batch key, as for every op: the run that published it, or a key of
    the publish's own. ``published_by`` is the run that published it (None: an outside
    publisher) and ``call_key`` the call (or step) that did. ``registry`` guards the
    fan-out: the version of the
    subscription registry the deliveries were chosen from. If the registry has another
    version when the batch applies, the batch raises ``ConcurrencyConflict`` and writes
    nothing (the publisher reads the registry again and chooses again).

    ``seq`` is an output: ``write`` sets it to the event's position in the log, and
    leaves it None for a duplicate.
    """

    run_id: str
    source: str
    event_id: str
    type: str
    subject: str | None
    correlation_id: str | None
    causation_id: str | None
    event: bytes  # the CloudEvent in structured JSON
    recorded_at: float
    deliveries: tuple[NewDelivery, ...] = ()
    published_by: str | None = None
    call_key: str | None = None
    reply_types: bytes | None = None  # JSON list: a request awaiting these reply types
    registry: int | None = None
    seq: int | None = None


@dataclass(slots=True)
class UpdateDelivery:
    """Change one delivery (subscription, event ``seq``) while it matches the conditions.

    Conditions: its owner is ``if_owner`` (a worker settles only what it still holds); its
    status is ``if_status``. Changes: ``status``, ``attempts``, ``due_at``, ``error``
    (None keeps the one recorded: the last failure stays visible after a retry succeeds,
    or a redrive), and the owner is let go. A ``redrive`` also records when, and who
    (``redriven_by``, None: unknown). ``run_id`` is the batch key.

    ``required``: a delivery that does not match (or does not exist) makes the batch raise
    ``ConcurrencyConflict`` and write nothing; with ``required=False`` the op then changes
    nothing.
    """

    run_id: str
    subscription: str
    seq: int
    status: str
    attempts: int
    due_at: float | None
    error: bytes | None
    at: float
    if_owner: str | None = None
    if_status: str | None = None
    required: bool = True
    redrive: bool = False
    redriven_by: str | None = None


@dataclass(slots=True)
class NewExpectation:
    """Open an expectation instance unless one with its ``(expectation, instance)``
    exists (a duplicate trigger opens nothing). ``missing`` is a JSON list of indexes; an
    instance may be written already closed (``status`` not open: what it awaited, or its
    ``unless``, came before it), then ``closed_at`` and ``closed_by`` say when and what.
    ``run_id`` is the batch key."""

    run_id: str
    expectation: str
    instance: str
    key: str
    status: str
    missing: bytes
    trigger_seq: int
    correlation_id: str | None
    opened_at: float
    deadline_at: float
    closed_at: float | None = None
    closed_by: int | None = None
    awaited: bytes = b"[]"  # JSON list: the then patterns as text


@dataclass(slots=True)
class UpdateExpectation:
    """Change an instance while its status is ``if_status``: its ``status`` and
    ``missing``; ``closed_at``, ``closed_by`` and ``violation_id`` when given (None keeps
    what is recorded). An instance that is not as expected (or unknown) makes the batch
    raise ``ConcurrencyConflict``: a deadline and the awaited event raced, and the loser
    decides again on what the winner wrote."""

    run_id: str
    expectation: str
    instance: str
    status: str
    missing: bytes
    if_status: str
    closed_at: float | None = None
    closed_by: int | None = None
    violation_id: str | None = None


@dataclass(slots=True)
class NewArrival:
    """Record an awaited (or ``unless``) event seen for a key, unless recorded (same
    expectation, key, role and event ``seq``): a trigger that comes later counts it."""

    run_id: str
    expectation: str
    key: str
    role: str
    seq: int
    at: float


@dataclass(slots=True)
class RaiseAlert:
    """Raise alert ``alert_id``: insert it, or raise again one that is resolved and was
    raised ``times - 1`` times so far. An alert raised already, or raised again by
    someone else meanwhile, makes the batch raise ``ConcurrencyConflict``: another worker
    raised it (and published its event) first."""

    run_id: str
    alert_id: str
    kind: str
    subject: str
    summary: str
    details: bytes
    at: float
    times: int
    event_id: str


@dataclass(slots=True)
class ResolveAlert:
    """Resolve alert ``alert_id`` while it is raised for the ``times``-th time; otherwise
    the batch raises ``ConcurrencyConflict`` (someone resolved it first)."""

    run_id: str
    alert_id: str
    at: float
    times: int
    event_id: str


@dataclass(slots=True)
class ReplayDelivery:
    """Deliver event ``seq`` to ``subscription`` again, marked as a replay: a new pending
    delivery, or one that was done or dead made pending again (attempts from 0). A
    delivery still pending is left alone."""

    run_id: str
    subscription: str
    seq: int
    at: float
    ordering_key: str | None = None


@dataclass(slots=True)
class NewSubscription:
    """A subscription as ``register_subscriptions`` records it (``pattern`` is JSON)."""

    name: str
    kind: str
    pattern: bytes
    ordered_by: str | None
