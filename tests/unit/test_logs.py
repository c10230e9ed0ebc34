"""Log records say which run, step, attempt and event they are about — Legato's own and
the user's, inside a step or a handler; ``JsonFormatter`` writes them one per line."""

from __future__ import annotations

import logging
from datetime import timedelta

import orjson
import pytest

import legato
from legato.observability.logs import FIELDS, ContextFilter, JsonFormatter
from legato.testing import FakeClock

log = logging.getLogger("shop")


async def test_records_in_steps_and_handlers_carry_the_run_step_and_event(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())  # the app's own records get the fields too
    app = legato.App("shop", "memory://", clock=clock)
    attempts = {"n": 0}

    @app.step(
        name="charge",
        retry=legato.Retry(max_attempts=2, initial_interval=timedelta(seconds=1), jitter=False),
    )
    def charge(order: str) -> str:  # a def step: on a thread, the context goes with it
        attempts["n"] += 1
        log.info("charging %s", order)
        log.info("with my own attempt field", extra={"attempt": "mine"})  # extra= wins
        if attempts["n"] == 1:
            raise ConnectionError("timeout")
        return "ch-1"

    @app.workflow(name="purchase")
    async def purchase(order: str) -> str:
        charged = await charge(order)
        await legato.publish("purchase.completed", {"order": order})
        return charged

    @app.on("purchase.completed", name="receipt")
    async def receipt(event: legato.Event) -> None:
        log.info("receipt for %s", event.data["order"])

    async with app:
        run = await app.start(purchase, "o-1", run_id="run-o-1")
        await clock.advance(timedelta(seconds=2))
        assert await run.result(timeout=5) == "ch-1"
        await clock.settle()

    charging = [r for r in caplog.records if r.getMessage() == "charging o-1"]
    assert [(r.run_id, r.workflow, r.step, r.attempt) for r in charging] == [  # type: ignore[attr-defined]
        ("run-o-1", "purchase", "charge", 1),
        ("run-o-1", "purchase", "charge", 2),
    ]
    assert charging[0].correlation_id == "run-o-1"  # type: ignore[attr-defined]
    mine = [r for r in caplog.records if r.getMessage() == "with my own attempt field"]
    assert [(r.attempt, r.step) for r in mine] == [("mine", "charge"), ("mine", "charge")]  # type: ignore[attr-defined]
    [sent] = [r for r in caplog.records if r.getMessage() == "receipt for o-1"]
    assert sent.event_id == "run-o-1:2"  # type: ignore[attr-defined]
    assert sent.correlation_id == "run-o-1"  # type: ignore[attr-defined]
    assert sent.attempt == 1  # type: ignore[attr-defined]
    ours = [r for r in caplog.records if r.getMessage().startswith("run run-o-1 (")]
    assert [r.getMessage().split()[-1] for r in ours] == ["started", "completed"]
    assert {(r.name, r.run_id, r.workflow) for r in ours} == {  # type: ignore[attr-defined]
        ("legato.engine.execution", "run-o-1", "purchase")
    }
    # Legato's own records have the fields without a filter; outside a run they are None.
    record = logging.getLogger("legato.x").makeRecord(
        "legato.x", logging.INFO, "", 0, "x", (), None
    )
    assert all(getattr(record, f) is None for f in FIELDS)
    # Another logger's extra= of a field name is never refused (the filter sets only
    # what a record lacks).
    logging.getLogger("http").warning("retrying", extra={"attempt": 2})


def test_json_formatter_writes_one_object_with_the_fields_that_apply() -> None:
    record = logging.LogRecord(
        "legato.engine", logging.WARNING, "", 0, "run %s stuck", ("r-1",), None
    )
    for name in FIELDS:
        setattr(record, name, None)
    record.run_id, record.workflow = "r-1", "purchase"  # type: ignore[attr-defined]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert data["message"] == "run r-1 stuck" and data["level"] == "WARNING"
    assert data["run_id"] == "r-1" and data["workflow"] == "purchase"
    assert "step" not in data and "trace_id" not in data
