"""OpenTelemetry tracing, when the application traces (``pip install legato[otel]``).

Legato uses the tracer provider given to ``legato.App(tracer_provider=...)``, else the
global one the application set before the app started; it never sets one. With none (or
without ``opentelemetry-api`` installed) nothing is traced. The shape of a trace:

- a run is created with a trace context (the caller's span, or a ``start <workflow>``
  span when there is none), stored with the run (``traceparent``) so that every
  execution of it, in any process and after any crash, continues the same trace;
- each execution of a run is a span ``run <workflow>`` (its child), and each step
  attempt and compensation attempt a child span ``step <name>`` of it;
- each publish is a ``publish <type>`` span (kind PRODUCER) whose context the event
  carries as ``traceparent``;
- each delivery is a ``process <type>`` span (kind CONSUMER), child of the event's
  context and linked to it, after the OpenTelemetry messaging conventions; a run started
  by an event continues the event's trace.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legato.model.events import Event

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_api: Any = None  # opentelemetry.trace once imported; False if not installed
_SYSTEM = "legato"

GLOBAL: Any = object()
"""For ``build_event(producer=...)``: trace with the global provider, if one is set."""


def _trace() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
        except ImportError:  # pragma: no cover - without the otel extra
            _api = False
        else:
            _api = trace
    return _api or None


def tracer(provider: Any = None) -> Any:
    """Legato's tracer from ``provider``, else from the application's global provider;
    None when nothing is traced."""
    if provider is not None:
        return provider.get_tracer("legato")
    trace = _trace()
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None  # the application set no provider: trace nothing
    return provider.get_tracer("legato")


def _format(context: Any) -> str | None:
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _parent(traceparent: str | None) -> Any:
    """The OpenTelemetry context of a stored ``traceparent`` (None: none)."""
    trace = _trace()
    match = None if traceparent is None else _TRACEPARENT.fullmatch(traceparent)
    if trace is None or match is None:
        return None
    span_context = trace.SpanContext(
        int(match[1], 16), int(match[2], 16), True, trace.TraceFlags(int(match[3], 16))
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def current() -> str | None:
    """The active span's context as a ``traceparent``, or None."""
    trace = _trace()
    if trace is None:
        return None
    return _format(trace.get_current_span().get_span_context())


def new_run(chosen: Any, workflow: str) -> str | None:
    """The trace context a new run of ``workflow`` keeps: the caller's span's, else a
    ``start <workflow>`` span's (ended at once), made with the tracer ``chosen``."""
    found = current()
    if found is not None:
        return found
    span = chosen.start_span(f"start {workflow}", attributes={"legato.workflow": workflow})
    span.end()
    return _format(span.get_span_context())


@contextlib.contextmanager
def run_span(chosen: Any, run_id: str, workflow: str, traceparent: str | None) -> Iterator[None]:
    """One execution of a run, as the current span while it goes."""
    with chosen.start_as_current_span(
        f"run {workflow}",
        context=_parent(traceparent),
        attributes={"legato.run_id": run_id, "legato.workflow": workflow},
    ):
        yield


@contextlib.contextmanager
def step_span(chosen: Any, run_id: str, step: str, attempt: int) -> Iterator[None]:
    """One attempt of a step (or a compensation), as the current span while it runs."""
    with chosen.start_as_current_span(
        f"step {step}",
        attributes={"legato.run_id": run_id, "legato.step": step, "legato.attempt": attempt},
    ):
        yield


def producer(chosen: Any, type: str, parent: str | None = None) -> str | None:
    """A ``publish <type>`` span (ended at once) under the current span (or ``parent``);
    its context, for the event's ``traceparent``."""
    trace = _trace()
    span = chosen.start_span(
        f"publish {type}",
        context=_parent(parent) if parent is not None else None,
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.destination.name": type,
        },
    )
    span.end()
    return _format(span.get_span_context())


@contextlib.contextmanager
def consumer_span(chosen: Any, subscription: str, event: Event, attempt: int) -> Iterator[None]:
    """One delivery of ``event`` to ``subscription``, as the current span while its
    handler runs: a child of the event's context, linked to it."""
    trace = _trace()
    parent = _parent(event.traceparent)
    links = []
    if parent is not None:
        links.append(trace.Link(trace.get_current_span(parent).get_span_context()))
    with chosen.start_as_current_span(
        f"process {event.type}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": event.type,
            "messaging.consumer.group.name": subscription,
            "messaging.message.id": event.id,
            "legato.delivery.attempt": attempt,
        },
    ):
        yield
