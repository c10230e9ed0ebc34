"""Operator actions: retry a failed run from its failed step, resume a failed
compensation, restart a run as a new one, cancel and resume, one by one and in bulk; each
recorded in the run's history with who did it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace

import pytest

import legato
from legato.errors import BulkChanged, DefinitionError, RunError
from legato.model import EventKind, RunStatus
from tests.fixtures.engine import Harness, kinds, of_kind, outcome

ONCE = legato.Retry(max_attempts=2, initial_interval=timedelta(0), jitter=False)


def shop(state: dict[str, object]) -> Callable[[legato.App], SimpleNamespace]:
    """reserve (undone by release), then charge; charge fails until state["fixed"], and
    release fails until state["release_fixed"]."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve(order: str) -> str:
            state["reserved"] = int(state.get("reserved", 0)) + 1  # type: ignore[call-overload]
            return f"res-{order}"

        @reserve.compensate(retry=legato.Retry(max_attempts=1))
        async def release(order: str, reservation: str) -> None:
            state["released"] = int(state.get("released", 0)) + 1  # type: ignore[call-overload]
            if not state.get("release_fixed"):
                raise ConnectionError("warehouse down")

        @app.step(name="charge", retry=ONCE)
        async def charge(order: str) -> str:
            state["charges"] = int(state.get("charges", 0)) + 1  # type: ignore[call-overload]
            if not state.get("fixed"):
                raise ValueError("card declined by a bug")
            return f"ch-{order}"

        @app.workflow(name="buy")
        async def buy(order: str) -> dict[str, str]:
            return {"reservation": await reserve(order), "charge": await charge(order)}

        @app.workflow(name="plain")
        async def plain(order: str) -> str:
            if not state.get("fixed"):
                raise ValueError("a bug in the workflow itself")
            return f"plain {order}"

        return SimpleNamespace(buy=buy, plain=plain)

    return define


def no_compensation(state: dict[str, object]) -> Callable[[legato.App], SimpleNamespace]:
    """The same charge, with nothing to compensate before it: a failure ends ``failed``."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="note")
        async def note(order: str) -> str:
            state["notes"] = int(state.get("notes", 0)) + 1  # type: ignore[call-overload]
            return f"noted {order}"

        @app.step(name="charge", retry=ONCE)
        async def charge(order: str) -> str:
            state["charges"] = int(state.get("charges", 0)) + 1  # type: ignore[call-overload]
            if not state.get("fixed"):
                raise ValueError("card declined by a bug")
            return f"ch-{order}"

        @app.workflow(name="pay")
        async def pay(order: str) -> list[str]:
            return [await note(order), await charge(order)]

        return SimpleNamespace(pay=pay)

    return define


def client_of(harness: Harness) -> legato.AsyncClient:
    """A client on the running app's store (the app owns and closes it)."""
    return legato.AsyncClient(harness.running.store)


async def failed_run(harness: Harness, state: dict[str, object], run_id: str) -> str:
    defs = await harness.start(no_compensation(state))
    ended = await outcome(await harness.running.start(defs.pay, run_id, run_id=run_id))
    assert isinstance(ended, legato.errors.RunFailed) and ended.status == "failed"
    return run_id


# -- retry -----------------------------------------------------------------------------


