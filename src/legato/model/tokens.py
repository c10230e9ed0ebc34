"""API tokens: who may call the HTTP API and the console, and what they may do.

A token is a random secret shown once, when it is created; the database keeps only its
SHA-256 digest, its name (what operator actions record as who did them) and its scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Scope(StrEnum):
    """What a token may do; each scope allows what the ones before it allow."""

    READ = "read"
    """See runs, history, tasks, events, flows, expectations, alerts and workers."""
    OPERATE = "operate"
    """Also start, signal, cancel, retry, resume and restart runs, complete tasks,
    publish events and redrive dead letters."""
    ADMIN = "admin"
    """Also manage tokens."""

    def allows(self, needed: Scope) -> bool:
        """True if a token of this scope may do what ``needed`` guards."""
        order = list(Scope)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: never its secret."""

    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
