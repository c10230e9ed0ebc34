"""NaN and infinities are refused as payloads instead of being stored as null."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import legato
from legato.storage.memory import MemoryStore
from tests.fixtures.engine import Harness, outcome

NON_FINITE = [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(-math.inf, id="-inf"),
    pytest.param({"amount": [1.0, {"x": float("nan")}]}, id="nested"),
]


attempts: list[str] = []


def define(app: legato.App) -> SimpleNamespace:
    @app.step(name="measure", retry=legato.Retry(max_attempts=3))
    async def measure(value: str) -> float:
        attempts.append(value)
        return float(value)

    @app.workflow(name="echo")
    async def echo(value):
        return value

    @app.workflow(name="via_step")
    async def via_step(value):
        return await measure(value)

    return SimpleNamespace(echo=echo, via_step=via_step)


@pytest.mark.parametrize("value", NON_FINITE)
async def test_app_start_refuses_non_finite_numbers(harness: Harness, value) -> None:
    defs = await harness.start(define)
    with pytest.raises(legato.errors.PayloadError, match="not a JSON number"):
        await harness.running.start(defs.echo, value, run_id="r")
    assert await harness.running.store.get_run("r") is None


@pytest.mark.parametrize("value", NON_FINITE)
async def test_client_start_refuses_non_finite_numbers(value) -> None:
    store = MemoryStore()
    async with legato.AsyncClient(store) as client:
        with pytest.raises(legato.errors.PayloadError, match="not a JSON number"):
            await client.start("echo", value, run_id="r")
        assert await store.get_run("r") is None


async def test_step_returning_nan_fails_with_payload_error_without_retrying(
    harness: Harness,
) -> None:
    defs = await harness.start(define)
    # The argument is a string; the step turns it into a float NaN.
    attempts.clear()
    handle = await harness.running.start(defs.via_step, "nan")
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.error_type == "legato.errors.PayloadError"
    assert "not a JSON number" in (failed.error_message or "")
    assert failed.step_name == "measure"
    assert attempts == ["nan"]


async def test_none_and_finite_numbers_still_round_trip(harness: Harness) -> None:
    defs = await harness.start(define)
    value = {"a": None, "b": [1.5, -0.0, 1e308], "c": [None]}
    assert await (await harness.running.start(defs.echo, value)).result(timeout=5) == value
