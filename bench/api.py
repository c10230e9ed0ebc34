"""The HTTP API under load: ``legato server`` on SQLite or PostgreSQL, called over HTTP.

    python bench/api.py [--database URL] [--runs 100000] [--starts 5000] [--clients 50]

Seeds ``--runs`` runs (a tenth failed) and one run whose history holds over 1,000
records (a workflow of 1,000 steps, executed), starts ``legato server`` as its own
process, then measures from this one:

- describe that run (``GET /api/runs/{id}``): p50/p99 over 200 sequential requests;
- list runs filtered by status (``GET /api/runs?status=failed``, a page of 50, and the
  next page by cursor): p50/p99 over 200;
- the console's run list page (``/console/runs?status=failed``, signed in), its live
  refresh, and the page of the long run: p50/p99;
- ``POST /api/runs`` from ``--clients`` concurrent connections: starts/s and p50/p99,
  driven by ``wrk`` (Debian's package) when it is installed: a Python client (httpx)
  tops out below the server, and would measure itself.

``--server-workers N`` runs ``legato server --workers N``.

Targets (issue 11): describe <= 50 ms p99, list <= 200 ms p99, the console's run list
page <= 300 ms p99, >= 2,000 starts/s with 50
clients. The server, the database and this process share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from _common import pct
from _workers import fresh_schema_url, legato_command

import legato
from legato.storage import open_store
from legato.storage.base import NewRun

STEPS = 1000


def long_app(url: str) -> legato.App:
    app = legato.App("bench-api", url)

    @app.step(name="tick")
    async def tick(i: int) -> int:
        return i

    @app.workflow(name="long")
    async def long() -> int:
        total = 0
        for i in range(STEPS):
            total += await tick(i)
        return total

    return app


async def seed(url: str, runs: int) -> str:
    """``runs`` runs, and one with a long history; returns the long one's id."""
    app = long_app(url)
    async with app:
        handle = await app.start("long", run_id="long-history")
        await handle.result(timeout=300)
    store = open_store(url)
    await store.open()
    try:
        now = time.time() - runs
        for start in range(0, runs, 2000):
            await store.write(
                [
                    NewRun(
                        f"seeded-{i:06d}",
                        "purchase_course",
                        "failed" if i % 10 == 3 else "completed",
                        orjson.dumps([{"id": i}]),
                        now + i,
                        None,
                        None,
                    )
                    for i in range(start, min(runs, start + 2000))
                ]
            )
        records = len(await store.history("long-history"))
    finally:
        await store.close()
    print(f"seeded {runs:,} runs and one with {records:,} history records")
    return "long-history"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(client: httpx.Client, path: str, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        answer = client.get(path, headers=headers)
        out.append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.text
    return sorted(out)


async def starts(base: str, n: int, clients: int, headers: dict[str, str]) -> None:
    latencies: list[float] = []
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:

        async def one_client() -> None:
            for i in counter:
                body = {"workflow": "purchase_course", "input": {"id": i}, "run_id": f"api-{i}"}
                began = time.perf_counter()
                answer = await http.post("/api/runs", json=body)
                latencies.append(time.perf_counter() - began)
                assert answer.status_code == 201, answer.text

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        took = time.perf_counter() - began
    latencies.sort()
    print(
        f"POST /api/runs, {clients} clients: {n / took:,.0f} starts/s; "
        f"p50 {pct(latencies, 0.5) * 1000:.1f} ms, p99 {pct(latencies, 0.99) * 1000:.1f} ms"
    )


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"workflow":"purchase_course","input":{"id":1},"run_id":"wrk-' ..
    math.random(1, 1000000000) .. '-' .. counter .. '"}'
  return wrk.format("POST", "/api/runs", {["Content-Type"] = "application/json",
    ["Authorization"] = "AUTH"}, body)
end
"""


def starts_with_wrk(base: str, clients: int, seconds: int, auth: str) -> None:
    script = Path(tempfile.mkdtemp(prefix="legato-bench-wrk-")) / "post.lua"
    script.write_text(WRK_SCRIPT.replace("AUTH", auth))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "-s", str(script), "--latency", base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    p50 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("50%"))
    p99 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("99%"))
    bad = [line.strip() for line in out.splitlines() if "Non-2xx" in line]
    print(
        f"POST /api/runs, {clients} connections (wrk, {seconds}s): {float(rate):,.0f} starts/s; "
        f"p50 {p50}, p99 {p99}" + (f"; {bad[0]}" if bad else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a postgresql:// URL (default: a SQLite file)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10, help="of wrk's load")
    parser.add_argument("--server-workers", type=int, default=1)
    args = parser.parse_args()
    if args.database:
        url = fresh_schema_url(args.database)
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='legato-bench-api-')) / 'api.db'}"
    long_id = asyncio.run(seed(url, args.runs))
    with legato.Client(url) as admin:
        headers = {"Authorization": f"Bearer {admin.create_token('bench', 'operate').secret}"}

    port = free_port()
    server = subprocess.Popen(
        [
            *legato_command(),
            "server",
            "--database",
            url,
            "--port",
            str(port),
            "--workers",
            str(args.server_workers),
        ],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base) as http:
            for _ in range(200):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            timed(http, f"/api/runs/{long_id}", 20, headers)  # warm up
            described = timed(http, f"/api/runs/{long_id}", 200, headers)
            print(
                f"describe a run of {STEPS} steps: p50 {pct(described, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(described, 0.99) * 1000:.1f} ms"
            )
            listed = timed(http, "/api/runs?status=failed&limit=50", 200, headers)
            cursor = http.get("/api/runs?status=failed&limit=50", headers=headers).json()
            paged = timed(
                http,
                f"/api/runs?status=failed&limit=50&cursor={cursor['next_cursor']}",
                200,
                headers,
            )
            print(
                f"list {args.runs:,} runs by status, a page of 50: "
                f"p50 {pct(listed, 0.5) * 1000:.1f} ms, p99 {pct(listed, 0.99) * 1000:.1f} ms; "
                f"the next page by cursor: p50 {pct(paged, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(paged, 0.99) * 1000:.1f} ms"
            )
            # The console's run list, as a signed-in browser asks for it (session cookie).
            secret = headers["Authorization"].removeprefix("Bearer ")
            cookies = {"legato_session": secret}
            http.cookies.update(cookies)
            timed(http, "/console/runs?status=failed", 10, {})  # warm up
            page = timed(http, "/console/runs?status=failed", 200, {})
            table = timed(http, "/console/runs/table?status=failed", 200, {})
            run_page = timed(http, f"/console/runs/{long_id}", 50, {})
            print(
                f"console run list (failed, 50 rows): p50 {pct(page, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(page, 0.99) * 1000:.1f} ms; its live refresh: "
                f"p99 {pct(table, 0.99) * 1000:.1f} ms; the page of the run of {STEPS} steps: "
                f"p50 {pct(run_page, 0.5) * 1000:.1f} ms, p99 {pct(run_page, 0.99) * 1000:.1f} ms"
            )
            http.cookies.clear()
        if shutil.which("wrk"):
            starts_with_wrk(base, args.clients, args.seconds, headers["Authorization"])
        else:
            print("wrk is not installed (apt-get install wrk): the Python client's figure")
            asyncio.run(starts(base, args.starts, args.clients, headers))
    finally:
        server.terminate()
        server.wait(10)
    print(f"database: {url.split('?')[0] if url.startswith('postgres') else 'SQLite'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
