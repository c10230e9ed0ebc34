"""The README's quick start, run as a reader would: ``courses.py`` and ``main.py`` copied
from it into an empty directory, then ``python main.py`` there, twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.cli_driver import REPO_ROOT

pytestmark = pytest.mark.sqlite_only
"""The quick start is a reader's first minutes: the SQLite file its ``main.py`` names."""


def saved_as(readme: str, filename: str) -> str:
    """The first Python block after "Save this as `filename`" in the README."""
    marker = f"Save this as `{filename}`"
    assert marker in readme, f"the README no longer says {marker!r}"
    block = re.search(r"```python\n(.*?)```", readme[readme.index(marker) :], re.DOTALL)
    assert block is not None, f"no Python block after {marker!r}"
    return block.group(1)


@pytest.fixture
def quick_start(tmp_path: Path) -> Path:
    """An empty directory holding the README's ``courses.py`` and ``main.py``."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for filename in ("courses.py", "main.py"):
        (tmp_path / filename).write_text(saved_as(readme, filename), encoding="utf-8")
    return tmp_path


def run_main(directory: Path) -> str:
    """``python main.py`` in ``directory`` on its default database; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_quick_start_completes_one_purchase_refunds_the_other_and_sends_one_receipt(
    quick_start: Path,
) -> None:
    out = run_main(quick_start)

    assert "{'payment_id': 'pay-p-1'}" in out
    assert "refunded pay-p-2" in out
    assert "compensated courses.CourseFull" in out
    # Only the completed purchase published purchase.completed: one receipt, for p-1.
    assert [line for line in out.splitlines() if line.startswith("receipt for")] == [
        "receipt for p-1"
    ]
    assert (quick_start / "legato.db").exists()


def test_quick_start_run_again_returns_the_same_runs_and_sends_no_second_receipt(
    quick_start: Path,
) -> None:
    run_main(quick_start)

    again = run_main(quick_start)

    assert "{'payment_id': 'pay-p-1'}" in again
    assert "compensated courses.CourseFull" in again
    assert "receipt for" not in again
    assert "refunded" not in again


def test_who_notices_runs_as_the_readme_says(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (tmp_path / "who_notices.py").write_text(saved_as(readme, "who_notices.py"), encoding="utf-8")
    printed = re.search(r"It prints:\n\n```text\n(.*?)```", readme, re.DOTALL)
    assert printed is not None, "the README no longer shows what who_notices.py prints"
    result = subprocess.run(
        [sys.executable, "who_notices.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed.group(1)
