"""Plain data: what a run, a history record and a retry policy *are*. No I/O, no asyncio."""

from legato.model import records
from legato.model.history import EventKind, HistoryEvent
from legato.model.ids import RunId
from legato.model.retry import Retry
from legato.model.runs import Run, RunStatus
from legato.model.waits import Signal, Task, TaskStatus

__all__ = [
    "EventKind",
    "HistoryEvent",
    "Retry",
    "Run",
    "RunId",
    "RunStatus",
    "Signal",
    "Task",
    "TaskStatus",
    "records",
]
