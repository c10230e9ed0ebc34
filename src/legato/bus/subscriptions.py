"""Subscriptions as an app defines them (``@app.on``, ``@app.workflow(on=...)``), and what a
handler may ask while it runs (``legato.delivery()``)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from legato.errors import DefinitionError, OutsideWorkflow
from legato.model.deliveries import SubscriptionKind
from legato.model.events import Event
from legato.model.patterns import Pattern, compile_pattern
from legato.model.retry import Retry
from legato.storage.base import NewSubscription

DEFAULT_DELIVERY_RETRY = Retry(
    max_attempts=5, initial_interval=timedelta(seconds=1), max_interval=timedelta(minutes=5)
)
"""A handler's retries unless ``@app.on(retry=...)`` says otherwise: five attempts over
about fifteen seconds, then a dead letter."""

TRIGGER_PREFIX = "workflow:"
"""A trigger's subscription name is this and the workflow's name."""

EXPECTATION_PREFIX = "expectation:"
"""An expectation's subscription name is this and the expectation's name."""

_RESERVED = (TRIGGER_PREFIX, EXPECTATION_PREFIX)

_ATTRIBUTE = re.compile(r"[a-z0-9]+")
_MAX_KEY = 255


def check_ordered_by(ordered_by: object) -> str | None:
    """Validate an ordering key path: an attribute (``"subject"``, ``"partitionkey"``, an
    extension) or a ``data`` path (``"data.order_id"``, ``"data.customer.id"``)."""
    if ordered_by is None:
        return None
    if not isinstance(ordered_by, str) or not ordered_by:
        raise DefinitionError(f"ordered_by names an attribute or a data path, got {ordered_by!r}")
    head, *rest = ordered_by.split(".")
    if head == "data":
        if not rest or not all(rest):
            raise DefinitionError(
                f"ordered_by={ordered_by!r}: a data path names a field, like 'data.order_id'"
            )
    elif rest or not _ATTRIBUTE.fullmatch(head) or head in ("data", "data_base64"):
        raise DefinitionError(
            f"ordered_by={ordered_by!r} is neither an event attribute (lower-case letters and "
            "digits, like 'subject' or 'partitionkey') nor a data path ('data.order_id')"
        )
    return ordered_by


def ordering_key(event: Mapping[str, Any], ordered_by: str | None) -> str | None:
    """The FIFO key of ``event`` (its structured-JSON dict) for a subscription ordered by
    ``ordered_by``; None when unordered or when the event has no such value."""
    if ordered_by is None:
        return None
    value: Any = event
    for part in ordered_by.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if value is None:
        return None
    key = value if isinstance(value, str) else orjson.dumps(value).decode()
    return key[:_MAX_KEY]


@dataclass(slots=True)
class Subscription:
    """One durable consumer: a handler (``@app.on``) or a workflow trigger."""

    name: str
    kind: SubscriptionKind
    pattern: Pattern
    retry: Retry
    ordered_by: str | None = None
    handler: Callable[[Event], Any] | None = None
    is_async: bool = False
    workflow: str | None = None  # the workflow a trigger starts
    expectation: str | None = None  # the expectation this subscription watches for
    timeout_s: float | None = None
    stored: NewSubscription = field(init=False)

    def __post_init__(self) -> None:
        self.stored = NewSubscription(
            self.name, self.kind.value, orjson.dumps(self.pattern.source), self.ordered_by
        )


def handler_subscription(
    fn: Callable[[Event], Any],
    pattern: str | Mapping[str, Any],
    *,
    name: str | None,
    retry: Retry | None,
    ordered_by: str | None,
    timeout: timedelta | None,
) -> Subscription:
    """The subscription ``@app.on`` defines (every argument checked)."""
    if not callable(fn):
        raise DefinitionError(f"@app.on decorates a function, got {fn!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise DefinitionError(f"retry must be a legato.Retry, got {retry!r}")
    chosen = name or getattr(fn, "__qualname__", None)
    if not isinstance(chosen, str) or not chosen or chosen.startswith(_RESERVED):
        raise DefinitionError(
            "a subscription name is a non-empty string not starting with "
            f"{' or '.join(map(repr, _RESERVED))}, got {chosen!r}"
        )
    timeout_s = None
    if timeout is not None:
        if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
            raise DefinitionError(f"timeout must be a positive timedelta, got {timeout!r}")
        timeout_s = timeout.total_seconds()
    return Subscription(
        chosen,
        SubscriptionKind.HANDLER,
        compile_pattern(pattern),
        retry or DEFAULT_DELIVERY_RETRY,
        check_ordered_by(ordered_by),
        fn,
        inspect.iscoroutinefunction(fn),
        timeout_s=timeout_s,
    )


def trigger_subscription(workflow: str, pattern: str | Mapping[str, Any]) -> Subscription:
    """The subscription of ``@app.workflow(on=pattern)``: one run per matching event."""
    return Subscription(
        TRIGGER_PREFIX + workflow,
        SubscriptionKind.TRIGGER,
        compile_pattern(pattern),
        DEFAULT_DELIVERY_RETRY,
        workflow=workflow,
    )


def triggered_run_id(workflow: str, event: Event) -> str:
    """The id of the run that ``event`` starts for a trigger of ``workflow``: the same for
    every delivery of the event, so a redelivery finds the run instead of starting another.
    """
    return f"{workflow}:{event.source}:{event.id}"[:255]


# -- inside a handler ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """What ``legato.delivery()`` tells a handler about the delivery it is handling."""

    subscription: str
    event: Event
    attempt: int
    """1 for the first call, 2 for the first retry, ..."""
    idempotency_key: str
    """Stable for this (subscription, event) pair across retries, redeliveries, redrives
    and replays: use it as the key of the handler's own writes so each happens once."""
    replay: bool = False
    """True when ``legato events replay`` delivers an archived event again."""


current_delivery: ContextVar[DeliveryInfo | None] = ContextVar("legato_delivery", default=None)


def delivery() -> DeliveryInfo:
    """The delivery a handler (``@app.on``) is handling: attempt number, idempotency key."""
    info = current_delivery.get()
    if info is None:
        raise OutsideWorkflow("legato.delivery() can only be called inside an @app.on handler")
    return info


def idempotency_key(subscription: str, event: Event) -> str:
    """The stable key of one subscription's delivery of one event."""
    return f"{subscription}:{event.source}:{event.id}"
