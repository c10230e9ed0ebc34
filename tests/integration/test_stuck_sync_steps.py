"""Sync steps that never return: timeouts count the step's own run, and SIGTERM still stops.

A ``def`` step runs on a step thread, which cannot be interrupted. Steps that hang fill
the threads; a healthy step queued behind them must not "time out" before it ever ran,
and a worker told to stop must exit, handing back the runs whose threads it abandons.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from tests.fixtures.db import fresh_database
from tests.fixtures.engine import poll_until

import legato

REPO = Path(__file__).resolve().parents[2]


async def test_a_queued_sync_step_times_out_on_its_own_run_not_its_wait_for_a_thread(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    app = legato.App("t", fresh_database(tmp_path, "runs.db"), step_threads=1)

    @app.step(name="hog")
    def hog(order: str) -> str:
        gate.wait(30)
        return "hogged"

    @app.step(name="quick", timeout=timedelta(milliseconds=300))
    def quick(order: str) -> str:
        return "quick"

    @app.workflow(name="slow")
    async def slow(order: str) -> str:
        return await hog(order)

    @app.workflow(name="fast")
    async def fast(order: str) -> str:
        return await quick(order)

    try:
        async with app:
            first = await app.start(slow, "a")
            await poll_until(lambda: app._engine is not None and app._engine.steps.threads.busy)
            second = await app.start(fast, "b")
            # quick waits behind hog for longer than its own timeout...
            await poll_until(lambda: time.sleep(0.6) is None, limit=2)
            gate.set()
            # ...and still completes: its 300 ms count from when it got the thread.
            assert await second.result(timeout=10) == "quick"
            assert await first.result(timeout=10) == "hogged"
            [step] = (await second.describe()).steps
            assert (step.status, step.attempts) == ("completed", 1)
    finally:
        gate.set()


def test_sigterm_stops_a_worker_whose_step_threads_are_stuck(tmp_path: Path) -> None:
    database = fresh_database(tmp_path, "runs.db")
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "legato"),
            "worker",
            "tests.integration.stuck_app:app",
            "--database",
            database,
        ],
        cwd=REPO,
        stderr=log,
    )
    try:
        with legato.Client(database) as client:
            deadline = time.monotonic() + 30
            while "hang" not in client.list_workflows():
                assert worker.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            runs = [client.start("hang", f"o-{i}", run_id=f"o-{i}") for i in range(3)]
            # Two runs hold both threads; the third queues for one.
            deadline = time.monotonic() + 30
            while sum(client.describe(r.run_id).current_step == "stuck" for r in runs) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.05)

            worker.send_signal(signal.SIGTERM)
            # Stops within a bounded grace although two threads never return.
            code = worker.wait(timeout=15)

            assert code == 0, (tmp_path / "worker.log").read_text()
            for run in runs:
                stored = client.get_run(run.run_id)
                assert stored.owner is None, stored  # handed back for another worker
                assert stored.status is legato.RunStatus.RUNNING
            assert client.list_workers() == []
        text = (tmp_path / "worker.log").read_text()
        assert "all 2 step threads are busy" in text
        assert "stopped" in text
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
