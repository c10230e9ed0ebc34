"""``FakeClock``: time that moves only when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock for tests: timers, backoff and timeouts fire when you ``advance()`` it.

    >>> clock = FakeClock()
    >>> app = legato.App("test", "memory://", clock=clock)       # doctest: +SKIP
    >>> await clock.advance(timedelta(days=3))                   # doctest: +SKIP
    """

    def __init__(self, start: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> None:
        self._now = start.timestamp()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        """Now, as Unix seconds."""
        return self._now

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        """Run ``callback`` once the clock reaches ``when``."""
        timer = _Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    async def sleep_until(self, when: float) -> None:
        """Return once the clock reaches ``when``."""
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(when, wake)
        try:
            await future
        finally:
            timer.cancel()

    @property
    def pending(self) -> list[datetime]:
        """Due times of the timers still waiting, soonest first."""
        return [datetime.fromtimestamp(w, UTC) for w, _, t in sorted(self._timers)
                if not t.cancelled]

    async def settle(self, rounds: int = 50) -> None:
        """Let woken tasks run until they wait again (yields to the loop ``rounds`` times)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, delta: timedelta | float) -> None:
        """Move time forward, firing due timers in order and letting woken code run."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()
