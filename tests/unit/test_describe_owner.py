"""``describe()`` says who owns a run, whether that worker lives, and what serves it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import legato
from legato.model import EventKind, HistoryEvent, Run, RunStatus
from legato.model.description import describe_run
from legato.model.workers import WorkerInfo
from legato.storage.memory import MemoryStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(status: RunStatus = RunStatus.RUNNING, owner: str | None = "w-1") -> Run:
    return Run(
        run_id="r-1",
        workflow="buy",
        status=status,
        input=[],
        output=None,
        error=None,
        created_at=NOW,
        updated_at=NOW,
        owner=owner,
    )


def worker(heartbeat_ago: float, worker_id: str = "w-1") -> WorkerInfo:
    return WorkerInfo(
        worker_id, "host-a", 4242, NOW - timedelta(hours=1), NOW - timedelta(seconds=heartbeat_ago)
    )


def record(pos: int, kind: EventKind, attempt: int = 1) -> HistoryEvent:
    data = (
        {"result": "ok", "started_at": NOW.timestamp()}
        if kind is EventKind.STEP_COMPLETED
        else None
    )
    return HistoryEvent(
        run_id="r-1", pos=pos, kind=kind, key="1", name="charge", attempt=attempt, data=data, at=NOW
    )


def test_a_live_owner_is_named_with_its_heartbeat() -> None:
    described = describe_run(run(), [], workers=[worker(3)], workflows=["buy"], now=NOW)
    assert described.owner is not None
    assert (described.owner.worker_id, described.owner.presumed_dead) == ("w-1", False)
    assert described.owner.heartbeat_at == NOW - timedelta(seconds=3)
    assert "host-a" in described.owner.note and "3s ago" in described.owner.note
    assert "presumed dead" not in described.next


def test_an_owner_past_its_lease_is_presumed_dead_and_next_says_takeover() -> None:
    described = describe_run(run(), [], workers=[worker(40)], workflows=["buy"], now=NOW)
    assert described.owner is not None and described.owner.presumed_dead
    assert "presumed dead" in described.next
    assert "another worker takes the run over" in described.next


def test_an_owner_no_worker_row_names_is_presumed_dead() -> None:
    described = describe_run(run(), [], workers=[worker(1, "w-2")], workflows=["buy"], now=NOW)
    assert described.owner is not None and described.owner.presumed_dead
    assert "is gone" in described.next


def test_pending_run_of_an_unregistered_workflow_says_no_worker_serves_it() -> None:
    described = describe_run(
        run(RunStatus.PENDING, owner=None), [], workers=[worker(1)], workflows=["sell"], now=NOW
    )
    assert "no worker has registered workflow 'buy'" in described.next


def test_pending_run_with_only_dead_workers_says_no_live_worker() -> None:
    described = describe_run(
        run(RunStatus.PENDING, owner=None), [], workers=[worker(99)], workflows=["buy"], now=NOW
    )
    assert "no live worker serves workflow 'buy'" in described.next


def test_a_step_started_again_after_a_crash_counts_as_a_new_attempt() -> None:
    history = [
        record(1, EventKind.STEP_STARTED),
        record(2, EventKind.STEP_STARTED),  # the worker died in between; attempt 1 again
        record(3, EventKind.STEP_COMPLETED),
    ]
    [step] = describe_run(run(RunStatus.COMPLETED, owner=None), history).steps
    assert step.attempts == 2


async def test_client_describe_of_a_run_started_before_any_worker() -> None:
    store = MemoryStore()
    async with legato.AsyncClient(store) as client:
        handle = await client.start("buy", {"id": 1})
        described = await handle.describe()
    assert described.status is RunStatus.PENDING
    assert "no worker has registered workflow 'buy'" in described.next
    assert described.to_dict()["owner"] is None


async def test_describe_runs_matches_describe_without_the_payloads() -> None:
    store = MemoryStore()
    async with legato.AsyncClient(store) as client:
        for i in range(3):
            await client.start("buy", {"id": i, "blob": "x" * 500}, run_id=f"r-{i}")
        listed = await client.describe_runs(limit=2)
        assert [d.run_id for d in listed] == ["r-2", "r-1"]
        for d in listed:
            one = await client.describe(d.run_id)
            assert one.input == [{"id": int(d.run_id[-1]), "blob": "x" * 500}]
            assert d.input is None
            assert (d.status, d.next, d.steps, d.owner) == (
                one.status,
                one.next,
                one.steps,
                one.owner,
            )


def serving(heartbeat_ago: float, worker_id: str, *workflows: str) -> WorkerInfo:
    return dataclasses.replace(worker(heartbeat_ago, worker_id), workflows=tuple(workflows))


def pending_next(workers: list[WorkerInfo]) -> str:
    return describe_run(
        run(RunStatus.PENDING, owner=None), [], workers=workers, workflows=["buy", "ship"], now=NOW
    ).next


def test_a_pending_run_no_live_worker_serves_says_so_and_what_they_serve() -> None:
    # Live workers serve other workflows; the one that served "buy" is presumed dead
    workers = [
        serving(1, "w-1", "ship"),
        serving(2, "w-2", "ship", "bill"),
        serving(90, "w-3", "buy"),
    ]
    text = pending_next(workers)
    assert "no live worker serves workflow 'buy'" in text
    assert "the 2 running serve bill, ship" in text


def test_a_pending_run_a_live_worker_serves_is_waiting_for_it() -> None:
    text = pending_next([serving(1, "w-1", "ship"), serving(1, "w-2", "buy")])
    assert "a live worker serves its workflow" in text
    assert "no live worker" not in text


def test_workers_of_an_older_version_are_assumed_to_serve_it() -> None:
    # (registered before workers recorded their workflows: not known, so not refuted)
    old = worker(1, "w-1")
    assert old.workflows is None
    assert "no live worker" not in pending_next([old])


async def test_a_run_started_for_a_workflow_the_running_app_does_not_serve() -> None:
    # Given an app (a worker) serving "ship" only, and "buy" registered once by another
    store = MemoryStore()
    await store.register_workflows(["buy"], NOW.timestamp())
    app = legato.App("shop", store)

    @app.workflow(name="ship")
    async def ship() -> None:
        return None

    async with app, legato.AsyncClient(store) as client:
        # When a client starts a "buy" run
        handle = await client.start("buy", {"id": 1})
        described = await handle.describe()
        [me] = await store.list_workers()
        [me] = await store.list_workers()

    # Then it waits, and describe() says no live worker serves its workflow
    assert described.status is RunStatus.PENDING
    assert "no live worker serves workflow 'buy' (the 1 running serve ship)" in described.next
    assert me.workflows == ("ship",)


def test_a_worker_is_presumed_dead_by_its_own_lease() -> None:
    # A worker with a 60 s lease, silent for 20 s: alive, though past the default 15 s
    patient = dataclasses.replace(worker(20), lease=timedelta(seconds=60))
    owner = describe_run(run(), [], workers=[patient], now=NOW).owner
    assert owner is not None and not owner.presumed_dead
    # and silent for 70 s: presumed dead, and the note names its lease
    gone = dataclasses.replace(worker(70), lease=timedelta(seconds=60))
    owner = describe_run(run(), [], workers=[gone], now=NOW).owner
    assert owner is not None and owner.presumed_dead
    assert "past its 60s lease" in owner.note
