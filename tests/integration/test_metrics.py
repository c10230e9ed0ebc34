"""Prometheus metrics, /healthz and /readyz of a worker: after a known workload the
counters and histograms hold the known counts; probes answer over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from tests.fixtures.db import fresh_database

import legato
from legato.observability.http import ObservabilityServer
from legato.observability.metrics import METRICS, Metrics
from legato.testing import FakeClock

RETRY = legato.Retry(max_attempts=3, initial_interval=timedelta(seconds=1), jitter=False)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_after_a_known_workload_equal_the_known_counts(tmp_path: Path) -> None:
    clock = FakeClock()
    metrics = Metrics()
    app = legato.App("shop", fresh_database(tmp_path, "shop.db"), clock=clock, hooks=[metrics])
    flaky = {"n": 0}

    @app.step(retry=RETRY)
    async def charge(order: int) -> str:
        flaky["n"] += 1
        if flaky["n"] == 1:
            raise ConnectionError("gateway timeout")  # once: one retry
        return f"ch-{order}"

    @charge.compensate
    async def refund(order: int, charge_id: str) -> None:
        pass

    @app.step(retry=legato.Retry(max_attempts=1))
    async def ship(order: int) -> str:
        if order == 3:
            raise RuntimeError("no stock")
        return "shipped"

    @app.workflow
    async def purchase(order: int) -> str:
        await charge(order)
        return await ship(order)

    @app.on("order.placed", name="receipt")
    async def receipt(event: legato.Event) -> None:
        pass

    @app.on("order.placed", name="ledger", retry=legato.Retry(max_attempts=1))
    async def ledger(event: legato.Event) -> None:
        raise RuntimeError("ledger down")

    server = ObservabilityServer(metrics).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert (await asyncio.to_thread(get, f"{base}/healthz"))[0] == 503  # not started
        async with app:
            handles = [await app.start(purchase, i) for i in (1, 2, 3)]
            await clock.advance(timedelta(seconds=2))  # the retry's wait
            outcomes = [h for h in handles if (await app.get_run(h.run_id)).status.is_terminal]
            assert len(outcomes) == 3
            for i in range(2):
                await app.publish("order.placed", {"i": i})
            await clock.settle()

            status, text = await asyncio.to_thread(get, f"{base}/metrics")
            assert status == 200
            found = samples(text)
            assert (await asyncio.to_thread(get, f"{base}/healthz"))[0] == 200
            assert (await asyncio.to_thread(get, f"{base}/readyz")) == (200, "ok\n")
        assert (await asyncio.to_thread(get, f"{base}/healthz"))[0] == 503  # stopped
    finally:
        server.stop()

    wf = "test_counters_after_a_known_workload_equal_the_known_counts.<locals>.purchase"
    assert value(found, "legato_runs_started_total", workflow=wf) == 3
    assert value(found, "legato_runs_ended_total", workflow=wf, status="completed") == 2
    assert value(found, "legato_runs_ended_total", workflow=wf, status="compensated") == 1
    charge_name = next(n for n in app.registry.steps if n.endswith("charge"))
    ship_name = next(n for n in app.registry.steps if n.endswith("ship"))
    assert value(found, "legato_step_retries_total", workflow=wf, step=charge_name) == 1
    assert value(found, "legato_step_failures_total", workflow=wf, step=charge_name) == 1
    assert value(found, "legato_step_failures_total", workflow=wf, step=ship_name) == 1
    assert (
        value(
            found,
            "legato_step_duration_seconds_count",
            workflow=wf,
            step=charge_name,
            outcome="completed",
        )
        == 3
    )
    assert (
        value(
            found, "legato_compensations_total", workflow=wf, step=charge_name, outcome="completed"
        )
        == 1
    )
    assert value(found, "legato_deliveries_total", subscription="receipt", outcome="done") == 2
    assert value(found, "legato_deliveries_total", subscription="ledger", outcome="dead") == 2
    assert value(found, "legato_dead_letters_total", subscription="ledger") == 2
    assert value(found, "legato_delivery_lag_seconds_count", subscription="receipt") == 2
    # Gauges, read from the database at the scrape.
    assert value(found, "legato_runs", status="completed") == 2
    assert value(found, "legato_runs", status="compensated") == 1
    assert value(found, "legato_deliveries", subscription="ledger", status="dead") == 2
    assert value(found, "legato_up") == 1
    # Every documented metric exists in the output (a counter's family without _total).
    families = {f.name for f in text_string_to_metric_families(text)}
    for name in METRICS:
        assert name.removesuffix("_total") in families, name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_legato_worker_serves_metrics_and_probes_and_logs_json(tmp_path: Path) -> None:
    app_file = tmp_path / "shop.py"
    app_file.write_text(
        "import legato\napp = legato.App('shop')\n\n"
        "@app.workflow\nasync def hello(name: str) -> str:\n    return f'hi {name}'\n"
    )
    database = fresh_database(tmp_path, "shop.db")
    port = free_port()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "legato",
            "worker",
            str(app_file),
            "--database",
            database,
            "--metrics-port",
            str(port),
            "--log-format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            assert worker.poll() is None and time.monotonic() < deadline, "no /readyz"
            time.sleep(0.1)
        with legato.Client(database) as client:
            run = client.start("hello", "ada")
            assert client.result(run.run_id, timeout=30) == "hi ada"
        status, text = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        found = samples(text)
        assert value(found, "legato_runs_ended_total", workflow="hello", status="completed") == 1
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    lines = [orjson.loads(line) for line in err.splitlines() if line.strip()]  # each is JSON
    assert any(f"metrics on http://127.0.0.1:{port}/metrics" in r["message"] for r in lines)
    [started] = [r for r in lines if r["message"].endswith("(hello) started")]
    assert started["run_id"] == run.run_id and started["workflow"] == "hello"
    assert started["level"] == "INFO" and started["logger"] == "legato.engine.execution"
