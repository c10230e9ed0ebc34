"""Helpers the benchmark scripts share (imported as ``_common``: scripts run from bench/)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def pool(n: int, concurrency: int, fn: Callable[[int], Awaitable[None]]) -> None:
    """Call ``fn(i)`` for i in range(n), ``concurrency`` at a time, holding nothing per i."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values``."""
    return values[min(len(values) - 1, int(len(values) * q))]
