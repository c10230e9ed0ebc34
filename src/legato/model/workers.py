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
    # The workflow names it serves; None for a worker registered by a version that did
    # not record them.
    workflows: tuple[str, ...] | None = None

    def is_presumed_dead(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> bool:
        """True when its last heartbeat is older than ``lease``: others take its runs."""
        return now - self.heartbeat_at > lease