async def test_retry_runs_the_failed_step_again_and_keeps_the_recorded_ones(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    run_id = await failed_run(harness, state, "o-1")
    assert (state["notes"], state["charges"]) == (1, 2)

    state["fixed"] = True  # the fix is deployed
    assert await harness.running.retry(run_id, by="ann") is RunStatus.RUNNING

    assert await harness.running.result(run_id, timeout=10) == ["noted o-1", "ch-o-1"]
    assert (state["notes"], state["charges"]) == (1, 3)  # note not run again
    history = await harness.running.history(run_id)
    [retried] = of_kind(history, EventKind.RUN_RETRIED)
    assert retried.key == "2" and retried.data["by"] == "ann"
    assert retried.data["step"] == "charge"
    assert retried.data["failure"]["type"] == "ValueError"
    after = history[history.index(retried) + 1 :]
    assert [(e.kind.value, e.attempt) for e in after if e.key == "2"][-1] == (
        "step_completed",
        1,
    )
    assert kinds(history)[-1] == "run_completed"
    described = await harness.running.describe(run_id)
    assert described.status is RunStatus.COMPLETED


async def test_a_retried_run_that_fails_again_ends_failed_and_can_be_retried_again(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    run_id = await failed_run(harness, state, "o-2")
    await harness.running.retry(run_id, by="ann")
    ended = await outcome(harness.running.handle(run_id))
    assert isinstance(ended, legato.errors.RunFailed) and ended.status == "failed"
    assert state["charges"] == 4  # two fresh attempts

    state["fixed"] = True
    await harness.running.retry(run_id, by="bob")
    assert await harness.running.result(run_id, timeout=10) == ["noted o-2", "ch-o-2"]
    retries = of_kind(await harness.running.history(run_id), EventKind.RUN_RETRIED)
    assert [r.data["by"] for r in retries] == ["ann", "bob"]


async def test_retry_of_a_workflow_that_raised_itself_replays_up_to_its_code(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    defs = await harness.start(shop(state))
    ended = await outcome(await harness.running.start(defs.plain, "p", run_id="p-1"))
    assert isinstance(ended, legato.errors.RunFailed) and ended.status == "failed"

    state["fixed"] = True
    await harness.running.retry("p-1", by="ann")

    assert await harness.running.result("p-1", timeout=10) == "plain p"
    [retried] = of_kind(await harness.running.history("p-1"), EventKind.RUN_RETRIED)
    assert retried.key is None and "step" not in retried.data


@pytest.mark.parametrize("ending", ["completed", "compensated"])
async def test_retry_of_a_run_that_did_not_fail_is_refused_and_records_nothing(
    harness: Harness, ending: str
) -> None:
    state: dict[str, object] = {"fixed": ending == "completed", "release_fixed": True}
    defs = await harness.start(shop(state))
    await outcome(await harness.running.start(defs.buy, "b", run_id="b-1"))
    assert (await harness.running.get_run("b-1")).status.value == ending
    before = await harness.running.history("b-1")

    with pytest.raises(RunError, match="not failed"):
        await harness.running.retry("b-1", by="ann")

    assert await harness.running.history("b-1") == before


async def test_retry_of_an_unknown_run_is_run_not_found(harness: Harness) -> None:
    await harness.start(shop({}))
    with pytest.raises(legato.errors.RunNotFound):
        await harness.running.retry("nope")


# -- resume compensation ------------------------------------------------------------------


async def test_resume_compensation_runs_the_compensation_that_gave_up_again(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    defs = await harness.start(shop(state))
    ended = await outcome(await harness.running.start(defs.buy, "c", run_id="c-1"))
    assert isinstance(ended, legato.errors.RunFailed)
    assert ended.status == "compensation_failed" and state["released"] == 1

    state["release_fixed"] = True
    status = await harness.running.resume_compensation("c-1", by="ann")

    assert status is RunStatus.COMPENSATING
    ended = await outcome(harness.running.handle("c-1"))
    assert isinstance(ended, legato.errors.RunFailed) and ended.status == "compensated"
    assert ended.error_type == "ValueError"  # still the failure that started it all
    assert (state["released"], state["charges"], state["reserved"]) == (2, 2, 1)
    history = await harness.running.history("c-1")
    [resumed] = of_kind(history, EventKind.COMPENSATION_RESUMED)
    assert resumed.data["by"] == "ann" and resumed.data["failure"]["compensation"] is True
    assert kinds(history)[-1] == "run_compensated"


async def test_resume_compensation_of_a_run_that_is_not_compensation_failed_is_refused(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    run_id = await failed_run(harness, state, "o-3")
    with pytest.raises(RunError, match="not compensation_failed"):
        await harness.running.resume_compensation(run_id)
    assert not of_kind(await harness.running.history(run_id), EventKind.COMPENSATION_RESUMED)


# -- restart ------------------------------------------------------------------------------


async def test_restart_starts_a_new_run_with_the_same_input_in_the_same_flow(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    old = await failed_run(harness, state, "o-4")
    state["fixed"] = True

    handle = await harness.running.restart(old, by="ann")

    assert handle.run_id != old
    assert await handle.result(timeout=10) == ["noted o-4", "ch-o-4"]
    assert state["notes"] == 2  # a fresh run: nothing replayed
    new = await harness.running.get_run(handle.run_id)
    assert new.correlation == (await harness.running.get_run(old)).correlation
    [restarted] = of_kind(await harness.running.history(old), EventKind.RUN_RESTARTED)
    assert restarted.data == {"run_id": handle.run_id, "by": "ann"}
    assert (await harness.running.get_run(old)).status is RunStatus.FAILED  # left as it was


async def test_restart_with_a_run_id_taken_is_refused_and_writes_nothing(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    old = await failed_run(harness, state, "o-5")
    before = await harness.running.history(old)
    with pytest.raises(RunError, match="taken"):
        await harness.running.restart(old, new_run_id=old)
    assert await harness.running.history(old) == before


async def test_restart_of_a_run_that_has_not_ended_is_refused(harness: Harness) -> None:
    await harness.start(shop({}))
    await client_of(harness).create_run("unserved", run_id="p-2")
    with pytest.raises(RunError, match="only a run that has ended"):
        await harness.running.restart("p-2")


# -- cancel and resume record who ---------------------------------------------------------


async def test_cancel_of_a_run_no_worker_took_records_who_asked(harness: Harness) -> None:
    await harness.start(shop({}))
    await client_of(harness).create_run("unserved", run_id="p-3")
    assert await harness.running.cancel("p-3", by="ann") is RunStatus.CANCELLED
    [requested] = of_kind(await harness.running.history("p-3"), EventKind.CANCEL_REQUESTED)
    assert requested.data == {"by": "ann"}


async def test_act_names_an_action_and_refuses_a_name_it_does_not_know(harness: Harness) -> None:
    await harness.start(shop({}))
    client = client_of(harness)
    await client.create_run("unserved", run_id="p-4")
    assert await client.act("cancel", "p-4", by="bo") is RunStatus.CANCELLED
    [requested] = of_kind(await client.history("p-4"), EventKind.CANCEL_REQUESTED)
    assert requested.data == {"by": "bo"}
    for wrong in ("restart", "explode"):
        with pytest.raises(DefinitionError, match=f"unknown action '{wrong}'"):
            await client.act(wrong, "p-4")


# -- bulk ---------------------------------------------------------------------------------


async def test_bulk_retry_previews_then_retries_exactly_the_runs_it_counted(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    await failed_run(harness, state, "bulk-0")
    for n in (1, 2):
        await failed_run_again(harness, f"bulk-{n}")
    client = client_of(harness)

    preview = await client.preview_bulk("retry", workflow="pay", run_id_prefix="bulk-")
    assert preview.count == 3 and sorted(preview.run_ids) == ["bulk-0", "bulk-1", "bulk-2"]
    assert (await client.preview_bulk("retry", workflow="other")).count == 0

    state["fixed"] = True
    done = await client.apply_bulk(
        "retry", preview.confirm, workflow="pay", run_id_prefix="bulk-", by="ann"
    )
    assert sorted(done.done) == ["bulk-0", "bulk-1", "bulk-2"] and done.skipped == {}
    for n in range(3):
        assert await harness.running.result(f"bulk-{n}", timeout=10) == [
            f"noted bulk-{n}",
            f"ch-bulk-{n}",
        ]


async def test_bulk_with_a_stale_confirmation_does_nothing_and_gives_the_new_preview(
    harness: Harness,
) -> None:
    state: dict[str, object] = {}
    await failed_run(harness, state, "stale-1")
    client = client_of(harness)
    preview = await client.preview_bulk("retry", run_id_prefix="stale-")
    await failed_run_again(harness, "stale-2")

    with pytest.raises(BulkChanged) as refused:
        await client.apply_bulk("retry", preview.confirm, run_id_prefix="stale-", by="ann")

    assert refused.value.preview.count == 2
    for run_id in ("stale-1", "stale-2"):
        assert (await client.get_run(run_id)).status is RunStatus.FAILED
        assert not of_kind(await client.history(run_id), EventKind.RUN_RETRIED)


async def failed_run_again(harness: Harness, run_id: str) -> None:
    ended = await outcome(await harness.running.start("pay", run_id, run_id=run_id))
    assert isinstance(ended, legato.errors.RunFailed)


@pytest.mark.parametrize(
    ("action", "status", "message"),
    [
        ("explode", None, "unknown bulk action 'explode'"),
        ("retry", "completed", "takes runs that are failed; not completed"),
        ("retry", "nonsense", "nonsense"),
    ],
)
async def test_bulk_refuses_an_action_or_status_it_cannot_take(
    harness: Harness, action: str, status: str | None, message: str
) -> None:
    await harness.start(shop({}))
    with pytest.raises((DefinitionError, ValueError), match=message):
        await client_of(harness).preview_bulk(action, status=status)
