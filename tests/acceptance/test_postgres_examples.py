"""The same examples and the same CLI, unchanged, on PostgreSQL: only the URL differs.

Each test migrates a schema of its own on the test server (``legato db migrate``), then
runs what a user runs on SQLite: the course-purchase example, the choreographed demo with
its expectation, and a worker driven through the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import legato
from tests.acceptance.cli_driver import REPO_ROOT, Cli, Workers, purchase
from tests.fixtures.db import postgres_url

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def pg_cli() -> Cli:
    """The CLI on a fresh, migrated PostgreSQL schema."""
    cli = Cli(postgres_url())
    assert "migrated" in cli.ok("db", "migrate")
    return cli


def run_module(cli: Cli, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEGATO_DATABASE_URL": cli.database, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_course_purchase_example_runs_unchanged_on_postgres(
    pg_cli: Cli, tmp_path: Path
) -> None:
    done = run_module(pg_cli, tmp_path, str(REPO_ROOT / "examples" / "course_purchase" / "main.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed -> {'payment_id': 'pay-0001'}" in done.stdout
    assert "gateway calls: 3, payments taken: 2" in done.stdout
    runs = orjson.loads(pg_cli.ok("runs", "list", "--json"))
    assert sorted(r["status"] for r in runs) == ["compensated", "completed"]
    assert list(tmp_path.iterdir()) == []  # no SQLite file made on the side


def test_the_choreographed_demo_notices_on_postgres(pg_cli: Cli, tmp_path: Path) -> None:
    module = "examples.course_purchase.choreographed"
    done = run_module(pg_cli, tmp_path, "-m", module, "--enrollment-down", "--deadline", "1.5")
    assert done.returncode == 0, done.stdout + done.stderr
    for shown in (
        "-> enrollment.grant: dead after 3 attempts (EnrollmentServiceDown)",
        "expectation paid-learner-is-enrolled: violated",
        "-> completed: {'outcome': 'refunded', 'payment_id': 'pay-0001'}",
    ):
        assert shown in done.stdout, done.stdout
    violated = orjson.loads(pg_cli.ok("expectations", "list", "--status", "violated", "--json"))
    assert [e["expectation"] for e in violated] == ["paid-learner-is-enrolled"]
    kinds = {a["kind"] for a in orjson.loads(pg_cli.ok("alerts", "list", "--json"))}
    assert {"expectation_violated", "dead_letter"} <= kinds


def test_a_worker_and_the_cli_on_postgres(pg_cli: Cli, tmp_path: Path) -> None:
    workers = Workers(pg_cli, tmp_path)
    try:
        workers.start()
        workers.start()  # two workers share the runs
        pg_cli.ok(
            "start",
            "purchase_course",
            "--input",
            orjson.dumps(purchase(1)).decode(),
            "--run-id",
            "purchase-p-1",
        )
        full = purchase(2, course="rust-301")
        pg_cli.ok(
            "start",
            "purchase_course",
            "--input",
            orjson.dumps(full).decode(),
            "--run-id",
            "purchase-p-2",
        )
        pg_cli.wait_for_status("purchase-p-1", {"completed"})
        pg_cli.wait_for_status("purchase-p-2", {"compensated"})
        shown = pg_cli.ok("runs", "show", "purchase-p-2")
        assert "compensated" in shown and "enroll" in shown
        events = orjson.loads(pg_cli.ok("events", "list", "--json"))
        assert [e["event"]["type"] for e in events] == ["purchase.completed"]
        flow = pg_cli.ok("flows", "show", "purchase-p-1")
        assert "purchase.completed" in flow and "send_receipt" in flow
        listed = orjson.loads(pg_cli.ok("workers", "list", "--json"))
        assert len(listed) == 2
        with legato.Client(pg_cli.database) as client:
            assert client.result("purchase-p-1", timeout=10) == {"payment_id": "pay-0001"}
    finally:
        workers.stop_all()


def test_the_demo_keeps_its_runs_on_postgres_when_given_the_database(pg_cli: Cli) -> None:
    out = pg_cli.ok("demo", "--database", pg_cli.database)

    assert out.count("compensated") >= 1, out
    runs = orjson.loads(pg_cli.ok("runs", "list", "--json"))
    assert sorted(run["status"] for run in runs) == ["compensated", "completed"]
