"""A database written by the previous release (history format v1) still replays.

``fixtures/history-v1.db`` was made by ``make_history_v1.py`` with Legato as of commit
babe3db: one run parked at each kind of call (a timer, a signal wait, a human task, a
retry's backoff, a compensation's retry, a child run). Today's code opens a copy and
finishes every run, with the values the old runs recorded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import legato
from legato.testing import FakeClock
from tests.fixtures.engine import advance, outcome
from tests.migration.format_v1_app import FAIL_ENV, define

FIXTURE = Path(__file__).parent / "fixtures" / "history-v1.db"
MADE_AT = datetime(2030, 1, 1, tzinfo=UTC)  # the fixture's FakeClock


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[legato.App]:
    assert not os.environ.get(FAIL_ENV)
    database = tmp_path / "history-v1.db"
    shutil.copy(FIXTURE, database)
    app = legato.App("format-v1", f"sqlite:///{database}", clock=FakeClock(MADE_AT))
    define(app)
    async with app:
        yield app


async def test_every_parked_run_of_the_previous_format_finishes(app: legato.App) -> None:
    clock = app._clock
    assert isinstance(clock, FakeClock)
    before = {r.run_id: r.status.value for r in await app.list_runs()}
    assert before == {
        "done-1": "completed",
        "sleeper-1": "sleeping",
        "waiter-1": "waiting",
        "reviewer-1": "waiting",
        "retrier-1": "running",
        "saga-1": "compensating",
        "parent-1": "waiting",
        "kid-o-parent": "waiting",
    }

    await app.signal("waiter-1", "go", {"gate": 7})
    await app.complete_task("reviewer-1:1", {"approve": True})
    await app.signal("kid-o-parent", "kid-go", "hello")
    await advance(clock, timedelta(days=2))

    assert await app.result("waiter-1", timeout=10) == {
        "shipped": "o-waiter",
        "extra": {"gate": 7},
    }
    assert await app.result("reviewer-1", timeout=10) == {
        "shipped": "o-reviewer",
        "extra": {"approve": True},
    }
    assert await app.result("retrier-1", timeout=10) == "paid-o-retrier"
    assert await app.result("parent-1", timeout=10) == {"child said": "hello"}
    slept = await app.result("sleeper-1", timeout=10)
    history = await app.history("sleeper-1")
    [token] = [e.data["value"] for e in history if e.kind.value == "value" and e.name == "uuid"]
    assert slept == {
        "reservation": "res-o-sleeper",
        "stamp": MADE_AT.isoformat(),  # legato.now() as recorded by the old release
        "token": token,
        "shipped": "o-sleeper",
        "extra": None,
    }
    saga = await outcome(app.handle("saga-1"))
    assert isinstance(saga, legato.errors.RunFailed)
    assert saga.status == "compensated"
    assert (await app.describe("saga-1")).compensations_done == ["reserve"]


async def test_runs_of_the_previous_format_are_described(app: legato.App) -> None:
    done = await app.describe("done-1")
    assert done.completed_steps == ["ship"]
    retrier = await app.describe("retrier-1")
    [step] = retrier.steps
    assert (step.name, step.status, step.attempts) == ("flaky", "retrying", 1)
    assert retrier.next.startswith("retry step 'flaky' (attempt 2)")
    saga = await app.describe("saga-1")
    assert saga.compensations_pending == ["reserve"]
