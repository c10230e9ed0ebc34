"""Run one attempt of a step or compensation: async inline, sync in a thread, with timeout."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from legato.engine.clock import Clock
from legato.engine.context import current_step_key
from legato.errors import StepTimeout


class StepRunner:
    """Executes step attempts; sync steps get a thread each from a bounded pool."""

    def __init__(self, clock: Clock, threads: int) -> None:
        self._clock = clock
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="legato-step")

    def shutdown(self) -> None:
        """Stop accepting sync steps; threads still running are abandoned, not joined."""
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        try:
            if is_async and timeout_s is None:
                # The fast path: no task, no thread; the step runs in the workflow's task.
                return await fn(*args, **kwargs)
            if is_async:
                future: asyncio.Future[Any] = asyncio.ensure_future(fn(*args, **kwargs))
            else:
                context = contextvars.copy_context()
                call = functools.partial(context.run, fn, *args, **kwargs)
                future = asyncio.get_running_loop().run_in_executor(self._pool, call)
            if timeout_s is None:
                return await future
            return await self._with_timeout(future, timeout_s, name, attempt)
        finally:
            current_step_key.reset(token)

    async def _with_timeout(
        self, future: asyncio.Future[Any], timeout_s: float, name: str, attempt: int
    ) -> Any:
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            if not future.done():
                timed_out = True
                # An async step is cancelled; a sync step's thread cannot be stopped, so its
                # attempt is abandoned (its result, if it ever comes, is ignored).
                future.cancel()

        timer = self._clock.call_at(self._clock.time() + timeout_s, expire)
        try:
            return await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if timed_out and (task is None or not task.cancelling()):
                raise StepTimeout(name, timeout_s, attempt) from None
            raise
        finally:
            timer.cancel()
