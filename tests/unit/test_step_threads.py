"""The pool of threads for ``def`` steps and handlers: a full pool is reported, not spammed."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest

from legato.engine import steps
from legato.engine.steps import StepThreads


async def test_a_pool_that_fills_and_drains_warns_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = StepThreads(1)
    caplog.set_level(logging.WARNING, logger=steps.log.name)
    try:
        # Fill and drain the pool many times, as a steady load of sync handlers does.
        for _ in range(20):
            gate = threading.Event()
            first = pool.submit(gate.wait, lambda: None)
            second = pool.submit(lambda: "queued", lambda: None)  # finds the one thread busy
            gate.set()
            assert await asyncio.wait_for(second, 5) == "queued"
            await asyncio.wait_for(first, 5)
        warnings = [r for r in caplog.records if "step threads are busy" in r.getMessage()]
        assert len(warnings) == 1
        assert "all 1 step threads are busy" in warnings[0].getMessage()

        # A minute later the next filling is reported, with how many waited meanwhile.
        assert pool._warned_at is not None
        pool._warned_at -= steps.FULL_WARNING_EVERY_S
        gate = threading.Event()
        first = pool.submit(gate.wait, lambda: None)
        second = pool.submit(lambda: None, lambda: None)
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        warnings = [r for r in caplog.records if "step threads are busy" in r.getMessage()]
        assert len(warnings) == 2
        waited = re.search(r"\((\d+) sync steps or handlers waited", warnings[1].getMessage())
        assert waited is not None
        # 20 second submits at least (a first one may also find the last thread not yet free).
        assert int(waited.group(1)) >= 20
    finally:
        pool.shutdown()
