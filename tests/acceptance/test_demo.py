"""``legato demo``: both paths of the course purchase, in one command, in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import legato
from tests.acceptance.cli_driver import REPO_ROOT, Cli, sqlite_url

pytestmark = pytest.mark.sqlite_only
"""The demo runs on a temporary SQLite file of its own, whatever database is configured
(``--database`` on PostgreSQL: tests/acceptance/test_postgres_examples.py)."""


def test_demo_shows_completed_and_compensated_runs(cli: Cli) -> None:
    started = time.monotonic()
    result = cli.run("demo")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "purchase-p-1001" in out and "purchase-p-1002" in out
    assert "completed" in out and "compensated" in out
    # The failed run answers what step, what failed and what next.
    assert "create_enrollment failed" in out
    assert "CourseFull: course rust-301 is full" in out
    assert "next:" in out
    assert elapsed < 10, f"legato demo took {elapsed:.1f}s"


def test_demo_shows_each_subscriber_reacting_and_the_refunded_purchase_publishing_nothing(
    cli: Cli,
) -> None:
    out = cli.ok("demo")

    assert "purchase.completed" in out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") == 5}
    assert "done after 1 attempt" in rows["send_receipt"]
    assert "done after 1 attempt" in rows["record_conversion"]
    # Its first call failed: retried on its own, after the purchase had completed.
    assert "done after 2 attempts" in rows["refresh_recommendations"]
    assert "refresh_recommendations failed once and was retried" in out
    assert "when purchase-p-1001 had already completed" in out
    assert "purchase-p-1002 published nothing" in out


def test_demo_json_shows_refund_and_a_single_charge_per_purchase(cli: Cli) -> None:
    report = cli.json("demo")

    runs = {run["run_id"]: run for run in report["runs"]}
    happy, full = runs["purchase-p-1001"], runs["purchase-p-1002"]
    assert happy["status"] == "completed"
    assert happy["completed_steps"] == ["authorize_payment", "create_enrollment"]
    assert full["status"] == "compensated"
    assert full["compensations_done"] == ["authorize_payment"]
    assert full["last_error"]["type"].endswith("CourseFull")
    assert full["last_error"]["step"] == "create_enrollment"

    services = {row["purchase"]: row for row in report["services"]}
    # The gateway lost its first answer; the retry reused the step key: one charge.
    assert report["gateway_calls"] == 3
    assert len(services["p-1001"]["payments"]) == 1
    assert services["p-1001"]["enrolled"] is True
    assert [p["refunded"] for p in services["p-1002"]["payments"]] == [True]
    assert services["p-1002"]["enrolled"] is False


def test_demo_json_lists_the_deliveries_of_purchase_completed_and_no_event_for_the_refund(
    cli: Cli,
) -> None:
    report = cli.json("demo")

    reactions = {r["run_id"]: r["events"] for r in report["reactions"]}
    [completed] = reactions["purchase-p-1001"]
    assert completed["event"]["type"] == "purchase.completed"
    assert completed["event"]["subject"] == "p-1001"
    assert completed["run_id"] == "purchase-p-1001"
    deliveries = {d["subscription"]: d for d in completed["deliveries"]}
    assert {name: (d["status"], d["attempts"]) for name, d in deliveries.items()} == {
        "send_receipt": ("done", 1),
        "record_conversion": ("done", 1),
        "refresh_recommendations": ("done", 2),
    }
    # The refunded purchase never reached the publish: no event, so no reaction.
    assert reactions["purchase-p-1002"] == []
    runs = {run["run_id"]: run for run in report["runs"]}
    assert [p["type"] for p in runs["purchase-p-1001"]["published"]] == ["purchase.completed"]
    assert runs["purchase-p-1002"]["published"] == []


def test_demo_json_shows_what_the_observers_saw_one_email_and_one_conversion(cli: Cli) -> None:
    observers = cli.json("demo")["observers"]

    # One receipt, keyed by the delivery's idempotency key; one conversion counted.
    [receipt] = observers["receipts"]
    assert receipt["to"] == "ada"
    assert receipt["idempotency_key"].startswith("send_receipt:")
    assert observers["conversions"] == {"python-101": 1}
    assert observers["recommendations"]["refreshed"] == ["ada"]
    assert observers["recommendations"]["calls"] == 2


def test_demo_does_not_touch_the_configured_database(cli: Cli, tmp_path: Path) -> None:
    # LEGATO_DATABASE_URL points at cli.database: the demo still uses a temporary file.
    cli.ok("demo")

    assert not (tmp_path / "legato.db").exists()


def test_demo_runs_even_when_the_configured_database_url_is_unusable() -> None:
    assert Cli("postgres://elsewhere/db").ok("demo").count("compensated") >= 1


def test_demo_with_database_keeps_its_runs_for_inspection(cli: Cli, tmp_path: Path) -> None:
    kept = sqlite_url(tmp_path / "demo.db")

    cli.ok("demo", "--database", kept)

    runs = orjson.loads(cli.ok("runs", "list", "--json", "--database", kept))
    assert sorted(run["status"] for run in runs) == ["compensated", "completed"]


def installed_copy(tmp_path: Path) -> Path:
    """A copy of the legato package outside the checkout, as a wheel would install it."""
    site = tmp_path / "site-packages"
    shutil.copytree(
        Path(legato.__file__).parent, site / "legato", ignore=shutil.ignore_patterns("__pycache__")
    )
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``legato *args`` importing the copy at ``site`` (what the console script does)."""
    env = dict(os.environ, PYTHONPATH=str(site), COLUMNS="200")
    env.pop("LEGATO_DATABASE_URL", None)
    code = "from legato.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_outside_a_checkout_says_where_the_example_is(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = run_installed(site, elsewhere, "demo")

    assert result.returncode == 1
    assert "the course-purchase example is not next to this copy of legato" in result.stderr
    assert "source checkout" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_demo_of_an_installed_copy_finds_the_example_in_the_current_directory(
    tmp_path: Path,
) -> None:
    site = installed_copy(tmp_path)

    result = run_installed(site, REPO_ROOT, "demo", "--json")

    assert result.returncode == 0, result.stderr
    statuses = [run["status"] for run in orjson.loads(result.stdout)["runs"]]
    assert statuses == ["completed", "compensated"]
