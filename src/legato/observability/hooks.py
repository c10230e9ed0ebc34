"""``Hooks``: no-op ``before_*`` / ``after_*`` pairs the engine calls.

Subclass and pass instances to ``legato.App(..., hooks=[...])``. The engine has no
``if tracing_enabled``: whatever watches it does so here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from legato.storage.base import Write


class Hooks:
    """Called by the engine at fixed points; every method is a no-op here."""

    def attach(self, engine: Any) -> None:
        """Once, when an engine starts with this hook (``legato.engine.worker.Engine``:
        what a hook may read, such as the workflow a live run belongs to)."""

    def before_step_attempt(
        self, run_id: str, step: str, attempt: int
    ) -> Callable[..., Any] | None:
        """Before each attempt of a step (and of a compensation, named ``step.compensate``).

        Return a callable to run *instead of* the step for this attempt (fault
        injection does), or None to run the step.
        """
        return None

    def after_step_attempt(
        self, run_id: str, step: str, attempt: int, error: BaseException | None
    ) -> None:
        """After each attempt, with the error it raised (None if it succeeded)."""

    def after_delivery(
        self, subscription: str, event: Any, attempt: int, error: BaseException | None
    ) -> None:
        """After each call of a subscription's handler with ``event`` (a ``legato.Event``),
        with the error it raised (None if it succeeded)."""

    def before_commit(self, writes: Sequence[Write]) -> None:
        """Before a batch of writes goes to the database (crash tests kill here)."""

    def after_commit(self, writes: Sequence[Write]) -> None:
        """After a batch of writes is durable (history records, run updates, ...)."""
