"""The bus as stored: events in the log, subscriptions, and each subscription's deliveries."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from legato.model.events import Event


class DeliveryStatus(enum.StrEnum):
    """Where one event stands for one subscription.

    ``pending`` (due, in flight, or waiting for its retry) → ``done`` | ``dead`` (out of
    attempts: a dead letter, until an operator redrives it back to ``pending``).
    """

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class SubscriptionKind(enum.StrEnum):
    """What a subscription does with an event: call a handler, start a workflow run, or
    watch an expectation (``app.expect``)."""

    HANDLER = "handler"
    TRIGGER = "trigger"
    EXPECTATION = "expectation"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in the log, with where it came from.

    ``seq`` is its position in this database's log (commit order on SQLite; on other
    databases only an identity). ``run_id`` and ``call_key`` name the run and the call (or
    step) that published it, None for an outside publisher. ``routed`` is how many
    subscriptions it was delivered to when it was published: 0 means unrouted (nobody
    listened), kept and listed rather than dropped. ``reply_types`` is set for a request
    (``legato.request``): the types of the replies its run awaits.
    """

    seq: int
    event: Event
    recorded_at: datetime
    routed: int
    run_id: str | None = None
    call_key: str | None = None
    reply_types: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One subscription's delivery of one event.

    ``attempts`` counts the handler calls that ended (a call cut short by a crash does not
    count); ``due_at`` is when a pending delivery is (next) due; ``error`` is the last
    failure ``{type, message, traceback, attempt}``, kept when a later attempt succeeds
    (None: it never failed); ``replay`` marks an archived event delivered
    again by ``legato events replay``; ``redriven_at`` and ``redriven_by`` say when a dead
    letter was last redriven, and by whom.
    """

    subscription: str
    seq: int
    status: DeliveryStatus
    attempts: int
    due_at: datetime | None
    updated_at: datetime
    error: dict[str, Any] | None = None
    owner: str | None = None
    ordering_key: str | None = None
    replay: bool = False
    redriven_at: datetime | None = None  # the last redrive, if it was redriven
    redriven_by: str | None = None  # who redrove it then, when known


@dataclass(frozen=True, slots=True)
class RedrivePreview:
    """What redriving a subscription's dead letters would take: ``count`` of them (the
    first event ids in ``event_ids``); ``confirm`` redrives exactly those."""

    subscription: str
    count: int
    event_ids: list[str]
    confirm: str


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A subscription as registered on the database (by any app that serves it)."""

    name: str
    kind: SubscriptionKind
    pattern: Any  # as given: a type pattern (str) or a content filter (JSON object)
    ordered_by: str | None
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery a worker claimed: what it needs to call the handler."""

    subscription: str
    seq: int
    attempts: int
    replay: bool
    event: bytes  # the event's structured JSON, decoded by the bus (once per event)
