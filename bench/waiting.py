"""Benchmark: N runs parked on a signal — worker memory, DB size, signal-to-resume latency.

    python bench/waiting.py -n 100000
    python bench/waiting.py --database memory:// -n 10000

Each run does one step, waits for the signal "go", then does one more step. The script
starts N runs in this process's engine (``--concurrency`` start() calls in flight), waits
until every run is parked (its row 'waiting' and no task left in memory), and reports the
worker's RSS (peak and current) and the database size. Then it signals every run
(``app.signal``, ``--signal-concurrency`` in flight) and reports the send rate, the
signal-to-resume latency p50/p99 (from the moment ``app.signal`` is called to the start of
the step after the wait, and from the moment it returned), and the time until all runs
completed.

What the script itself holds per run: three floats in ``array('d')`` (signal called,
signal returned, resumed; 24 bytes a run) — run ids are derived from the index, and no
RunHandle is kept. So the RSS printed is the engine's (plus the interpreter, ~30 MB).
Once every run is parked it also runs ``gc.collect()`` and reports what that freed: the
garbage the engine left for the cyclic collector.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array

import legato
from _common import pct, pool, rss_mb


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_id(i: int) -> str:
    return f"wait-{i:07d}"


class Monitor:
    """Samples RSS and the engine's live runs every 100 ms; keeps the peaks of a phase."""

    def __init__(self, app: legato.App) -> None:
        self.app = app
        self.peak_rss = 0.0
        self.peak_live = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.peak_rss = rss_mb()
        self.peak_live = self.live()

    def live(self) -> int:
        engine = self.app._engine
        return 0 if engine is None else len(engine.live)

    async def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_mb())
            self.peak_live = max(self.peak_live, self.live())
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Counts:
    """Run rows by status, read the way an operator would (not through the engine)."""

    def __init__(self, app: legato.App, db_path: str | None) -> None:
        self.app = app
        self.db_path = db_path

    def _sqlite(self) -> dict[str, int]:
        assert self.db_path is not None
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as conn:
            return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))

    async def get(self) -> dict[str, int]:
        if self.db_path is not None:
            return await asyncio.to_thread(self._sqlite)
        counts: dict[str, int] = {}
        for row in self.app.store._runs.values():  # type: ignore[attr-defined]  # MemoryStore
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts


