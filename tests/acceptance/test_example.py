"""``python examples/course_purchase/main.py`` runs both paths on ./course_purchase.db."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.acceptance.cli_driver import REPO_ROOT, Cli, sqlite_url

pytestmark = pytest.mark.sqlite_only
"""About the script's own SQLite file in its working directory (the same script on
PostgreSQL: tests/acceptance/test_postgres_examples.py)."""


def run_example(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python examples/course_purchase/main.py`` in ``cwd``, without LEGATO_DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    script = REPO_ROOT / "examples" / "course_purchase" / "main.py"
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_script_runs_both_paths_in_its_working_directory(tmp_path: Path) -> None:
    result = run_example(tmp_path)

    assert result.returncode == 0, result.stderr
    assert "completed -> {'payment_id': 'pay-0001'}" in result.stdout
    assert "compensated (examples.course_purchase.services.CourseFull" in result.stdout
    # One payment per purchase although the gateway was called three times.
    assert "gateway calls: 3, payments taken: 2" in result.stdout
    runs = orjson.loads(
        Cli(sqlite_url(tmp_path / "course_purchase.db")).ok("runs", "list", "--json")
    )
    assert sorted(r["status"] for r in runs) == ["compensated", "completed"]


def test_example_script_prints_the_reactions_to_the_completed_purchase_only(
    tmp_path: Path,
) -> None:
    result = run_example(tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    completed = next(i for i, line in enumerate(lines) if "published purchase.completed" in line)
    deliveries = {
        line.split(":")[0].removeprefix("  -> "): line
        for line in lines[completed + 1 : completed + 4]
    }
    assert sorted(deliveries) == ["record_conversion", "refresh_recommendations", "send_receipt"]
    assert "done after 1 attempt" in deliveries["send_receipt"]
    # The recommendations service failed its first call; the delivery retried on its own.
    assert "done after 2 attempts" in deliveries["refresh_recommendations"]
    # The refunded purchase never reached the publish: nothing to react to.
    assert any(
        line.startswith("purchase-p-1002-") and "published nothing" in line for line in lines
    )
    assert "receipts sent: 1 (to ada), conversions: {'python-101': 1}" in result.stdout
