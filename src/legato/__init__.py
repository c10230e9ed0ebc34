"""Legato: durable business workflows for Python.

Orchestrate the critical path as a durable workflow (steps, retries, sagas, recovery);
everything else reacts to the facts it publishes.
"""

from legato import errors
from legato.app import App
from legato.client import AsyncClient, Client, RunHandle
from legato.engine.context import (
    child,
    human_task,
    now,
    random,
    run_id,
    sleep,
    sleep_until,
    step_key,
    uuid,
    wait_for_signal,
)
from legato.model import Retry, RunStatus, Task, TaskStatus
from legato.model.description import RunDescription

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "Client",
    "Retry",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "Task",
    "TaskStatus",
    "child",
    "errors",
    "human_task",
    "now",
    "random",
    "run_id",
    "sleep",
    "sleep_until",
    "step_key",
    "uuid",
    "wait_for_signal",
]
