"""Benchmark: N runs sleeping 1–10 s on durable timers — how late do they wake?

    python bench/timers.py -n 100000
    python bench/timers.py --database memory:// -n 10000

Each run reads ``legato.now()``, sleeps ``legato.sleep(d)`` with d uniform in [1, 10] s
(drawn by the script from a seeded generator and passed as the run's argument), then
runs one step, which records ``time.time() - (now + d)``: how late the timer fired, as
seen by the workflow's next step. Runs are started in this process's engine
(``--concurrency`` start() calls in flight), so timers come due while later runs are
still starting. Prints runs/s to start, lateness p50/p99/max, how many woke more than
1 s late, the time until every run completed, and peak RSS.

What the script itself holds per run: one float in an ``array('d')`` (the lateness).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from datetime import timedelta

import legato
from _common import pct, pool, rss_mb


async def bench(database: str, db_path: str | None, n: int, concurrency: int,
                seed: int) -> None:
    app = legato.App("bench-timers", database, tune_gc=True)
    late = array("d", bytes(8 * n))
    woke = 0
    all_woke = asyncio.Event()

    @app.step
    async def wake(i: int, due: float) -> None:
        nonlocal woke
        late[i] = time.time() - due
        woke += 1
        if woke == n:
            all_woke.set()

    @app.workflow
    async def sleeper(i: int, seconds: float) -> None:
        due = legato.now().timestamp() + seconds
        await legato.sleep(timedelta(seconds=seconds))
        await wake(i, due)

    def completed() -> int:
        if db_path is None:
            return sum(row.status == "completed"
                       for row in app.store._runs.values())  # type: ignore[attr-defined]
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE status = 'completed'"
                                ).fetchone()[0]

    durations = random.Random(seed)
    peak_rss = rss_mb()
    peak_live = 0
    baseline_rss = peak_rss
    async with app:
        engine = app._engine
        assert engine is not None

        async def sample() -> None:
            nonlocal peak_rss, peak_live
            while True:
                peak_rss = max(peak_rss, rss_mb())
                peak_live = max(peak_live, len(engine.live))
                await asyncio.sleep(0.1)

        sampler = asyncio.get_running_loop().create_task(sample())

        async def start(i: int) -> None:
            await app.start(sleeper, i, durations.uniform(1.0, 10.0))

        began = time.perf_counter()
        await pool(n, concurrency, start)
        started_s = time.perf_counter() - began
        await all_woke.wait()
        woke_s = time.perf_counter() - began
        while await asyncio.to_thread(completed) < n:
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - began
        sampler.cancel()
        end_rss = rss_mb()

    lateness = sorted(late)
    very_late = sum(1 for x in lateness if x > 1.0)
    db = database.split("?")[0]
    print(f"timers database={db} n={n} concurrency={concurrency} sleeps=uniform(1, 10) s "
          f"python={sys.version.split()[0]}")
    print(f"  start            {n / started_s:>10.0f} runs/s   ({started_s:.1f} s for all start() calls)")
    print(f"  lateness p50     {statistics.median(lateness) * 1000:>10.0f} ms       "
          "(step after the sleep starts - (legato.now() + d))")
    print(f"  lateness p99     {pct(lateness, 0.99) * 1000:>10.0f} ms")
    print(f"  lateness max     {lateness[-1] * 1000:>10.0f} ms       "
          f"(min {lateness[0] * 1000:.0f} ms)")
    print(f"  more than 1 s    {very_late:>10d}          ({very_late / n:.1%} of runs)")
    print(f"  all woke after   {woke_s:>10.1f} s        (all completed after {drained_s:.1f} s)")
    print(f"  live in memory   {peak_live:>10d}          (peak, sampled every 100 ms)")
    print(f"  RSS at the end   {end_rss:>10.0f} MB       (before the app started: {baseline_rss:.0f} MB; "
          f"sampled peak {peak_rss:.0f} MB)")
    print(f"  peak RSS         {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:>10.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None,
                        help="sqlite:///path.db or memory:// (default: a fresh temp SQLite file)")
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="start() calls in flight at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    database = args.database
    if database is None:
        tmp = tempfile.mkdtemp(prefix="legato-bench-")
        database = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    db_path = None
    if database.startswith("sqlite:///"):
        db_path = database.split("?")[0][len("sqlite:///"):]
    asyncio.run(bench(database, db_path, args.n, args.concurrency, args.seed))


if __name__ == "__main__":
    main()
