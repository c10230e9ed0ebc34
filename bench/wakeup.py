"""Benchmark: how soon an idle cluster starts a run a client created (LISTEN/NOTIFY).

    python bench/wakeup.py --database postgresql://postgres@127.0.0.1/test

Two idle ``legato worker`` processes; a client starts one run at a time, with the
cluster idle in between, and the run's time from creation to completion (a one-step
workflow, read from the database) is measured, with wake-ups on and with ``notify=off``
(workers find the run at their next poll, every 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

import legato

app = legato.App("wakeup")


@app.step
async def greet(name: str) -> str:
    return f"hello {name}"


@app.workflow(name="hello")
async def hello(name: str) -> str:
    return await greet(name)


async def bench(database: str, n: int) -> list[float]:
    from _workers import Workers

    latencies = []
    with Workers("wakeup.py:app", database, 2) as procs:
        async with legato.AsyncClient(database) as client:
            while len(await client.list_workers()) < 2:
                procs.check()
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            for i in range(n):
                handle = await client.start("hello", f"n{i}", run_id=f"w{i}")
                await handle.result(timeout=10)
                stored = await client.get_run(f"w{i}")
                latencies.append(stored.updated_at.timestamp() - stored.created_at.timestamp())
                await asyncio.sleep(0.3)  # idle again: the workers wait for their next poll
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("-n", type=int, default=40)
    args = parser.parse_args()
    from _workers import fresh_schema_url

    print(f"wakeup n={args.n} workers=2 (idle between runs) python={sys.version.split()[0]}")
    for label, option in (("notify on ", ""), ("notify off", "notify=off")):
        base = args.database
        if option:
            base += ("&" if "?" in base else "?") + option
        database = fresh_schema_url(base)
        got = asyncio.run(bench(database, args.n))
        p99 = got[min(len(got) - 1, int(len(got) * 0.99))]
        print(
            f"  {label}  created -> completed  p50 {statistics.median(got) * 1000:6.1f} ms"
            f"   p99 {p99 * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
