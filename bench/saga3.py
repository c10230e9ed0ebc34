"""Benchmark: a 3-step saga, N runs started at once.

    python bench/saga3.py --database sqlite:///bench.db -n 10000
    python bench/saga3.py --database memory:// -n 10000 --variant fail

Prints runs/s, durable steps/s (steps plus compensations), p50/p99 run latency (from
start() to result), peak RSS, and the p50 latency of a single run started alone.
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

    @app.workflow
    async def saga3(order: dict) -> dict:
        payment = await reserve_payment(order)
        inventory = await reserve_inventory(order)
        note = await notify(order)
        return {**payment, **inventory, **note}

    return app, saga3


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
    if not database.startswith("sqlite:"):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        default=None,
        help="sqlite:///path.db or memory:// (default: a fresh temp SQLite file)",
    )
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--variant", choices=["ok", "fail"], default="ok")
    args = parser.parse_args()
    database = args.database
    tmp = None
    if database is None:
        tmp = tempfile.mkdtemp(prefix="legato-bench-")
        database = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
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
