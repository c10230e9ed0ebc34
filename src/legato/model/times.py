"""Times as callers give them: aware datetimes (or Unix seconds) to the floats stores keep."""

from __future__ import annotations

from datetime import UTC, datetime

# errors.py imports nothing of ours: the one module model/ may lean on.
from legato.errors import DefinitionError


def timestamp_of(when: datetime | float | None, what: str) -> float | None:
    """``when`` as Unix seconds (None stays None); ``DefinitionError`` for a naive
    datetime or anything that is not a time. ``what`` names it in the message."""
    if when is None:
        return None
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise DefinitionError(f"{what} must be an aware datetime, got {when!r}")
        return when.timestamp()
    if isinstance(when, int | float) and not isinstance(when, bool):
        return float(when)
    raise DefinitionError(f"{what} must be a datetime, got {when!r}")


def as_utc(when: datetime | None) -> datetime | None:
    """``when``, a time without an offset taken as UTC (what the CLI and the HTTP API do
    with ``--since 2026-12-01``)."""
    return when if when is None or when.tzinfo is not None else when.replace(tzinfo=UTC)
