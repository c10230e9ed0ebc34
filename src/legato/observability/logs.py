"""Log records that say which run, step, event and trace they are about.

The fields: ``run_id``, ``workflow``, ``step``, ``attempt``, ``event_id``,
``correlation_id``, ``trace_id`` (the active OpenTelemetry span's, when the application
traces); each None where it does not apply.

- ``install()`` (done when an engine starts) wraps the process's log record factory so
  that every record of Legato's own loggers (``legato.*``) carries them.
- ``ContextFilter`` gives them to every record a handler sees, the application's own
  ``logging`` inside a step or a handler included; an ``extra=`` of the same name wins.
  ``legato worker`` puts it on its handler; an app embedding Legato adds it to its own.
- ``JsonFormatter`` writes a record as one JSON object per line with the fields that
  apply (``legato worker --log-format json``).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from legato.bus.subscriptions import current_delivery
from legato.engine.context import current_attempt, current_execution

FIELDS = ("run_id", "workflow", "step", "attempt", "event_id", "correlation_id", "trace_id")
"""The attributes every log record gets (None where they do not apply)."""

_installed = False


def context_fields() -> dict[str, Any]:
    """The fields of the run, step attempt and delivery running in this context."""
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    execution = current_execution.get()
    if execution is not None:
        fields["run_id"] = execution.run_id
        fields["workflow"] = execution.workflow.name
        fields["correlation_id"] = execution.correlation_id
    attempt = current_attempt.get()
    if attempt is not None:
        fields["step"], fields["attempt"] = attempt
    delivery = current_delivery.get()
    if delivery is not None:
        fields["event_id"] = delivery.event.id
        fields["correlation_id"] = delivery.event.correlationid
        fields["attempt"] = delivery.attempt
    trace = sys.modules.get("opentelemetry.trace")  # only when the application traces
    if trace is not None:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            fields["trace_id"] = format(span.trace_id, "032x")
    return fields


def install() -> None:
    """Wrap the log record factory (once; the one in place stays in the chain)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        # Legato's own records only: Legato passes no extra= of these names, while a
        # user's extra= must not collide with a field set before it (makeRecord raises).
        name = record.name
        if name == "legato" or name.startswith("legato."):
            record.__dict__.update(context_fields())
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class ContextFilter(logging.Filter):
    """Give each record the fields of the run, step and delivery it was made in (those it
    does not have already: an ``extra=`` wins). Put it on a handler::

        handler.addFilter(legato.observability.logs.ContextFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the fields that apply
    (and the exception's traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()
