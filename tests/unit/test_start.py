"""Starting runs: idempotent by run id, and bad input is refused before anything is written."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest

import legato
import legato.testing
from legato.model import EventKind
from legato.storage.memory import MemoryStore
from tests.fixtures.engine import Harness, of_kind, outcome, settle_until


def shop(calls: Counter[str], gate: asyncio.Event | None = None):
    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="pay")
        async def pay(order: dict[str, object]) -> str:
            calls["pay"] += 1
            if gate is not None:
                await gate.wait()
            return f"paid {order['id']}"

        @app.step(name="pair")
        async def pair(a: int, b: int) -> int:
            calls["pair"] += 1
            return a + b

        @app.workflow(name="buy")
        async def buy(order: dict[str, object]) -> str:
            calls["buy"] += 1
            return await pay(order)

        @app.workflow(name="sell")
        async def sell(order: dict[str, object]) -> str:
            return "sold"

        @app.workflow(name="miscount")
        async def miscount() -> int:
            return await pair(1)  # type: ignore[call-arg]  # the mistake under test

        return SimpleNamespace(buy=buy, sell=sell, miscount=miscount)

    return define


# -- idempotent start ----


async def test_starting_twice_with_one_run_id_runs_the_workflow_once(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    defs = await harness.start(shop(calls, gate))
    first = await harness.running.start(defs.buy, {"id": 1}, run_id="order-1")
    await settle_until(lambda: calls["pay"] == 1)
    second = await harness.running.start(defs.buy, {"id": 1}, run_id="order-1")
    gate.set()
    assert first.run_id == second.run_id == "order-1"
    assert await outcome(first) == await outcome(second) == "paid 1"
    assert calls == {"buy": 1, "pay": 1}
    assert [r.run_id for r in await harness.store.list_runs()] == ["order-1"]


async def test_starting_a_finished_run_again_returns_it_without_running_it(
    harness: Harness,
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(shop(calls))
    await outcome(await harness.running.start(defs.buy, {"id": 1}, run_id="order-1"))
    history = await harness.running.history("order-1")
    again = await harness.running.start(defs.buy, {"id": 2}, run_id="order-1")
    assert await outcome(again) == "paid 1"
    assert calls == {"buy": 1, "pay": 1}
    assert await harness.running.history("order-1") == history
    run = await harness.store.get_run("order-1")
    assert run is not None and run.input == [{"id": 1}]


async def test_run_id_of_another_workflow_raises_run_already_exists(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(shop(calls))
    await outcome(await harness.running.start(defs.buy, {"id": 1}, run_id="order-1"))
    with pytest.raises(legato.errors.RunAlreadyExists) as caught:
        await harness.running.start(defs.sell, {"id": 1}, run_id="order-1")
    assert (caught.value.existing_workflow, caught.value.requested_workflow) == ("buy", "sell")
    run = await harness.store.get_run("order-1")
    assert run is not None and run.workflow == "buy"
    assert len(await harness.store.list_runs()) == 1


async def test_run_id_of_another_live_workflow_raises_run_already_exists(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    defs = await harness.start(shop(calls, gate))
    handle = await harness.running.start(defs.buy, {"id": 1}, run_id="order-1")
    with pytest.raises(legato.errors.RunAlreadyExists):
        await harness.running.start(defs.sell, {"id": 1}, run_id="order-1")
    gate.set()
    assert await outcome(handle) == "paid 1"


async def test_workflow_can_be_started_by_name(harness: Harness) -> None:
    defs = await harness.start(shop(Counter()))
    assert defs.buy.name == "buy"
    assert await outcome(await harness.running.start("buy", {"id": 9})) == "paid 9"


# -- bad input: a clear error, nothing written ----


async def test_arguments_that_do_not_serialize_raise_payload_error(harness: Harness) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(shop(calls))
    with pytest.raises(legato.errors.PayloadError) as caught:
        await harness.running.start(defs.buy, {"id": object()})
    assert isinstance(caught.value, TypeError)
    assert "buy" in str(caught.value)
    assert await harness.store.list_runs() == []
    assert calls == {}


async def test_unknown_workflow_name_raises_and_writes_nothing(harness: Harness) -> None:
    await harness.start(shop(Counter()))
    with pytest.raises(legato.errors.UnknownWorkflow) as caught:
        await harness.running.start("refund", {"id": 1})
    assert "refund" in str(caught.value)
    assert "buy" in str(caught.value)  # the message lists what is known
    assert await harness.store.list_runs() == []


async def test_wrong_number_of_workflow_arguments_raises_and_writes_nothing(
    harness: Harness,
) -> None:
    defs = await harness.start(shop(Counter()))
    with pytest.raises(legato.errors.DefinitionError, match="buy"):
        await harness.running.start(defs.buy, {"id": 1}, "extra")
    assert await harness.store.list_runs() == []


async def test_client_start_of_a_workflow_no_worker_registered_waits_pending() -> None:
    store = MemoryStore()
    await store.register_workflows(["buy"], 0.0)
    async with legato.AsyncClient(store) as client:
        handle = await client.start("refund", {"id": 1}, run_id="r-1")
        assert (await client.get_run(handle.run_id)).status is legato.RunStatus.PENDING
        with pytest.raises(legato.errors.PayloadError):
            await client.start("buy", {1, 2})
    assert [r.run_id for r in await store.list_runs()] == ["r-1"]


async def test_step_called_with_wrong_arity_fails_the_run_before_the_step_runs(
    harness: Harness,
) -> None:
    calls: Counter[str] = Counter()
    defs = await harness.start(shop(calls))
    handle = await harness.running.start(defs.miscount)
    failed = await outcome(handle)
    assert isinstance(failed, legato.errors.RunFailed)
    assert failed.status == "failed"
    assert failed.error_type == "legato.errors.DefinitionError"
    assert "pair" in (failed.error_message or "")
    assert calls["pair"] == 0
    history = await harness.running.history(handle.run_id)
    assert of_kind(history, EventKind.STEP_STARTED) == []


def test_non_async_workflow_is_a_definition_error_at_decoration() -> None:
    app = legato.App("t", "memory://")
    with pytest.raises(legato.errors.DefinitionError, match="async def"):

        @app.workflow
        def sync_workflow() -> None:
            pass

    assert app.registry.workflows == {}


@pytest.mark.parametrize("url", ["mysql://localhost/db", "postgresq:///x", "legato.db", "file:x"])
def test_database_url_with_unknown_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(legato.errors.ConfigurationError, match="scheme"):
        legato.App("t", url)


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"initial_interval": timedelta(seconds=-1)},
        {"initial_interval": 5},
        {"max_interval": timedelta(seconds=-1)},
        {"backoff": 0.5},
        {"non_retryable": [ValueError]},
        {"non_retryable": ("ValueError",)},
    ],
)
def test_retry_with_bad_values_is_a_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Retry"):
        legato.Retry(**options)  # type: ignore[arg-type]  # wrong on purpose


def test_same_step_name_twice_is_a_definition_error() -> None:
    app = legato.App("t", "memory://")
    app.step(name="pay")(lambda: None)
    with pytest.raises(legato.errors.DefinitionError, match="pay"):
        app.step(name="pay")(lambda: None)


async def test_start_is_refused_while_the_app_is_not_running() -> None:
    app = legato.App("t", "memory://")

    @app.workflow
    async def wf() -> None:
        pass

    with pytest.raises(legato.errors.LegatoError, match="not running"):
        await app.start(wf)
    assert await app.store.list_runs() == []


def test_step_given_bad_retry_or_timeout_is_a_definition_error() -> None:
    app = legato.App("t", "memory://")
    with pytest.raises(legato.errors.DefinitionError, match="Retry"):
        app.step(retry={"max_attempts": 3})(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(legato.errors.DefinitionError, match="timedelta"):
        app.step(timeout=30)(lambda: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", 7, "x" * 256])
async def test_bad_run_id_is_refused_the_same_way_by_app_and_client(bad: object) -> None:
    app = legato.App("t", "memory://")

    @app.workflow(name="wf")
    async def wf() -> None:
        pass

    async with app:
        with pytest.raises(legato.errors.DefinitionError, match="run_id must be") as by_app:
            await app.start(wf, run_id=bad)  # type: ignore[arg-type]  # wrong on purpose
        async with legato.AsyncClient(app.store) as client:
            with pytest.raises(legato.errors.DefinitionError, match="run_id must be") as by_client:
                await client.start("wf", run_id=bad)  # type: ignore[arg-type]
        assert str(by_app.value) == str(by_client.value)
        assert await app.store.list_runs() == []


def test_blocking_client_refuses_an_empty_run_id(tmp_path) -> None:
    with legato.Client(f"sqlite:///{tmp_path / 'x.db'}") as client:
        with pytest.raises(legato.errors.DefinitionError, match="run_id must be"):
            client.start("wf", run_id="")
        assert client.list_runs() == []


# -- bounded in-process starts ----


async def test_starts_past_max_concurrent_runs_wait_pending_and_all_finish(
    memory_store: MemoryStore, clock: legato.testing.FakeClock
) -> None:
    # Given an app that holds at most 2 runs in flight, and steps that block on a gate
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    app = legato.App("shop", memory_store, clock=clock, max_concurrent_runs=2)
    defs = shop(calls, gate)(app)
    async with app:
        engine = app._engine
        assert engine is not None
        # When five runs are started in this process
        for i in range(5):
            await app.start(defs.buy, {"id": i}, run_id=f"b-{i}")
        await settle_until(lambda: calls["pay"] == 2)

        # Then two run here, and three wait pending with no owner (nothing holds them)
        assert sorted(engine.live) == ["b-0", "b-1"]
        waiting = [await memory_store.get_run(f"b-{i}") for i in range(2, 5)]
        assert [(r.status.value, r.owner) for r in waiting if r] == [("pending", None)] * 3

        # And once the gate opens every run finishes here, each paid once
        gate.set()
        results = [await outcome(app.handle(f"b-{i}")) for i in range(5)]
    assert results == [f"paid {i}" for i in range(5)]
    assert calls["pay"] == 5
