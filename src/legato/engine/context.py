"""What workflow and step code may ask for: ``legato.now()``, ``legato.step_key()``, ...

The engine sets context variables around workflow tasks and step attempts; these
functions read them, so user code needs no handle on the engine.
"""

from __future__ import annotations

import uuid as _uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from legato.errors import LegatoError

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution

current_execution: ContextVar[RunExecution | None] = ContextVar("legato_execution", default=None)
current_step_key: ContextVar[str | None] = ContextVar("legato_step_key", default=None)


class OutsideWorkflow(LegatoError, RuntimeError):
    """A workflow-only function was called outside a workflow (or inside a step)."""


def _execution(what: str) -> RunExecution:
    execution = current_execution.get()
    if execution is None or current_step_key.get() is not None:
        raise OutsideWorkflow(
            f"legato.{what}() can only be called from workflow code (not from a step or "
            "outside a run)"
        )
    return execution


def now() -> datetime:
    """The current time, recorded so replay sees the same value (workflow code only)."""
    ts = _execution("now").record_value("now", None)
    assert isinstance(ts, float)
    return datetime.fromtimestamp(ts, UTC)


def uuid() -> _uuid.UUID:
    """A random UUID, recorded so replay sees the same value (workflow code only)."""
    value = _execution("uuid").record_value("uuid", None)
    return _uuid.UUID(str(value))


def random() -> float:
    """A random float in [0, 1), recorded so replay sees the same value (workflow code only)."""
    value = _execution("random").record_value("random", None)
    assert isinstance(value, float)
    return value


def run_id() -> str:
    """The id of the run this workflow or step code executes in."""
    execution = current_execution.get()
    if execution is None:
        raise OutsideWorkflow("legato.run_id() can only be called inside a run")
    return execution.run_id


def step_key() -> str:
    """A key unique per (run, step call) and stable across retries, crashes and recovery.

    Pass it to the service as an idempotency key so the step's effect happens once even
    though the step itself may run more than once.
    """
    key = current_step_key.get()
    if key is None:
        raise OutsideWorkflow("legato.step_key() can only be called inside a step")
    return key


if TYPE_CHECKING:
    from legato.engine.execution import _Branch

current_branch: ContextVar[_Branch | None] = ContextVar("legato_branch", default=None)
