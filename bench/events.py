"""Benchmark: the event bus on SQLite with fsync (or PostgreSQL, with worker processes).

    python bench/events.py                       # 100,000 events to 3 subscriptions
    python bench/events.py -n 20000 --hybrid 5000
    python bench/events.py --database postgresql://postgres@127.0.0.1/test --workers 2 -n 50000

With ``--workers N``, a client here publishes ``-n`` events while no worker runs, then N
``legato worker`` processes (serving this file's ``app``: the three no-op subscribers)
deliver them; deliveries/s is counted from the workers' start (their start-up included)
until no delivery is pending (read from the database).

Part 1 publishes ``-n`` events (``app.publish``, 1,000 publishers at once) to three
subscriptions with no-op handlers, and prints events/s published, deliveries/s
completed (all deliveries recorded done, from the first publish), publish-to-handler
latency p50/p99 and peak RSS. Part 2 runs the hybrid course purchase ``--hybrid`` times:
saga3 (three steps) that publishes ``purchase.completed``, observed by three
subscribers; it prints runs/s (run results) and the time until every reaction is done.
Both parts check, through a second client, that what they count is in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time

from _common import pct, pool

import legato


def event_app(database: str, handled: list[float], done: asyncio.Event, total: int) -> legato.App:
    app = legato.App("bench", database, tune_gc=True)
    count = [0]

    def handler(name: str) -> None:
        @app.on("order.placed", name=name)
        async def react(event: legato.Event) -> None:
            handled.append(time.perf_counter() - event.data["t"])
            count[0] += 1
            if count[0] == total:
                done.set()

    for name in ("receipt", "analytics", "recommendations"):
        handler(name)
    return app


async def count_done(database: str) -> int:
    client = legato.AsyncClient(database)
    try:
        store = await client._open()
        deliveries = await store.list_deliveries(status="done", limit=10_000_000)
        return len(deliveries)
    finally:
        await client.close()


async def bench_events(database: str, n: int) -> dict[str, float]:
    latencies: list[float] = []
    done = asyncio.Event()
    app = event_app(database, latencies, done, 3 * n)
    async with app:
        began = time.perf_counter()

        async def publish(i: int) -> None:
            await app.publish("order.placed", {"order": i, "t": time.perf_counter()})

        await pool(n, 1000, publish)
        published = time.perf_counter() - began
        await done.wait()
        engine = app._engine
        assert engine is not None
        await engine.journal.flush()  # the last settles are committed
        delivered = time.perf_counter() - began
    stored = await count_done(database)
    if stored != 3 * n:
        raise SystemExit(f"only {stored} of {3 * n} deliveries are done in the database")
    latencies.sort()
    return {
        "events_per_s": n / published,
        "deliveries_per_s": 3 * n / delivered,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "elapsed_s": delivered,
    }


app = legato.App("bench-events")  # what `legato worker events.py:app` serves
for _name in ("receipt", "analytics", "recommendations"):

    @app.on("order.placed", name=_name)
    async def _react(event: legato.Event) -> None:
        return None


async def bench_workers(database: str, n: int, workers: int) -> dict[str, float]:
    """Publish ``n`` events with no worker running (a worker registers the subscriptions
    first), then start ``workers`` worker processes and time until none is pending."""
    from _workers import Workers, commits

    async with legato.AsyncClient(database) as client:
        with Workers("events.py:app", database, 1) as procs:  # registers the subscribers
            while not await client.list_workers():
                procs.check()
                await asyncio.sleep(0.1)
        store = await client._open()
        began = time.perf_counter()

        async def publish(i: int) -> None:
            await client.publish("order.placed", {"order": i})

        await pool(n, 500, publish)
        published = time.perf_counter() - began
        before = commits(database)
        with Workers("events.py:app", database, workers) as procs:
            began = time.perf_counter()
            while True:
                counts = await store.counts(time.time())
                if not any(k[1] == "pending" and v for k, v in counts.deliveries.items()):
                    break
                procs.check()
                await asyncio.sleep(0.05)
            delivered = time.perf_counter() - began
            after = commits(database)
        done = len(await store.list_deliveries(status="done", limit=3 * n + 1))
    if done != 3 * n:
        raise SystemExit(f"only {done} of {3 * n} deliveries are done in the database")
    result = {
        "events_per_s": n / published,
        "deliveries_per_s": 3 * n / delivered,
        "elapsed_s": delivered,
    }
    if before is not None and after is not None:
        result["commits_per_s"] = (after - before) / delivered
    return result


def hybrid_app(database: str, reactions: asyncio.Event, total: int) -> tuple[legato.App, object]:
    app = legato.App("bench-hybrid", database, tune_gc=True)
    count = [0]

    @app.step
    async def authorize_payment(order: dict) -> str:
        return f"pay-{order['id']}"

    @authorize_payment.compensate
    async def refund(order: dict, payment: str) -> None:
        return None

    @app.step
    async def create_enrollment(order: dict) -> str:
        return f"enr-{order['id']}"

    @app.step
    async def grant_access(order: dict) -> str:
        return "ok"

    @app.workflow
    async def purchase(order: dict) -> str:
        payment = await authorize_payment(order)
        await create_enrollment(order)
        await grant_access(order)
        await legato.publish("purchase.completed", order, subject=str(order["id"]))
        return payment

    def observer(name: str) -> None:
        @app.on("purchase.completed", name=name)
        async def react(event: legato.Event) -> None:
            count[0] += 1
            if count[0] == total:
                reactions.set()

    for name in ("send_receipt", "record_conversion", "refresh_recommendations"):
        observer(name)
    return app, purchase


async def bench_hybrid(database: str, n: int) -> dict[str, float]:
    reactions = asyncio.Event()
    app, purchase = hybrid_app(database, reactions, 3 * n)
    async with app:
        began = time.perf_counter()

        async def run(i: int) -> None:
            handle = await app.start(purchase, {"id": i})  # type: ignore[arg-type]
            await handle.result()

        await asyncio.gather(*(run(i) for i in range(n)))
        runs = time.perf_counter() - began
        await reactions.wait()
        engine = app._engine
        assert engine is not None
        await engine.journal.flush()
        reacted = time.perf_counter() - began
    stored = await count_done(database)
    if stored != 3 * n:
        raise SystemExit(f"only {stored} of {3 * n} reactions are done in the database")
    return {"runs_per_s": n / runs, "reactions_s": reacted, "runs_s": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="events to publish")
    parser.add_argument("--hybrid", type=int, default=10_000, help="hybrid runs (0: skip)")
    parser.add_argument("--dir", default=None, help="where the SQLite files go (temp)")
    parser.add_argument("--database", default=None, help="with --workers: the database URL")
    parser.add_argument("--workers", type=int, default=0, help="worker processes deliver")
    args = parser.parse_args()
    if args.workers:
        from _workers import fresh_schema_url

        database = fresh_schema_url(args.database or "postgresql://postgres@127.0.0.1/test")
        r = asyncio.run(bench_workers(database, args.n, args.workers))
        print(f"events n={args.n} workers={args.workers} database={database.split('?')[0]}")
        print(
            f"  events/s published      {r['events_per_s']:>10.0f}   (one client, no worker running)"
        )
        print(
            f"  deliveries/s completed  {r['deliveries_per_s']:>10.0f}   ({r['elapsed_s']:.1f} s, from the workers' start)"
        )
        if "commits_per_s" in r:
            print(f"  db commits/s            {r['commits_per_s']:>10.0f}")
        return
    directory = args.dir or tempfile.mkdtemp(prefix="legato-bench-events-")
    print(f"events python={sys.version.split()[0]} sqlite (synchronous=full) in {directory}")
    if args.n:
        db = f"sqlite:///{os.path.join(directory, 'events.db')}"
        r = asyncio.run(bench_events(db, args.n))
        print(f"  {args.n} events to 3 subscriptions (no-op handlers)")
        print(f"  events/s published      {r['events_per_s']:>10.0f}")
        print(
            f"  deliveries/s completed  {r['deliveries_per_s']:>10.0f}   ({r['elapsed_s']:.1f} s)"
        )
        print(f"  publish->handler p50    {r['p50_ms']:>10.1f} ms")
        print(f"  publish->handler p99    {r['p99_ms']:>10.1f} ms")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak RSS                {rss:>10.0f} MB")
    if args.hybrid:
        db = f"sqlite:///{os.path.join(directory, 'hybrid.db')}"
        h = asyncio.run(bench_hybrid(db, args.hybrid))
        print(f"  hybrid course purchase: {args.hybrid} runs, 1 publish each, 3 subscribers")
        print(f"  runs/s                  {h['runs_per_s']:>10.0f}")
        print(
            f"  every reaction done in  {h['reactions_s']:>10.1f} s   (runs: {h['runs_s']:.1f} s)"
        )


if __name__ == "__main__":
    main()
