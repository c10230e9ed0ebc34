"""Benchmark: expectations on SQLite with fsync.

    python bench/expectations.py                 # 100,000 open instances
    python bench/expectations.py --open 20000 -n 20000 --violations 1000

1. The bus alone: ``-n`` events to three no-op subscriptions, deliveries/s (the baseline,
   on a database with no expectation that went through the same ``--open`` purchase
   events first, each delivered to a no-op subscriber: the same log, no instances).
2. ``--open`` trigger events, each opening an instance of one expectation for its own
   correlation id (the deadline a day away): triggers/s evaluated, and peak RSS.
3. The bus again, on the database now holding those open instances, with the expectation
   defined: the same ``-n`` events (which the expectation does not watch) plus ``-n``
   awaited events that fulfil instances: deliveries/s, against part 1.
4. ``--violations`` instances whose deadline passes two seconds after they open, with no
   further event: how long after its deadline each violation reaches a subscriber
   (p50/p99).

Memory should stay flat as instances grow: they live in the database, not in RAM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import tempfile
import time
from datetime import timedelta

from _common import pct, pool

import legato

EXPECTATION = "paid-learner-is-enrolled"


def rss_mb() -> float:
    """Peak RSS of the process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """RSS now (Linux): what the process holds after a part, not its peak."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_app(
    database: str, *, expect: timedelta | None, counted: dict[str, int], done: asyncio.Event
) -> tuple[legato.App, list[float]]:
    app = legato.App("bench", database, tune_gc=True, poll_interval=timedelta(milliseconds=50))
    late: list[float] = []

    def handler(name: str) -> None:
        @app.on("order.placed", name=name)
        async def react(event: legato.Event) -> None:
            counted["deliveries"] += 1
            if counted["deliveries"] == counted["goal"]:
                done.set()

    for name in ("receipt", "analytics", "recommendations"):
        handler(name)
    if expect is None:

        @app.on("purchase.completed")
        async def purchases(event: legato.Event) -> None:
            pass

    else:
        app.expect(
            EXPECTATION, after="purchase.completed", then="enrollment.created", within=expect
        )

        @app.on("legato.expectation.violated")
        async def violated(event: legato.Event) -> None:
            deadline = event.data["deadline"]
            late.append(time.time() - _parse(deadline))
            counted["violations"] += 1
            if counted["violations"] == counted["goal_violations"]:
                done.set()

    return app, late


def _parse(text: str) -> float:
    from legato.model.events import parse_time

    return parse_time(text).timestamp()


async def wait_instances(app: legato.App, status: str, count: int, timeout: float) -> float:
    """Seconds until ``count`` instances are in ``status`` (read through the app)."""
    began = time.perf_counter()
    while True:
        found = await app.list_expectations(status=status, limit=count + 1)
        if len(found) >= count:
            return time.perf_counter() - began
        if time.perf_counter() - began > timeout:
            raise SystemExit(f"only {len(found)} of {count} instances became {status}")
        await asyncio.sleep(0.05)


async def bus_only(app: legato.App, n: int, counted: dict[str, int], done: asyncio.Event) -> float:
    """Deliveries/s of ``n`` events to the three subscriptions."""
    counted.update(deliveries=0, goal=3 * n)
    done.clear()
    began = time.perf_counter()
    await pool(n, 1000, lambda i: app.publish("order.placed", {"order": i}))
    await done.wait()
    return 3 * n / (time.perf_counter() - began)


async def run(args: argparse.Namespace, directory: str) -> None:
    counted = {"deliveries": 0, "goal": 0, "violations": 0, "goal_violations": -1}
    done = asyncio.Event()

    base = f"sqlite:///{os.path.join(directory, 'base.db')}"
    app, _ = make_app(base, expect=None, counted=counted, done=done)
    async with app:
        await pool(
            args.open,
            1000,
            lambda i: app.publish("purchase.completed", {"i": i}, correlationid=f"c-{i}"),
        )
        baseline = await bus_only(app, args.n, counted, done)
    print(f"  1. bus alone: {args.n} events to 3 subscriptions (after {args.open} others)")
    print(f"     deliveries/s              {baseline:>10.0f}")
    print(f"     RSS now                   {rss_now_mb():>10.0f} MB   (peak {rss_mb():.0f} MB)")

    db = f"sqlite:///{os.path.join(directory, 'expect.db')}"
    app, _ = make_app(db, expect=timedelta(days=1), counted=counted, done=done)
    async with app:
        began = time.perf_counter()
        await pool(
            args.open,
            1000,
            lambda i: app.publish("purchase.completed", {"i": i}, correlationid=f"c-{i}"),
        )
        published = time.perf_counter() - began
        await wait_instances(app, "open", args.open, timeout=3600)
        opened = time.perf_counter() - began
        print(f"  2. {args.open} triggers, each opening an instance")
        print(f"     triggers published/s      {args.open / published:>10.0f}")
        print(f"     triggers evaluated/s      {args.open / opened:>10.0f}   ({opened:.1f} s)")
        print(f"     RSS now                   {rss_now_mb():>10.0f} MB   (peak {rss_mb():.0f} MB)")

        with_open = await bus_only(app, args.n, counted, done)
        print(f"  3. the bus with {args.open} open instances")
        print(
            f"     deliveries/s              {with_open:>10.0f}   "
            f"({with_open / baseline:.0%} of the bus alone)"
        )
        began = time.perf_counter()
        fulfil = min(args.n, args.open)
        await pool(
            fulfil,
            1000,
            lambda i: app.publish("enrollment.created", {"i": i}, correlationid=f"c-{i}"),
        )
        await wait_instances(app, "fulfilled", fulfil, timeout=3600)
        elapsed = time.perf_counter() - began
        print(f"     awaited events evaluated/s {fulfil / elapsed:>9.0f}   ({fulfil} fulfilled)")
        print(f"     RSS now                   {rss_now_mb():>10.0f} MB   (peak {rss_mb():.0f} MB)")

    if args.violations:
        vdb = f"sqlite:///{os.path.join(directory, 'violations.db')}"
        app, late = make_app(vdb, expect=timedelta(seconds=2), counted=counted, done=done)
        counted.update(violations=0, goal_violations=args.violations)
        done.clear()
        async with app:
            await pool(
                args.violations,
                500,
                lambda i: app.publish("purchase.completed", {"i": i}, correlationid=f"v-{i}"),
            )
            await asyncio.wait_for(done.wait(), 600)
        late.sort()
        print(f"  4. {args.violations} deadlines passing with no further event")
        print(f"     violation after deadline p50 {pct(late, 0.5) * 1000:>7.0f} ms")
        print(f"     violation after deadline p99 {pct(late, 0.99) * 1000:>7.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000, help="open instances to build")
    parser.add_argument("-n", type=int, default=20_000, help="events per bus measurement")
    parser.add_argument("--violations", type=int, default=2_000, help="deadlines to pass")
    parser.add_argument("--dir", default=None, help="where the SQLite files go (temp)")
    args = parser.parse_args()
    # One warning per violation is what an operator wants, not what a benchmark prints.
    logging.getLogger("legato.bus.expectations").setLevel(logging.ERROR)
    directory = args.dir or tempfile.mkdtemp(prefix="legato-bench-expect-")
    print(f"expectations python={sys.version.split()[0]} sqlite (synchronous=full) in {directory}")
    asyncio.run(run(args, directory))


if __name__ == "__main__":
    main()
