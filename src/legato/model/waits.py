"""What runs wait for: signals sent to them, and human tasks in the inbox."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Signal:
    """A message sent to a run; kept until the run consumes it (each exactly once)."""

    id: int
    run_id: str
    name: str
    payload: Any
    sent_at: datetime


class TaskStatus(enum.StrEnum):
    """Where a human task is."""

    OPEN = "open"
    COMPLETED = "completed"
    EXPIRED = "expired"  # its timeout passed; the workflow took another path
    CANCELLED = "cancelled"  # its run ended without it


@dataclass(frozen=True, slots=True)
class Task:
    """A human task: a question a workflow put in the inbox, and its answer."""

    task_id: str
    run_id: str
    name: str
    data: Any
    assignee: str | None
    form: dict[str, Any] | None
    status: TaskStatus
    response: Any
    created_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None = None  # who answered it, when known


TASK_SIGNAL_PREFIX = "__task__:"
"""A completed task's response reaches its run as a signal named prefix + task id."""

CHILD_SIGNAL_PREFIX = "__child__:"
"""A child run's outcome reaches its parent as a signal named prefix + child run id."""

REPLY_SIGNAL_PREFIX = "__reply__:"
"""A reply to ``legato.request`` reaches its run as a signal named prefix + request id;
its payload is the reply event's structured JSON."""
