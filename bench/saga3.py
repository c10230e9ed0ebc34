"""Benchmark: a 3-step saga, N runs started at once.

    python bench/saga3.py --database sqlite:///bench.db -n 10000
    python bench/saga3.py --database memory:// -n 10000 --variant fail
    python bench/saga3.py --database postgresql://postgres@127.0.0.1/test --workers 2 -n 20000

Prints runs/s, durable steps/s (steps plus compensations), p50/p99 run latency (from
start() to result), peak RSS, and the p50 latency of a single run started alone.

With ``--workers N`` the runs are executed by N ``legato worker`` processes (serving this
file's ``app``) and started by a client here; latencies are then each run's time from
its creation to its last write, read from the database, and on PostgreSQL the database's
commits/s during the run are printed too. A PostgreSQL URL without ``?schema=`` gets a
fresh schema, migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time

import legato
from legato.errors import RunFailed


class OutOfStock(Exception):
    """The third step's failure in the 'fail' variant."""


def build_app(database: str) -> tuple[legato.App, object]:
    app = legato.App("bench", database, tune_gc=True)  # as `legato worker` does

    @app.step
    async def reserve_payment(order: dict) -> dict:
        return {"payment": order["id"]}

    @reserve_payment.compensate
    async def release_payment(order: dict, reserved: dict) -> None:
        return None

    @app.step
    async def reserve_inventory(order: dict) -> dict:
        return {"inventory": order["id"]}

    @reserve_inventory.compensate
    async def release_inventory(order: dict, reserved: dict) -> None:
        return None

    @app.step(retry=legato.Retry(max_attempts=1))
    async def notify(order: dict) -> dict:
        if order["fail"]:
            raise OutOfStock(order["id"])
        return {"notified": order["id"]}

    @app.workflow(name="saga3")
    async def saga3(order: dict) -> dict:
        payment = await reserve_payment(order)
        inventory = await reserve_inventory(order)
        note = await notify(order)
        return {**payment, **inventory, **note}

    return app, saga3


app, saga3_workflow = build_app(None)  # what `legato worker saga3.py:app` serves


async def one_run(app: legato.App, workflow: object, order: dict) -> float:
    began = time.perf_counter()
    handle = await app.start(workflow, order)
    try:
        await handle.result()
    except RunFailed as exc:
        if exc.status != "compensated":
            raise
    return time.perf_counter() - began


async def check_durable(app: legato.App, database: str, n: int, status: str) -> None:
    """Every run reported done must be done in the database, as another process sees it.

    Guards the figures: a journal that reported a commit before it happened (an early
    version did, for batches it split) would look fast and be wrong.
    """
    if database.startswith("memory:"):
        return
    client = legato.AsyncClient(database)
    try:
        done = len(await client.list_runs(status=status, limit=n + 1000))
    finally:
        await client.close()
    if done < n:
        raise SystemExit(f"only {done} of {n} runs are {status} in the database")


async def bench(database: str, n: int, fail: bool) -> dict[str, float]:
    app, saga3 = build_app(database)
    async with app:
        began = time.perf_counter()
        latencies = await asyncio.gather(
            *(one_run(app, saga3, {"id": i, "fail": fail}) for i in range(n))
        )
        elapsed = time.perf_counter() - began
        await check_durable(app, database, n, "compensated" if fail else "completed")
        single = [await one_run(app, saga3, {"id": -i - 1, "fail": fail}) for i in range(200)]
    latencies.sort()
    steps = n * (5 if fail else 3)  # the fail variant: 3 steps + 2 compensations
    return {
        "runs_per_s": n / elapsed,
        "steps_per_s": steps / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "single_p50_ms": statistics.median(single) * 1000,
        "elapsed_s": elapsed,
    }


async def bench_workers(database: str, n: int, fail: bool, workers: int) -> dict[str, float]:
    """N worker processes execute; a client here starts the runs and watches them end."""
    from _workers import Workers, commits

    status = "compensated" if fail else "completed"
    with Workers("saga3.py:app", database, workers) as procs:
        async with legato.AsyncClient(database) as client:
            while len(await client.list_workers()) < workers:
                procs.check()
                await asyncio.sleep(0.1)
            commits_before = commits(database)
            began = time.time()
            for at in range(0, n, 1000):
                await asyncio.gather(
                    *(
                        client.start("saga3", {"id": i, "fail": fail}, run_id=f"b{i}")
                        for i in range(at, min(n, at + 1000))
                    )
                )
            while True:
                done = await client.list_runs(status=status, limit=n + 1, payloads=False)
                if len(done) >= n:
                    break
                procs.check()
                await asyncio.sleep(0.05)
            elapsed = max(r.updated_at.timestamp() for r in done) - began
            commits_after = commits(database)
    latencies = sorted(r.updated_at.timestamp() - r.created_at.timestamp() for r in done)
    steps = n * (5 if fail else 3)
    result = {
        "runs_per_s": n / elapsed,
        "steps_per_s": steps / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "elapsed_s": elapsed,
    }
    if commits_before is not None and commits_after is not None:
        result["commits_per_s"] = (commits_after - commits_before) / elapsed
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        default=None,
        help="sqlite:///path.db or memory:// (default: a fresh temp SQLite file)",
    )
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--variant", choices=["ok", "fail"], default="ok")
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes (0: this process executes)"
    )
    args = parser.parse_args()
    database = args.database
    tmp = None
    if database is None:
        tmp = tempfile.mkdtemp(prefix="legato-bench-")
        database = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    if database.startswith(("postgresql://", "postgres://")):
        from _workers import fresh_schema_url

        database = fresh_schema_url(database)
    if args.workers:
        result = asyncio.run(bench_workers(database, args.n, args.variant == "fail", args.workers))
        db = database.split("?")[0]
        print(f"saga3 variant={args.variant} database={db} n={args.n} workers={args.workers}")
        print(f"  runs/s          {result['runs_per_s']:>10.0f}")
        print(f"  durable steps/s {result['steps_per_s']:>10.0f}")
        print(f"  p50 latency     {result['p50_ms']:>10.1f} ms   (created to ended, all at once)")
        print(f"  p99 latency     {result['p99_ms']:>10.1f} ms")
        if "commits_per_s" in result:
            print(f"  db commits/s    {result['commits_per_s']:>10.0f}")
        return
    result = asyncio.run(bench(database, args.n, args.variant == "fail"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    db = database.split("?")[0]
    print(f"saga3 variant={args.variant} database={db} n={args.n} python={sys.version.split()[0]}")
    print(f"  runs/s          {result['runs_per_s']:>10.0f}")
    print(f"  durable steps/s {result['steps_per_s']:>10.0f}")
    print(f"  p50 latency     {result['p50_ms']:>10.1f} ms   (all {args.n} started at once)")
    print(f"  p99 latency     {result['p99_ms']:>10.1f} ms")
    print(f"  single run p50  {result['single_p50_ms']:>10.2f} ms   (started alone)")
    print(f"  peak RSS        {rss_mb:>10.0f} MB")


if __name__ == "__main__":
    main()
