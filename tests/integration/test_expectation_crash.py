"""Expectation deadlines under real crashes: a worker SIGKILLed as it is about to write a
violation, or right after the violation committed, is restarted; there is exactly one
``legato.expectation.violated`` event and one run of the workflow it starts, which
completes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.fixtures.db import fresh_database

import legato
from legato.bus.expectations import VIOLATED
from legato.model.expectations import ExpectationStatus
from legato.testing import WorkerProcess

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.integration.expect_app:app"
NAME = "paid-learner-is-enrolled"


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("point", ["before_violation", "after_violation"])
def test_a_violation_happens_exactly_once_across_a_crash(tmp_path: Path, point: str) -> None:
    url = fresh_database(tmp_path)
    crashing = WorkerProcess(TARGET, url, crash_at=f"{point}:{NAME}", cwd=str(REPO_ROOT))
    with legato.Client(url) as client, crashing as worker:
        worker.wait_ready("refund_or_enroll")
        client.publish("purchase.completed", {"id": 1}, correlationid="order-1")
        worker.wait_for_crash()  # the deadline passed a second later: killed there

        [inst] = client.list_expectations(name=NAME)
        violations = client.list_events(type=VIOLATED)
        runs = client.list_runs(workflow="refund_or_enroll")
        if point == "before_violation":  # nothing of it was written
            assert inst.status is ExpectationStatus.OPEN
            assert violations == [] and runs == []
        else:  # all of it was: the status, the event and the run, not yet executed
            assert inst.status is ExpectationStatus.VIOLATED
            assert len(violations) == 1 and len(runs) == 1
            assert runs[0].status is not legato.RunStatus.COMPLETED

        worker.restart()
        wait_for(
            lambda: (
                [r.status for r in client.list_runs(workflow="refund_or_enroll")]
                == [legato.RunStatus.COMPLETED]
            ),
            "the started run to complete",
        )
        time.sleep(0.3)  # several more upkeep passes: nothing more may fire
        [violation] = client.list_events(type=VIOLATED)
        [run] = client.list_runs(workflow="refund_or_enroll")
        [inst] = client.list_expectations(name=NAME)
        assert inst.status is ExpectationStatus.VIOLATED
        assert inst.violation_id == violation.event.id
        assert client.result(run.run_id) == "refunded order-1"
        assert run.correlation == "order-1"
