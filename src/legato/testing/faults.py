"""``Faults``: make named steps fail, raise a given error, or hang — in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legato.observability.hooks import Hooks


class InjectedFault(Exception):
    """The default error ``Faults.fail`` raises."""


@dataclass
class _Plan:
    replacement: Callable[..., Any]
    remaining: int
    attempts: list[int] = field(default_factory=list)


class Faults(Hooks):
    """Fault injection for tests: pass to ``legato.App(..., hooks=[faults])``.

    >>> faults = Faults().fail("charge", times=2).hang("ship")
    >>> app = legato.App("test", "memory://", hooks=[faults])    # doctest: +SKIP

    A planned fault replaces the step's body for that many attempts (retries, timeouts
    and compensation then behave as they would for a real failure); after that the
    step runs normally. Compensations are named ``"<step>.compensate"``.
    """

    def __init__(self) -> None:
        self._plans: dict[str, _Plan] = {}

    def fail(
        self, step: str, times: int = 1, error: BaseException | type[BaseException] | None = None
    ) -> Faults:
        """Make the next ``times`` attempts of ``step`` raise ``error``."""

        def make() -> BaseException:
            if error is None:
                return InjectedFault(f"injected failure of {step!r}")
            return error() if isinstance(error, type) else error

        async def raise_error(*args: Any, **kwargs: Any) -> Any:
            raise make()

        self._plans[step] = _Plan(raise_error, times)
        return self

    def hang(self, step: str, times: int = 1) -> Faults:
        """Make the next ``times`` attempts of ``step`` never return (until cancelled)."""

        async def hang_forever(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()

        self._plans[step] = _Plan(hang_forever, times)
        return self

    def injected(self, step: str) -> list[int]:
        """The attempt numbers of ``step`` that got a fault so far."""
        plan = self._plans.get(step)
        return [] if plan is None else list(plan.attempts)

    def before_step_attempt(
        self, run_id: str, step: str, attempt: int
    ) -> Callable[..., Any] | None:
        """Hand out the planned fault while any is left."""
        plan = self._plans.get(step)
        if plan is None or plan.remaining <= 0:
            return None
        plan.remaining -= 1
        plan.attempts.append(attempt)
        return plan.replacement
