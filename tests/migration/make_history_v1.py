"""Make ``fixtures/history-v1.db`` (run once, with the old release on the path).

    git worktree add /tmp/old babe3db
    FORMAT_V1_FAIL=1 PYTHONPATH=/tmp/old/src:. python tests/migration/make_history_v1.py

Leaves one run parked at each kind of call; see ``format_v1_app.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import legato
from legato.testing import FakeClock
from tests.migration.format_v1_app import FAIL_ENV, define

TARGET = Path(__file__).parent / "fixtures" / "history-v1.db"


async def settle(
    clock: FakeClock, app: legato.App, run_id: str, statuses: set[str], parked: bool = True
) -> None:
    """Wait until the run is in one of ``statuses`` (and released by its worker)."""
    for _ in range(2000):
        await clock.settle()
        run = await app.store.get_run(run_id)
        if run is not None and run.status.value in statuses and (run.owner is None or not parked):
            return
        await asyncio.sleep(0.001)
    raise SystemExit(f"{run_id} did not reach {statuses}")


async def main() -> None:
    assert os.environ.get(FAIL_ENV), f"set {FAIL_ENV}=1"
    TARGET.unlink(missing_ok=True)
    clock = FakeClock()
    app = legato.App("format-v1", f"sqlite:///{TARGET}", clock=clock)
    define(app)
    async with app:
        await app.start("done", "o-done", run_id="done-1")
        await settle(clock, app, "done-1", {"completed"})
        for workflow in ("sleeper", "waiter", "reviewer", "retrier"):
            await app.start(workflow, f"o-{workflow}", run_id=f"{workflow}-1")
            # A retry's backoff parks the run as running, due at the retry.
            await settle(clock, app, f"{workflow}-1", {"sleeping", "waiting", "running"})
        await app.start("saga", "o-saga", run_id="saga-1")
        # Its compensation retries in a second: held in memory, released at stop.
        await settle(clock, app, "saga-1", {"compensating"}, parked=False)
        await app.start("parent", "o-parent", run_id="parent-1")
        await settle(clock, app, "kid-o-parent", {"waiting"})
        await settle(clock, app, "parent-1", {"waiting"})
        await clock.settle()
    print("wrote", TARGET, "at", clock.now().isoformat(), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
