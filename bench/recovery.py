"""Benchmark: how fast a restarted worker picks up the runs a killed one left behind.

    python bench/recovery.py -n 1000

A child process starts N runs of a 3-step saga whose second step blocks, waits until
every run has finished its first step, and is SIGKILLed. Then this process starts an
engine on the same SQLite file and reports how long until every run is resumed (claimed
and replayed) and until every run has completed, and checks no recorded step ran twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import legato


def build_app(database: str, effects: str, blocked: bool) -> tuple[legato.App, object]:
    app = legato.App("recovery", database, tune_gc=True)

    def effect(run: str, step: str) -> None:
        with sqlite3.connect(effects, timeout=30) as conn:
            conn.execute("INSERT INTO effects VALUES (?, ?)", (run, step))

    @app.step
    def first(order: int) -> int:
        effect(legato.step_key(), "first")
        return order

    @app.step
    async def second(order: int) -> int:
        if blocked:
            await asyncio.Event().wait()  # the killed worker never gets past this
        return order

    @app.step
    async def third(order: int) -> int:
        return order

    @app.workflow
    async def saga(order: int) -> int:
        await first(order)
        await second(order)
        return await third(order)

    return app, saga


async def child(database: str, effects: str, n: int) -> None:
    app, saga = build_app(database, effects, blocked=True)
    async with app:
        for i in range(n):
            await app.start(saga, i, run_id=f"run-{i:05d}")
        print("started", flush=True)
        await asyncio.Event().wait()


def first_steps_done(path: str) -> int:
    with sqlite3.connect(path, timeout=30) as conn:
        return conn.execute(
            "SELECT count(*) FROM history WHERE kind = 'step_completed' AND key = '1'"
        ).fetchone()[0]


async def parent(database: str, db_path: str, effects: str, n: int) -> None:
    app, _ = build_app(database, effects, blocked=False)
    began = time.perf_counter()
    async with app:
        engine = app._engine
        assert engine is not None
        resumed = time.perf_counter() - began
        live_after_start = len(engine.live)
        for i in range(n):
            await app.handle(f"run-{i:05d}").result(timeout=120)
        completed = time.perf_counter() - began
    with sqlite3.connect(effects) as conn:
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT run FROM effects GROUP BY run HAVING count(*) > 1)"
        ).fetchone()[0]
    print(f"recovery n={n}")
    print(
        f"  runs resumed at start  {live_after_start:>8d}   in {resumed * 1000:.0f} ms "
        "(engine start: claim + replay)"
    )
    print(f"  all runs completed     {completed * 1000:>8.0f} ms after start")
    print(f"  recorded steps re-run  {twice:>8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--child", nargs=2, metavar=("DATABASE", "EFFECTS"))
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child[0], args.child[1], args.n))
        return
    tmp = tempfile.mkdtemp(prefix="legato-recovery-")
    db_path = os.path.join(tmp, "runs.db")
    effects = os.path.join(tmp, "effects.db")
    with sqlite3.connect(effects) as conn:
        conn.execute("CREATE TABLE effects (run TEXT, step TEXT)")
    database = f"sqlite:///{db_path}"
    proc = subprocess.Popen(
        [sys.executable, __file__, "-n", str(args.n), "--child", database, effects],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        deadline = time.monotonic() + 120
        while first_steps_done(db_path) < args.n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the child worker did not get every run past its first step")
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    asyncio.run(parent(database, db_path, effects, args.n))


if __name__ == "__main__":
    main()
