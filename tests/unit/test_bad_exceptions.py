"""Exceptions that cannot be read are recorded by type and follow the retry policy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import legato
from legato.model import EventKind
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome, seconds


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StrReturnsNonString(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]  # the fault under test


class ArgsDoNotSerialise(Exception):
    """A message built from an object JSON cannot hold."""


BAD_ERRORS = [
    pytest.param(lambda: StrRaises("x"), id="str-raises"),
    pytest.param(lambda: StrAndReprRaise("x"), id="str-and-repr-raise"),
    pytest.param(lambda: StrReturnsNonString("x"), id="str-returns-int"),
    pytest.param(lambda: ArgsDoNotSerialise(object(), {1, 2}), id="args-not-json"),
]


def flaky(make_error, attempts: list[int], *, catch: bool = False):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(
            name="charge",
            retry=legato.Retry(max_attempts=3, initial_interval=seconds(1), jitter=False),
        )
        async def charge() -> str:
            attempts.append(1)
            raise make_error()

        @app.workflow(name="wf")
        async def wf() -> str:
            if catch:
                try:
                    await charge()
                except legato.errors.StepFailed as failed:
                    return f"caught {failed.step_name}"
            return await charge()

        return SimpleNamespace(wf=wf)

    return define


@pytest.mark.parametrize("make_error", BAD_ERRORS)
async def test_unreadable_exception_is_retried_and_names_its_step(
    harness: Harness, clock: FakeClock, make_error
) -> None:
    attempts: list[int] = []
    defs = await harness.start(flaky(make_error, attempts))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(10))
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert len(attempts) == 3
    assert failed.step_name == "charge"
    assert failed.error_type is not None and failed.error_type.endswith(type(make_error()).__name__)
    assert isinstance(failed.error_message, str) and failed.error_message
    records = of_kind(await harness.running.history(handle.run_id), EventKind.STEP_FAILED)
    assert [r.attempt for r in records] == [1, 2, 3]


@pytest.mark.parametrize("make_error", BAD_ERRORS)
async def test_workflow_can_catch_an_unreadable_step_failure(
    harness: Harness, clock: FakeClock, make_error
) -> None:
    attempts: list[int] = []
    defs = await harness.start(flaky(make_error, attempts, catch=True))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(10))
    assert await outcome(handle) == "caught charge"
    assert len(attempts) == 3


async def test_a_huge_error_message_is_recorded_cut_with_what_was_cut(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a step whose error message is a megabyte long, failing three times
    huge = "x" * 1_000_000
    defs = await harness.start(flaky(lambda: ValueError(huge), []))
    handle = await harness.running.start(defs.wf)
    await advance(clock, seconds(10))
    failed = await outcome(handle)

    # Then each record keeps the first MAX_ERROR_MESSAGE characters, and says how much
    # it left out; the run's error is the same cut message
    limit = legato.errors.MAX_ERROR_MESSAGE
    cut = f"{'x' * limit}… [{1_000_000 - limit} more characters not recorded]"
    history = await harness.running.history(handle.run_id)
    assert [r.data["message"] for r in of_kind(history, EventKind.STEP_FAILED)] == [cut] * 3
    assert failed.error_message == cut
    assert (await harness.running.get_run(handle.run_id)).error["message"] == cut
