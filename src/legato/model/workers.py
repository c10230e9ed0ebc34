"""Worker processes, as the database knows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_LEASE = timedelta(seconds=15)
"""How long a worker may go without a heartbeat before others presume it dead."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process that has registered with the database."""

    worker_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    # What it serves and its lease; None for a worker registered by a version that did
    # not record them.
    workflows: tuple[str, ...] | None = None
    lease: timedelta | None = None

    def lease_or(self, default: timedelta = DEFAULT_LEASE) -> timedelta:
        """Its own lease, or ``default`` when it did not record one."""
        return default if self.lease is None else self.lease

    def is_presumed_dead(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> bool:
        """True when its last heartbeat is older than its lease (``lease`` if it recorded
        none): others then take its runs."""
        return now - self.heartbeat_at > self.lease_or(lease)
