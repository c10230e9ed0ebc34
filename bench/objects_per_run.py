"""Diagnostic: GC-tracked objects held per live run (a proxy for the collector's work).

    python bench/objects_per_run.py -n 5000

Starts N runs of a 2-step workflow whose second step waits, counts the objects the
garbage collector tracks, by type, and prints the count per live run. At 7c8dc5b this
was 52; at ad2ed7b 63. Fewer objects per run means less GC time at 10k runs in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc

import legato


async def measure(n: int) -> None:
    app = legato.App("objects", "memory://")
    gate = asyncio.Event()

    @app.step(name="first")
    async def first(x: int) -> int:
        return x

    @app.step(name="held")
    async def held(x: int) -> int:
        await gate.wait()
        return x

    @app.workflow(name="wf")
    async def wf(x: int) -> int:
        await first(x)
        return await held(x)

    async with app:
        gc.collect()
        before = collections.Counter(type(o).__name__ for o in gc.get_objects())
        handles = [await app.start(wf, i) for i in range(n)]
        waiters = [asyncio.ensure_future(h.result()) for h in handles]
        for _ in range(50):
            await asyncio.sleep(0)
        gc.collect()
        after = collections.Counter(type(o).__name__ for o in gc.get_objects())
        diff = after - before
        print(f"objects per live run {sum(diff.values()) / n:.1f}  (n={n})")
        print("  " + ", ".join(f"{k}={v / n:.1f}" for k, v in diff.most_common(14)))
        gate.set()
        await asyncio.gather(*waiters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    asyncio.run(measure(parser.parse_args().n))


if __name__ == "__main__":
    main()
