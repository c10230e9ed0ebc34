"""Regenerate the README's diagrams from the running code, not by hand.

    python examples/payment_inventory_notification/diagrams.py        # from the repository root

Runs the out-of-stock order through each variant on a temporary database, asks
``legato flows show CORRELATION_ID --mermaid`` for the flow it left behind, and writes
each chart into README.md between ``<!-- diagram: NAME -->`` and ``<!-- /diagram -->``.
``--check`` writes nothing and fails if the README is out of date.

The choreography's chart shows when its expectation closed, so it runs on a fixed clock
(``CLOCK_START``) and the chart is drawn in UTC: the same chart on every run, anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

if not __package__:
    # Run as a file: make `examples.payment_inventory_notification` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.payment_inventory_notification import choreographed, orchestrated
from examples.payment_inventory_notification.main import run_choreographed, run_orchestrated
from examples.payment_inventory_notification.services import OUT_OF_STOCK_ORDER, Shop

import legato
from legato.testing import FakeClock

CLOCK_START = datetime(2026, 12, 1, 10, 26, 19, tzinfo=UTC)
"""The choreography's clock: time stands still at this instant while it runs (nothing in
the out-of-stock flow waits for time to pass). In the past, so never today: the CLI
writes today's times without their date."""
README = Path(__file__).with_name("README.md")
# The console script installed with this Python (a virtualenv's bin/), else the one on PATH.
_BESIDE = Path(sys.executable).with_name("legato")
LEGATO = str(_BESIDE) if _BESIDE.exists() else shutil.which("legato") or "legato"
MARKER = re.compile(r"(<!-- diagram: (?P<name>[\w-]+) -->\n).*?(<!-- /diagram -->)", re.DOTALL)


async def run_variants(database: str) -> dict[str, str]:
    """Run the failure through each variant on ``database``; their correlation ids by name."""
    with contextlib.redirect_stdout(io.StringIO()):  # main.py's report is not wanted here
        shop = Shop()
        [saga] = await run_orchestrated(
            orchestrated.define(legato.App("orchestrated_shop", database), shop),
            shop,
            (OUT_OF_STOCK_ORDER,),
        )
        shop = Shop()
        [chain] = await run_choreographed(
            choreographed.define(
                legato.App("choreographed_shop", database, clock=FakeClock(CLOCK_START)), shop
            ),
            shop,
            (OUT_OF_STOCK_ORDER,),
        )
    return {"orchestrated": saga, "choreographed": chain}


def mermaid(database: str, correlation_id: str) -> str:
    """What ``legato flows show --mermaid`` prints for one flow."""
    shown = subprocess.run(
        [LEGATO, "flows", "show", correlation_id, "--mermaid", "--database", database],
        env={**os.environ, "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


def with_diagrams(readme: str, charts: dict[str, str]) -> str:
    """``readme`` with each marked block replaced by its chart, in a mermaid fence."""

    def replace(match: re.Match[str]) -> str:
        chart = charts[match["name"]]
        return f"{match[1]}```mermaid\n{chart}\n```\n{match[3]}"

    return MARKER.sub(replace, readme)


def main(check: bool) -> int:
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{Path(directory) / 'diagrams.db'}"
        flows = asyncio.run(run_variants(database))
        charts = {name: mermaid(database, flow) for name, flow in flows.items()}
    before = README.read_text()
    after = with_diagrams(before, charts)
    if check:
        if after != before:
            print(f"{README} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    README.write_text(after)
    print(f"wrote {', '.join(charts)} into {README}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    sys.exit(main(parser.parse_args().check))
