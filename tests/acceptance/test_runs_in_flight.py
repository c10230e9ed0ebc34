"""``runs show`` and ``cancel`` on a run whose step is in flight on a worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.cli_driver import Cli, Workers
from tests.fixtures.db import fresh_database

GATED_APP = "tests.acceptance.gated_app:app"


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A database served by one worker of the gated test app."""
    directory = tmp_path_factory.mktemp("gated")
    cli = Cli(fresh_database(directory))
    started = Workers(cli, directory)
    try:
        started.start(GATED_APP)
        yield cli
    finally:
        started.stop_all()


def start_at_gate(cli: Cli, run_id: str, gate: Path) -> dict[str, Any]:
    """Start a gated order and wait until it waits at the gate; return its description."""
    order = {"id": run_id, "gate": str(gate)}
    cli.ok("start", "gated_order", "--input", orjson.dumps(order).decode(), "--run-id", run_id)
    deadline = time.monotonic() + 30
    while True:
        shown: dict[str, Any] = cli.json("runs", "show", run_id)
        if shown["current_step"] == "wait_at_gate":
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


def test_show_names_the_step_in_flight_and_its_attempt(gated: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate-1"

    shown = start_at_gate(gated, "order-1", gate)
    text = gated.ok("runs", "show", "order-1")
    listed = gated.json("runs", "list", "--status", "running")

    assert shown["status"] == "running"
    assert shown["attempt"] == 1
    assert shown["completed_steps"] == ["reserve"]
    assert shown["next"].startswith("finish step 'wait_at_gate' (attempt 1)")
    assert "wait_at_gate (attempt 1)" in text
    assert any(r["run_id"] == "order-1" and r["current_step"] == "wait_at_gate" for r in listed)

    gate.touch()
    assert gated.wait_for_status("order-1")["status"] == "completed"


def test_cancel_interrupts_the_step_in_flight_and_compensates_completed_ones(
    gated: Cli, tmp_path: Path
) -> None:
    gate = tmp_path / "gate-2"
    start_at_gate(gated, "order-2", gate)

    requested_at = time.monotonic()
    out = gated.ok("cancel", "order-2")

    assert "cancellation of run order-2 requested" in out
    # The worker (another process) sees the request at its next poll and interrupts
    # wait_at_gate, which would otherwise wait up to its 60 s timeout: the gate is never
    # opened here.
    shown = gated.wait_for_status("order-2")
    took = time.monotonic() - requested_at
    assert shown["status"] == "cancelled"
    assert took < 10, f"cancel took {took:.1f}s"
    assert shown["compensations_done"] == ["reserve"]
    assert gate.with_suffix(".released").read_text() == "reservation-order-2"
    # The interrupted step never completed, so nothing compensates it.
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps["wait_at_gate"]["status"] == "interrupted"
    assert steps["wait_at_gate"]["compensation"] is None
