"""``FakeClock``: time that moves only when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Watcher(Protocol):
    """Something with work of its own that ``settle()`` must wait for (an engine)."""

    def is_idle(self) -> bool:
        """True when it has nothing to do until time moves or something arrives."""

    async def wait_idle(self) -> None:
        """Return once idle (or once it has made progress worth re-checking)."""

    def poke(self) -> None:
        """Time moved: look for due work now."""

    async def next_wake(self) -> float | None:
        """The earliest time it has work due (runs parked in a database), or None."""


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
        self._watchers: list[Watcher] = []

    def time(self) -> float:
        """Now, as Unix seconds."""
        return self._now

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        """Run ``callback`` once the clock reaches ``when`` (soon, if it already has)."""
        timer = _Timer(when, callback)
        if when <= self._now:
            # Like the real clock: a past time fires on the next loop turn, not at the
            # next advance().
            asyncio.get_running_loop().call_soon(lambda: timer.cancelled or timer.callback())
            return timer
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
        return [
            datetime.fromtimestamp(w, UTC) for w, _, t in sorted(self._timers) if not t.cancelled
        ]

    def watch(self, watcher: Watcher) -> None:
        """Have ``settle()`` wait for ``watcher`` too (engines on this clock call this)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        """Stop waiting for ``watcher``."""
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    async def settle(self, rounds: int = 10_000, limit: float = 10.0) -> None:
        """Let woken code run until everything waits again; no time passes.

        Quiet means: every watching engine is idle (records committed, no claim pass
        pending, deliveries handled, and what they published delivered too) and the event
        loop has had nothing ready for a few turns in a row. A ``def`` step or handler runs
        on a thread: it is waited for up to a second of real time; one still running then
        is taken to wait on something outside the engine (the test itself), and is not
        waited for. Gives up quietly after ``rounds`` loop turns or ``limit`` real seconds.
        """
        loop = asyncio.get_running_loop()
        quiet = 0
        deadline = loop.time() + limit
        for _ in range(rounds):
            if loop.time() > deadline:
                return
            await asyncio.sleep(0)
            busy = [w for w in self._watchers if not w.is_idle()]
            if busy:
                quiet = 0
                for watcher in busy:
                    await watcher.wait_idle()
                continue
            # CPython's loop keeps ready callbacks in ``_ready``; other loops: count turns.
            ready = getattr(loop, "_ready", ())
            quiet = 0 if len(ready) else quiet + 1
            if quiet >= 3:
                return

    async def advance(self, delta: timedelta | float) -> None:
        """Move time forward, firing due timers in order and letting woken code run."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        await self.settle()
        while True:
            # The next thing due: an in-memory timer, or a run parked in a database.
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            due = [self._timers[0][0]] if self._timers else []
            for watcher in self._watchers:
                wake = await watcher.next_wake()
                if wake is not None:
                    due.append(wake)
            upcoming = min(due, default=None)
            if upcoming is None or upcoming > target:
                break
            self._now = max(self._now, upcoming)
            while self._timers and self._timers[0][0] <= self._now:
                _, _, timer = heapq.heappop(self._timers)
                if not timer.cancelled:
                    timer.callback()
            for watcher in self._watchers:
                watcher.poke()  # runs that became due in the database get claimed now
            await self.settle()
        self._now = target
        for watcher in self._watchers:
            watcher.poke()  # an upkeep pass at the new time (alerts look at the clock)
        await self.settle()
