"""OpenTelemetry: one trace from the start of a hybrid course purchase to every reaction it
caused — across the starting process, a worker SIGKILLed mid-run and the worker that
recovered it — with a retried delivery; consumer spans link to their producer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database
from tests.integration.otel_app import FAILED_ONCE_ENV, SPANS_ENV

import legato
from legato.testing import WorkerProcess

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.integration.otel_app:app"


def test_one_trace_from_the_start_to_every_reaction_across_a_crash(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    database = fresh_database(tmp_path, "school.db")
    env = {SPANS_ENV: str(spans_file), FAILED_ONCE_ENV: str(tmp_path / "failed-once")}
    with legato.Client(database) as client:
        client.list_runs()  # creates the schema
    worker = WorkerProcess(
        TARGET, database, crash_at="after_step:create_enrollment", cwd=str(REPO_ROOT), env=env
    )
    with worker:
        worker.wait_ready("purchase")
        subprocess.run(
            [sys.executable, "-m", "tests.integration.otel_app", "start", database],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            check=True,
            timeout=60,
            capture_output=True,
        )
        worker.wait_for_crash()
        worker.restart()
        with legato.Client(database) as client:
            assert client.result("purchase-7", timeout=60) == "pay-7"
            deadline = time.monotonic() + 30
            while len(client.list_deliveries(status="done")) < 3:
                assert time.monotonic() < deadline, "the three reactions did not finish"
                time.sleep(0.05)
        time.sleep(0.2)  # the last spans end as their deliveries settle
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    names = [s["name"] for s in spans]

    # One trace holds all of it.
    assert len({s["trace_id"] for s in spans}) == 1, {s["name"]: s["trace_id"] for s in spans}
    by_id = {s["span_id"]: s for s in spans}
    [start] = [s for s in spans if s["name"] == "start purchase"]
    assert start["parent_id"] is None
    # Two executions of the run: the one killed (its span never ended: not exported) and
    # the one that recovered it, a child of the run's stored context.
    runs = [s for s in spans if s["name"] == "run purchase"]
    assert runs and all(r["parent_id"] == start["span_id"] for r in runs)
    assert len({r["pid"] for r in spans if r["name"].startswith("step ")}) == 2  # two workers
    steps = [s["name"] for s in spans if s["name"].startswith("step ")]
    assert "step authorize_payment" in " ".join(steps) or any(
        "authorize_payment" in n for n in steps
    )
    assert any("grant_access" in n for n in steps)
    [publish] = [s for s in spans if s["name"] == "publish purchase.completed"]
    assert publish["kind"] == "PRODUCER"
    assert by_id[publish["parent_id"]]["name"] == "run purchase"
    consumers = [s for s in spans if s["name"] == "process purchase.completed"]
    groups = sorted(s["attributes"]["messaging.consumer.group.name"] for s in consumers)
    # record_conversion failed once and was retried: two consumer spans.
    assert groups == [
        "record_conversion",
        "record_conversion",
        "refresh_recommendations",
        "send_receipt",
    ]
    for consumer in consumers:
        assert consumer["kind"] == "CONSUMER"
        assert consumer["parent_id"] == publish["span_id"]
        assert consumer["links"] == [publish["span_id"]]
    assert names.count("start purchase") == 1
