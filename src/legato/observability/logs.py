"""Log records that say which run, step, event and trace they are about.

``install()`` (done when an engine starts) wraps the process's log record factory so that
every record made while Legato runs something carries these attributes, whichever
logger made it — Legato's, or the user's own ``logging`` inside a step or a handler:

``run_id``, ``workflow``, ``step``, ``attempt``, ``event_id``, ``correlation_id``,
``trace_id`` (the active OpenTelemetry span's, when the application traces).

Each is None where it does not apply, so a ``Formatter`` or ``Filter`` may always read
them. ``JsonFormatter`` writes a record as one JSON object per line with the fields that
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
        for name, value in context_fields().items():
            if not hasattr(record, name):  # an explicit extra= wins
                setattr(record, name, value)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


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