async def bench(database: str, db_path: str | None, n: int, concurrency: int,
                signal_concurrency: int) -> None:
    app = legato.App("bench-waiting", database, tune_gc=True)
    called = array("d", bytes(8 * n))     # when app.signal(...) was called
    returned = array("d", bytes(8 * n))   # when it returned (the signal is committed)
    resumed = array("d", bytes(8 * n))    # when the step after the wait started

    @app.step
    async def before(i: int) -> int:
        return i

    @app.step
    async def after(i: int, payload: int) -> int:
        resumed[i] = time.time()
        return i

    @app.workflow
    async def waiter(i: int) -> int:
        await before(i)
        payload = await legato.wait_for_signal("go")
        return await after(i, payload)

    counts = Counts(app, db_path)
    baseline_rss = rss_mb()
    async with app:
        engine = app._engine
        assert engine is not None
        monitor = Monitor(app)
        monitor.reset()
        monitor.start()

        # -- start -----------------------------------------------------------------------
        async def start(i: int) -> None:
            await app.start(waiter, i, run_id=run_id(i))

        began = time.perf_counter()
        await pool(n, concurrency, start)
        started_s = time.perf_counter() - began

        # -- wait until every run is parked (row 'waiting', evicted) ---------------------
        while True:
            c = await counts.get()
            if c.get("waiting", 0) >= n and len(engine.live) == 0:
                break
            await asyncio.sleep(0.2)
        parked_s = time.perf_counter() - began
        await asyncio.sleep(1.0)  # let the allocator settle; RSS after the start's burst
        park = {
            "peak_rss": peak_rss_mb(), "sampled_peak": monitor.peak_rss, "rss": rss_mb(),
            "peak_live": monitor.peak_live, "live": len(engine.live), "counts": c,
        }
        if db_path is not None:
            park["db_mb"] = os.path.getsize(db_path) / 2**20
            wal = db_path + "-wal"
            park["wal_mb"] = os.path.getsize(wal) / 2**20 if os.path.exists(wal) else 0.0
        park["garbage"] = gc.collect()
        park["rss_collected"] = rss_mb()

        # -- signal every run ----------------------------------------------------------
        monitor.reset()

        async def send(i: int) -> None:
            called[i] = time.time()
            await app.signal(run_id(i), "go", i)
            returned[i] = time.time()

        began = time.perf_counter()
        await pool(n, signal_concurrency, send)
        sent_s = time.perf_counter() - began
        while True:
            c = await counts.get()
            if c.get("completed", 0) >= n:
                break
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - began
        drain_peak_live = monitor.peak_live
        drain_peak_rss = monitor.peak_rss
        monitor.stop()

    from_call = sorted(resumed[i] - called[i] for i in range(n))
    from_commit = sorted(resumed[i] - returned[i] for i in range(n))
    send_latency = sorted(returned[i] - called[i] for i in range(n))
    db = database.split("?")[0]
    print(f"waiting database={db} n={n} concurrency={concurrency} "
          f"signal-concurrency={signal_concurrency} python={sys.version.split()[0]}")
    print(f"  start            {n / started_s:>10.0f} runs/s   ({started_s:.1f} s for all start() calls)")
    print(f"  all parked after {parked_s:>10.1f} s        (rows: {park['counts']})")
    print(f"  live in memory   {park['live']:>10d}          (peak while starting: {park['peak_live']})")
    print(f"  RSS parked       {park['rss']:>10.0f} MB       (before the app started: {baseline_rss:.0f} MB)")
    print(f"  peak RSS         {park['peak_rss']:>10.0f} MB       (ru_maxrss up to all parked)")
    print(f"  gc.collect()     {park['garbage']:>10d} objects  (freed once parked; RSS after: "
          f"{park['rss_collected']:.0f} MB)")
    if db_path is not None:
        print(f"  DB size          {park['db_mb']:>10.1f} MB       (+ WAL {park['wal_mb']:.1f} MB)")
    print(f"  signals sent     {n / sent_s:>10.0f} /s       ({sent_s:.1f} s; app.signal p50 "
          f"{statistics.median(send_latency) * 1000:.1f} ms, p99 {pct(send_latency, 0.99) * 1000:.1f} ms)")
    print(f"  resume p50       {statistics.median(from_call) * 1000:>10.0f} ms       "
          f"(signal called -> next step starts; from signal committed: "
          f"{statistics.median(from_commit) * 1000:.0f} ms)")
    print(f"  resume p99       {pct(from_call, 0.99) * 1000:>10.0f} ms       "
          f"(from signal committed: {pct(from_commit, 0.99) * 1000:.0f} ms)")
    print(f"  drained after    {drained_s:>10.1f} s        (first signal -> all {n} completed; "
          f"peak live {drain_peak_live})")
    print(f"  peak RSS         {peak_rss_mb():>10.0f} MB       (whole benchmark; sampled peak "
          f"while draining {drain_peak_rss:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None,
                        help="sqlite:///path.db or memory:// (default: a fresh temp SQLite file)")
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="start() calls in flight at once")
    parser.add_argument("--signal-concurrency", type=int, default=100,
                        help="signal() calls in flight at once")
    args = parser.parse_args()
    database = args.database
    if database is None:
        tmp = tempfile.mkdtemp(prefix="legato-bench-")
        database = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    db_path = None
    if database.startswith("sqlite:///"):
        db_path = database.split("?")[0][len("sqlite:///"):]
    asyncio.run(bench(database, db_path, args.n, args.concurrency, args.signal_concurrency))


if __name__ == "__main__":
    main()
