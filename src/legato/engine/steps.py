"""Run one attempt of a step or compensation: async inline, sync in a thread, with timeout."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from legato.engine.clock import Clock, TimerHandle
from legato.engine.context import current_attempt, current_step_key, current_step_publishes
from legato.errors import StepTimeout
from legato.loopcalls import LoopCalls

log = logging.getLogger(__name__)


class _Job:
    """One sync attempt waiting for, or running on, a step thread."""

    __slots__ = ("call", "future", "loop", "on_start")

    def __init__(
        self,
        call: Callable[[], Any],
        loop: LoopCalls,
        future: asyncio.Future[Any],
        on_start: Callable[[], None],
    ) -> None:
        self.call = call
        self.loop = loop
        self.future = future
        self.on_start = on_start


FULL_WARNING_EVERY_S = 60.0
"""The "all step threads are busy" warning is logged at most this often (seconds)."""


class StepThreads:
    """A bounded set of daemon threads for ``def`` steps.

    Not ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one step
    that never returns kept a stopped worker from exiting until SIGKILL. A step thread
    here is a daemon: on stop it is abandoned, the run it served is handed back, and the
    process exits. Each job tells the loop when a thread actually starts it, so a step's
    timeout counts its own run, not its wait for a free thread.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"step_threads must be at least 1, got {size}")
        self.size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._outstanding = 0  # submitted and not yet done (queued, taken, or running)
        self._lock = threading.Lock()
        self._closed = False
        self._warned_at: float | None = None  # monotonic time of the last "all busy" warning
        self._full_since_warned = 0  # submits that found every thread busy since then
        self._mailboxes: dict[asyncio.AbstractEventLoop, LoopCalls] = {}
        # Jobs someone still awaits, with when they were submitted (FakeClock.settle waits
        # for the young ones): a job whose waiter gave up (a timeout abandoned it) leaves
        # this map though its thread runs on.
        self.awaited: dict[asyncio.Future[Any], float] = {}

    @property
    def busy(self) -> int:
        """Threads running a step now."""
        return self._busy

    def submit(self, call: Callable[[], Any], on_start: Callable[[], None]) -> asyncio.Future[Any]:
        """Queue ``call``; the future resolves with its result. ``on_start`` runs on the loop."""
        if self._closed:
            raise RuntimeError("the engine is stopping: no new step attempts")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            # Counted from submit to done: a job a thread has just taken off the queue is
            # neither queued nor busy yet, and must still count as holding a thread.
            self._outstanding += 1
            if self._outstanding > len(self._threads) and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"legato-step-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            full = self._outstanding > self.size
        if full:
            self._warn_full()
        self.awaited[future] = time.monotonic()
        future.add_done_callback(self._forget)
        mailbox = self._mailboxes.get(loop)
        if mailbox is None:
            mailbox = self._mailboxes[loop] = LoopCalls(loop)
        self._jobs.put(_Job(call, mailbox, future, on_start))
        return future

    def _warn_full(self) -> None:
        # Once a minute at most: under a steady load the pool fills and drains many times
        # a second, and one line per filling buried the log.
        self._full_since_warned += 1
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < FULL_WARNING_EVERY_S:
            return
        log.warning(
            "all %d step threads are busy (%d sync steps or handlers waited for one since "
            "the last warning): they wait for a free thread (their timeouts start when they "
            "start). Steps that never return hold threads for good; raise step_threads or "
            "give those steps a timeout",
            self.size,
            self._full_since_warned,
        )
        self._warned_at = now
        self._full_since_warned = 0

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self.awaited.pop(future, None)

    def recent(self, grace_s: float) -> list[asyncio.Future[Any]]:
        """The jobs awaited now that were submitted less than ``grace_s`` seconds ago."""
        if not self.awaited:
            return []
        since = time.monotonic() - grace_s
        return [future for future, at in self.awaited.items() if at > since]

    def shutdown(self) -> None:
        """Take no more jobs; idle threads exit, busy ones are abandoned (daemons)."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.future.cancelled():  # its waiter gave up while it queued
                with self._lock:
                    self._outstanding -= 1
                continue
            with self._lock:
                self._busy += 1
            try:
                self._deliver(job, job.on_start)
                try:
                    result = job.call()
                except BaseException as exc:  # delivered to the awaiting step, not lost here
                    self._deliver(job, functools.partial(_set_exception, job.future, exc))
                else:
                    self._deliver(job, functools.partial(_set_result, job.future, result))
            finally:
                with self._lock:
                    self._busy -= 1
                    self._outstanding -= 1

    @staticmethod
    def _deliver(job: _Job, callback: Callable[[], None]) -> None:
        # One wake-up of the loop per batch (legato.loopcalls); dropped if the loop
        # closed: the engine stopped and abandoned this attempt.
        job.loop.post(callback)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class StepRunner:
    """Executes step attempts; sync steps get a thread each from a bounded set."""

    def __init__(self, clock: Clock, threads: int) -> None:
        self._clock = clock
        self.threads = StepThreads(threads)

    def shutdown(self) -> None:
        """Stop accepting sync steps; threads still running are abandoned, not joined."""
        self.threads.shutdown()

    async def run(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        step_key: str,
        name: str,
        attempt: int,
        timeout_s: float | None,
    ) -> Any:
        """Run ``fn`` once with ``legato.step_key()`` set; raise ``StepTimeout`` on timeout."""
        token = current_step_key.set(step_key)
        publishes = current_step_publishes.set([0])
        attempting = current_attempt.set((name, attempt))
        try:
            if is_async:
                if timeout_s is None:
                    # The fast path: no task, no thread; the step runs in the workflow's task.
                    return await fn(*args, **kwargs)
                deadline = _Deadline(self._clock, timeout_s)
                deadline.future = asyncio.ensure_future(fn(*args, **kwargs))
                deadline.arm()
                return await self._with_timeout(deadline, name, attempt)
            context = contextvars.copy_context()
            call = functools.partial(context.run, fn, *args, **kwargs)
            if timeout_s is None:
                return await self.threads.submit(call, _nothing)
            # The clock starts when a thread takes the step, not while it queues.
            deadline = _Deadline(self._clock, timeout_s)
            deadline.future = self.threads.submit(call, deadline.arm)
            return await self._with_timeout(deadline, name, attempt)
        finally:
            current_attempt.reset(attempting)
            current_step_publishes.reset(publishes)
            current_step_key.reset(token)

    async def _with_timeout(self, deadline: _Deadline, name: str, attempt: int) -> Any:
        assert deadline.future is not None
        try:
            return await deadline.future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if deadline.expired and (task is None or not task.cancelling()):
                raise StepTimeout(name, deadline.timeout_s, attempt) from None
            raise
        finally:
            deadline.close()


class _Deadline:
    """A step attempt's timeout, armed when the attempt really starts."""

    __slots__ = ("clock", "closed", "expired", "future", "timeout_s", "timer")

    def __init__(self, clock: Clock, timeout_s: float) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.future: asyncio.Future[Any] | None = None
        self.timer: TimerHandle | None = None
        self.expired = False
        self.closed = False

    def arm(self) -> None:
        if not self.closed and self.timer is None:
            self.timer = self.clock.call_at(self.clock.time() + self.timeout_s, self._expire)

    def _expire(self) -> None:
        future = self.future
        if future is not None and not future.done():
            self.expired = True
            # An async step is cancelled; a sync step's thread cannot be stopped, so its
            # attempt is abandoned (its result, if it ever comes, is ignored).
            future.cancel()

    def close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()


def _nothing() -> None:
    pass
