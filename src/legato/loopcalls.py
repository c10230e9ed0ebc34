"""Callbacks posted to an event loop from other threads, one wake-up per batch.

``loop.call_soon_threadsafe`` writes a byte to the loop's self-pipe on every call. Under
load (32 step threads finishing fast steps, a stream of ``LISTEN`` notifications) a busy
loop lets hundreds of those pile up, the pipe fills, and the next write fails quietly,
the signal module's among them: a SIGTERM sent then never reached ``legato worker``.
``LoopCalls`` queues callbacks and wakes the loop once per batch, so the pipe holds a
byte or two however much the threads post.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class LoopCalls:
    """A thread-safe mailbox of callbacks run, in order, on one loop."""

    __slots__ = ("_calls", "_lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon; from any thread. Dropped if the loop closed."""
        with self._lock:
            first = not self._calls
            self._calls.append(callback)
        if first:
            try:
                self.loop.call_soon_threadsafe(self._run)
            except RuntimeError:  # the loop closed: nobody is left to run them
                with self._lock:
                    self._calls.clear()

    def _run(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for callback in calls:
            try:
                callback()
            except Exception as exc:  # one callback's error must not drop the others
                self.loop.call_exception_handler(
                    {"message": "a callback posted from a thread failed", "exception": exc}
                )
