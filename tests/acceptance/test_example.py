"""``python examples/course_purchase/main.py`` runs both paths on ./course_purchase.db."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.acceptance.cli_driver import REPO_ROOT, Cli, sqlite_url


def test_example_script_runs_both_paths_in_its_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    script = REPO_ROOT / "examples" / "course_purchase" / "main.py"

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "completed -> {'payment_id': 'pay-0001'}" in result.stdout
    assert "compensated (examples.course_purchase.services.CourseFull" in result.stdout
    # One payment per purchase although the gateway was called three times.
    assert "gateway calls: 3, payments taken: 2" in result.stdout
    runs = orjson.loads(
        Cli(sqlite_url(tmp_path / "course_purchase.db")).ok("runs", "list", "--json")
    )
    assert sorted(r["status"] for r in runs) == ["compensated", "completed"]
