"""Benchmark: SIGKILL one of two workers holding 1,000 in-flight runs; how long until
every orphaned run is resumed by the other.

    python bench/failover.py --database postgresql://postgres@127.0.0.1/test
    python bench/failover.py --database postgresql://postgres@127.0.0.1/test --lease 2
    python bench/failover.py --database postgresql://postgres@127.0.0.1/test --same-host

The victim runs in a pid namespace of its own (``unshare --pid``, root only), as a worker
on another machine would be: its pid tells the survivor nothing, and only the lease
decides (``--lease``, default 15 s, both workers). With ``--same-host`` it shares the
survivor's namespace, and the survivor sees at once that its process is gone.

Prints the time from the kill to the last orphaned run claimed by the survivor
(resumed), and to the last of them completed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time

import legato

app = legato.App("failover")


@app.step
async def hold(order: int) -> int:
    if os.environ.get("FAILOVER_HOLD"):  # the victim: in flight until it is killed
        await asyncio.sleep(3600)
    return order


@app.workflow(name="held")
async def held(order: int) -> int:
    return await hold(order)


async def owners(client: legato.AsyncClient, n: int) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for status in ("pending", "running"):
        for run in await client.list_runs(status=status, limit=n + 1, payloads=False):
            counts[run.owner] = counts.get(run.owner, 0) + 1
    return counts


async def bench(database: str, n: int, lease: float, same_host: bool) -> dict[str, float]:
    from _workers import Workers

    args = ("--lease", str(lease), "--concurrency", str(n + 100))
    victim = Workers("failover.py:app", database, 0, *args, env={"FAILOVER_HOLD": "1"})
    survivor = Workers("failover.py:app", database, 1, *args)
    prefix = None if same_host else ["unshare", "--pid", "--fork", "--kill-child"]
    async with legato.AsyncClient(database) as client:
        with victim:
            victim.start(1, prefix=prefix)
            while not await client.list_workers():
                victim.check()
                await asyncio.sleep(0.05)
            [victim_row] = await client.list_workers()
            await asyncio.gather(*(client.start("held", i, run_id=f"f{i}") for i in range(n)))
            while (await owners(client, n)).get(victim_row.worker_id, 0) < n:
                victim.check()
                await asyncio.sleep(0.05)
            with survivor:
                while len(await client.list_workers()) < 2:
                    survivor.check()
                    await asyncio.sleep(0.05)
                survivor_id = next(
                    w.worker_id
                    for w in await client.list_workers()
                    if w.worker_id != victim_row.worker_id
                )
                killed = time.monotonic()
                victim.procs[0].send_signal(signal.SIGKILL)
                victim.procs[0].wait()
                resumed = done = None
                while done is None:
                    held_by = await owners(client, n)
                    if (
                        resumed is None
                        and held_by.get(victim_row.worker_id, 0) == 0
                        and (held_by.get(survivor_id, 0) > 0 or not held_by)
                    ):
                        # Claimed by the survivor (or finished already): none names the victim.
                        resumed = time.monotonic() - killed
                    completed = await client.list_runs(
                        status="completed", limit=n + 1, payloads=False
                    )
                    if len(completed) >= n:
                        done = time.monotonic() - killed
                        resumed = resumed if resumed is not None else done
                    else:
                        await asyncio.sleep(0.01)
    return {"resumed_s": resumed, "completed_s": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--same-host", action="store_true")
    args = parser.parse_args()
    if not args.same_host and (os.geteuid() != 0 or not shutil.which("unshare")):
        raise SystemExit("the victim's own pid namespace needs root and unshare; or --same-host")
    from _workers import fresh_schema_url

    database = fresh_schema_url(args.database)
    result = asyncio.run(bench(database, args.n, args.lease, args.same_host))
    where = "same host (pid gone)" if args.same_host else "own pid namespace (lease decides)"
    print(
        f"failover n={args.n} lease={args.lease:g}s victim={where} python={sys.version.split()[0]}"
    )
    print(f"  kill -> last orphan resumed   {result['resumed_s']:>8.2f} s")
    print(f"  kill -> last orphan completed {result['completed_s']:>8.2f} s")


if __name__ == "__main__":
    main()
