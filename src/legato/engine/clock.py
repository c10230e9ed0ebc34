"""Where the engine reads time: the system clock, or a fake one in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Do not run the callback."""


class Clock(Protocol):
    """Time as the engine sees it: timers, backoff and timeouts all go through here."""

    def time(self) -> float:
        """Now, as Unix seconds."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the event loop at Unix time ``when``."""

    async def sleep_until(self, when: float) -> None:
        """Return at Unix time ``when`` (at once if it is past)."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Now, as Unix seconds."""
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` at ``when`` via the running loop."""
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)

    async def sleep_until(self, when: float) -> None:
        """Sleep until ``when``."""
        delay = when - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
