"""The Store contract: one suite, run against every adapter (the ``store`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from legato.errors import ConcurrencyConflict
from legato.model import EventKind, Run, RunStatus
from legato.model.runs import TERMINAL_STATUSES
from legato.storage.base import NewRun, Store, UpdateRun
from tests.contract.ops import T0, append, at, new_run, set_run


async def test_opening_an_open_store_again_keeps_its_data(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    await store.open()
    assert await store.get_run("r1") is not None
    assert [e.pos for e in await store.history("r1")] == [1]


async def test_empty_batch_writes_nothing(store: Store) -> None:
    assert await store.write([]) == {}
    assert await store.list_runs() == []


# -- write: NewRun ----


async def test_new_run_is_stored_with_its_fields(store: Store) -> None:
    await store.write(
        [
            new_run(
                "r1",
                workflow="buy",
                status="pending",
                created=T0,
                deadline=T0 + 60,
                owner="w1",
                args=[{"id": 1}, "x"],
            )
        ]
    )
    run = await store.get_run("r1")
    assert run is not None
    assert (run.run_id, run.workflow, run.status) == ("r1", "buy", RunStatus.PENDING)
    assert run.input == [{"id": 1}, "x"]
    assert (run.output, run.error) == (None, None)
    assert run.created_at == at(T0) and run.updated_at == at(T0)
    assert run.deadline_at == at(T0 + 60)
    assert run.owner == "w1"
    assert run.cancel_requested is False


async def test_new_run_with_existing_id_reports_the_existing_workflow(store: Store) -> None:
    assert await store.write([new_run("r1", workflow="buy", args=[1])]) == {}
    conflicts = await store.write([new_run("r1", workflow="sell", status="pending", args=[2])])
    assert conflicts == {"r1": "buy"}
    run = await store.get_run("r1")
    assert run is not None
    assert (run.workflow, run.status, run.input) == ("buy", RunStatus.RUNNING, [1])


async def test_duplicate_new_run_in_one_batch_keeps_the_first(store: Store) -> None:
    conflicts = await store.write(
        [new_run("r1", workflow="buy", args=[1]), new_run("r1", workflow="sell", args=[2])]
    )
    assert conflicts == {"r1": "buy"}
    run = await store.get_run("r1")
    assert run is not None
    assert (run.workflow, run.input) == ("buy", [1])


async def test_conflicting_new_run_does_not_stop_the_rest_of_the_batch(store: Store) -> None:
    await store.write([new_run("r1")])
    conflicts = await store.write([new_run("r1", workflow="other"), new_run("r2"), append("r2", 1)])
    assert conflicts == {"r1": "wf"}
    assert await store.get_run("r2") is not None
    assert [e.pos for e in await store.history("r2")] == [1]


# -- write: Append ----


async def test_appended_records_read_back_with_their_fields(store: Store) -> None:
    await store.write(
        [
            new_run("r1"),
            append(
                "r1",
                1,
                EventKind.STEP_FAILED,
                key="2.1",
                name="pay",
                attempt=3,
                data={"type": "ValueError", "retry_at": T0 + 5},
                ts=T0 + 2,
            ),
        ]
    )
    [event] = await store.history("r1")
    assert (event.run_id, event.pos, event.kind) == ("r1", 1, EventKind.STEP_FAILED)
    assert (event.key, event.name, event.attempt) == ("2.1", "pay", 3)
    assert event.data == {"type": "ValueError", "retry_at": T0 + 5}
    assert event.at == at(T0 + 2)


async def test_history_is_in_pos_order_across_batches(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1), append("r1", 2)])
    await store.write([append("r1", 4, key="4")])
    await store.write([append("r1", 3, key="3")])
    assert [e.pos for e in await store.history("r1")] == [1, 2, 3, 4]


async def test_append_of_an_existing_pos_conflicts_and_writes_nothing(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                new_run("r2"),
                append("r2", 1),
                append("r1", 2),
                set_run("r1", "completed"),
                append("r1", 1, name="b"),
            ]
        )
    assert await store.get_run("r2") is None
    assert await store.history("r2") == []
    history = await store.history("r1")
    assert [(e.pos, e.name) for e in history] == [(1, "a")]
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.RUNNING


async def test_same_pos_twice_in_one_batch_conflicts_and_writes_nothing(store: Store) -> None:
    await store.write([new_run("r1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write([append("r1", 1), append("r1", 1, name="b")])
    assert await store.history("r1") == []


async def test_same_pos_in_different_runs_does_not_conflict(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2"), append("r1", 1), append("r2", 1)])
    assert len(await store.history("r1")) == 1
    assert len(await store.history("r2")) == 1


# -- write: SetRun ----


async def test_set_run_overwrites_the_mutable_columns(store: Store) -> None:
    await store.write([new_run("r1", owner="w1", deadline=T0 + 60)])
    await store.write(
        [set_run("r1", "failed", output={"o": 1}, error={"type": "E"}, ts=T0 + 9, wake_at=T0 + 30)]
    )
    run = await store.get_run("r1")
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert (run.output, run.error) == ({"o": 1}, {"type": "E"})
    assert run.updated_at == at(T0 + 9)
    assert run.wake_at == at(T0 + 30)
    # Identity, creation time, deadline and ownership are not SetRun's business.
    assert (run.workflow, run.input, run.created_at) == ("wf", ["r1"], at(T0))
    assert (run.deadline_at, run.owner) == (at(T0 + 60), "w1")


async def test_set_run_in_the_same_batch_as_new_run_applies_after_it(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1), set_run("r1", "completed", output=7)])
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.output) == (RunStatus.COMPLETED, 7)


async def test_set_run_of_an_unknown_run_creates_nothing(store: Store) -> None:
    await store.write([set_run("ghost", "completed")])
    assert await store.get_run("ghost") is None
    assert await store.list_runs() == []


async def test_guarded_set_run_applies_while_the_run_is_its_owners(store: Store) -> None:
    await store.write([new_run("r1", owner="w1")])
    await store.write([set_run("r1", "sleeping", wake_at=T0 + 30, release=True, owner="w1")])
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.wake_at, run.owner) == (RunStatus.SLEEPING, at(T0 + 30), None)


async def test_guarded_set_run_of_a_run_taken_over_conflicts_and_writes_nothing(
    store: Store,
) -> None:
    # Given a run that w1 held, released and now owned by w2
    await store.write([new_run("r1", owner="w2"), append("r1", 1), new_run("r2", owner="w1")])
    # When w1, presumed dead, still writes for it (with another run's write in the batch)
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                append("r1", 2),
                set_run("r1", "sleeping", wake_at=T0 + 30, release=True, owner="w1"),
                set_run("r2", "completed", output=1, owner="w1"),
            ]
        )
    # Then nothing of the batch is written: w2 keeps the run as it was
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.owner) == (RunStatus.RUNNING, "w2")
    assert [e.pos for e in await store.history("r1")] == [1]
    other = await store.get_run("r2")
    assert other is not None and other.status is RunStatus.RUNNING


async def test_fenced_append_to_a_run_taken_over_conflicts_and_writes_nothing(
    store: Store,
) -> None:
    # Given r1, which w1 executed, now owned by w2; and r2 still w1's
    await store.write([new_run("r1", owner="w2"), append("r1", 1), new_run("r2", owner="w1")])
    # When w1, not knowing yet, appends its next records (only appends: no SetRun guard)
    with pytest.raises(ConcurrencyConflict, match="no longer its own"):
        await store.write([append("r2", 1, owner="w1"), append("r1", 2, owner="w1")])
    # Then neither record lands: w2's replay will not mistake w1's record for its own
    assert [e.pos for e in await store.history("r1")] == [1]
    assert await store.history("r2") == []
    # And the rightful owners' records go in, fenced or not
    await store.write([append("r1", 2, owner="w2"), append("r2", 1, owner="w1")])
    await store.write([new_run("r3", owner="w3"), append("r3", 1, owner="w3")])  # new: exempt
    assert [e.pos for e in await store.history("r1")] == [1, 2]
    assert [e.pos for e in await store.history("r3")] == [1]


async def test_fenced_append_to_an_unowned_or_unknown_run_conflicts(store: Store) -> None:
    await store.write([new_run("free")])
    for run_id in ("free", "ghost"):
        with pytest.raises(ConcurrencyConflict):
            await store.write([append(run_id, 1, owner="w1")])
    assert await store.history("free") == [] and await store.history("ghost") == []


async def test_guarded_set_run_of_an_unowned_or_unknown_run_conflicts(store: Store) -> None:
    await store.write([new_run("free")])
    for run_id in ("free", "ghost"):
        with pytest.raises(ConcurrencyConflict):
            await store.write([set_run(run_id, "completed", owner="w1")])
    free = await store.get_run("free")
    assert free is not None and free.status is RunStatus.RUNNING
    assert await store.get_run("ghost") is None


async def test_guarded_set_run_sees_the_owner_of_a_new_run_in_its_batch(store: Store) -> None:
    await store.write([new_run("r1", owner="w1"), set_run("r1", "sleeping", owner="w1")])
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.SLEEPING


async def test_guarded_set_run_after_a_release_in_its_batch_conflicts(store: Store) -> None:
    await store.write([new_run("r1", owner="w1")])
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                set_run("r1", "sleeping", release=True, owner="w1"),
                set_run("r1", "running", owner="w1"),
            ]
        )
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.owner) == (RunStatus.RUNNING, "w1")


FAILURE = {"type": "ValueError", "message": "no", "step": "pay", "attempts": 1}


async def failed_by_reference(store: Store) -> None:
    """r1 failed; its row names its run_failed record (pos 2) instead of copying it."""
    await store.write(
        [
            new_run("r1", owner="w1"),
            append("r1", 1),
            append("r1", 2, EventKind.RUN_FAILED, key=None, name=None, attempt=0, data=FAILURE),
            set_run("r1", "compensating", wake_at=T0, owner="w1", error_pos=2),
        ]
    )


async def test_an_error_by_reference_reads_as_its_records_data(store: Store) -> None:
    await failed_by_reference(store)
    run = await store.get_run("r1")
    assert run is not None and run.error == FAILURE
    [listed] = await store.list_runs()
    [light] = await store.list_runs(payloads=False)
    assert listed.error == light.error == FAILURE
    await store.release_runs("w1")
    await store.register_worker("w2", "h", 2, T0)
    [claimed] = await store.claim_runs("w2", T0 + 5, 10, ["wf"])
    assert claimed.error == FAILURE


async def test_an_inline_error_outranks_a_reference_and_clear_error_clears_both(
    store: Store,
) -> None:
    await failed_by_reference(store)
    inline = {"type": "Other", "message": "composite"}
    await store.write([set_run("r1", "blocked", error=inline, error_pos=2)])
    assert (await store.get_run("r1")).error == inline  # type: ignore[union-attr]
    await store.write([set_run("r1", "blocked", error_pos=2)])
    await store.write([UpdateRun("r1", if_status=("blocked",), status="running", clear_error=True)])
    assert (await store.get_run("r1")).error is None  # type: ignore[union-attr]


async def test_a_reference_to_no_record_reads_as_no_error(store: Store) -> None:
    await store.write([new_run("r1"), set_run("r1", "failed", error_pos=9)])
    assert (await store.get_run("r1")).error is None  # type: ignore[union-attr]


# -- reads ----


async def test_get_run_of_unknown_id_is_none(store: Store) -> None:
    assert await store.get_run("nope") is None


async def test_list_runs_is_newest_first(store: Store) -> None:
    await store.write(
        [new_run("b", created=T0 + 1), new_run("c", created=T0 + 2), new_run("a", created=T0)]
    )
    assert [r.run_id for r in await store.list_runs()] == ["c", "b", "a"]


async def test_list_runs_filters_by_status_and_workflow(store: Store) -> None:
    await store.write(
        [
            new_run("r1", workflow="buy", status="running", created=T0),
            new_run("r2", workflow="buy", status="completed", created=T0 + 1),
            new_run("r3", workflow="sell", status="completed", created=T0 + 2),
        ]
    )
    assert [r.run_id for r in await store.list_runs(status="completed")] == ["r3", "r2"]
    assert [r.run_id for r in await store.list_runs(workflow="buy")] == ["r2", "r1"]
    assert [r.run_id for r in await store.list_runs(status="completed", workflow="buy")] == ["r2"]
    assert await store.list_runs(status="failed") == []


async def test_list_runs_respects_limit(store: Store) -> None:
    await store.write([new_run(f"r{i}", created=T0 + i) for i in range(5)])
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["r4", "r3"]


async def test_history_of_unknown_run_is_empty(store: Store) -> None:
    assert await store.history("nope") == []


async def test_histories_returns_every_requested_run(store: Store) -> None:
    await store.write(
        [new_run("r1"), new_run("r2"), append("r1", 1), append("r1", 2), append("r2", 1, name="x")]
    )
    got = await store.histories(["r1", "r2", "nope"])
    assert set(got) == {"r1", "r2", "nope"}
    assert [e.pos for e in got["r1"]] == [1, 2]
    assert [(e.pos, e.name) for e in got["r2"]] == [(1, "x")]
    assert got["nope"] == []
    assert got["r1"] == await store.history("r1")


async def test_histories_of_more_runs_than_one_query_holds(store: Store) -> None:
    run_ids = [f"r{i:04}" for i in range(1200)]
    await store.write([new_run(r) for r in run_ids] + [append(r, 1, name=r) for r in run_ids])
    got = await store.histories(run_ids)
    assert len(got) == 1200
    assert all([(e.pos, e.name) for e in got[r]] == [(1, r)] for r in run_ids)


# -- claiming ----


async def _claimable_world(store: Store) -> None:
    for worker in ("me", "me2", "you", "them", "other"):
        await store.register_worker(worker, "h", 1, T0)
    await store.write(
        [
            new_run("free", created=T0),
            new_run("pending", status="pending", created=T0 + 1),
            new_run("owned", owner="other", created=T0 + 2),
            new_run("done", status="completed", created=T0 + 3),
            new_run("blocked", status="blocked", created=T0 + 4),
            new_run("later", created=T0 + 5),
            new_run("foreign", workflow="elsewhere", created=T0 + 6),
            new_run("due", created=T0 + 7),
        ]
    )
    await store.write(
        [set_run("later", "running", wake_at=T0 + 100), set_run("due", "sleeping", wake_at=T0 + 10)]
    )


async def test_claim_takes_only_unowned_unfinished_due_runs_of_given_workflows(
    store: Store,
) -> None:
    await _claimable_world(store)
    claimed = await store.claim_runs("me", T0 + 50, 100, ["wf"])
    assert {r.run_id for r in claimed} == {"free", "pending", "due"}
    assert len(claimed) == 3
    assert all(r.owner == "me" for r in claimed)
    for run_id in ("free", "pending", "due"):
        run = await store.get_run(run_id)
        assert run is not None and run.owner == "me"
    owned = await store.get_run("owned")
    assert owned is not None and owned.owner == "other"


async def test_claim_takes_a_sleeping_run_once_it_is_due(store: Store) -> None:
    await _claimable_world(store)
    await store.claim_runs("me", T0 + 50, 100, ["wf"])
    assert [r.run_id for r in await store.claim_runs("me2", T0 + 100, 100, ["wf"])] == ["later"]


async def test_claim_respects_limit_oldest_first(store: Store) -> None:
    await _claimable_world(store)
    assert {r.run_id for r in await store.claim_runs("me", T0 + 50, 2, ["wf"])} == {
        "free",
        "pending",
    }
    assert [r.run_id for r in await store.claim_runs("me", T0 + 50, 2, ["wf"])] == ["due"]


async def test_second_claim_gets_nothing(store: Store) -> None:
    await _claimable_world(store)
    assert await store.claim_runs("me", T0 + 50, 100, ["wf"])
    assert await store.claim_runs("you", T0 + 50, 100, ["wf", "elsewhere"]) == [
        await store.get_run("foreign")
    ]
    assert await store.claim_runs("them", T0 + 50, 100, ["wf", "elsewhere"]) == []


async def test_claim_with_no_workflows_gets_nothing(store: Store) -> None:
    await _claimable_world(store)
    assert await store.claim_runs("me", T0 + 50, 100, []) == []


async def test_claim_for_an_unregistered_owner_claims_nothing(store: Store) -> None:
    await _claimable_world(store)
    assert await store.claim_runs("stranger", T0 + 50, 100, ["wf"]) == []
    assert {r.run_id for r in await store.list_runs() if r.owner == "stranger"} == set()
    # What it did not take is still there for a registered worker.
    assert {r.run_id for r in await store.claim_runs("me", T0 + 50, 100, ["wf"])} == {
        "free",
        "pending",
        "due",
    }


async def test_claim_for_a_worker_removed_as_dead_claims_nothing(store: Store) -> None:
    await _claimable_world(store)
    await store.remove_workers(["me"])
    assert await store.claim_runs("me", T0 + 50, 100, ["wf"]) == []
    await store.register_worker("me", "h", 1, T0 + 60)
    assert len(await store.claim_runs("me", T0 + 50, 100, ["wf"])) == 3


async def test_release_all_runs_of_a_worker(store: Store) -> None:
    await _claimable_world(store)
    await store.claim_runs("me", T0 + 50, 100, ["wf"])
    assert await store.release_runs("me") == 3
    for run_id in ("free", "pending", "due"):
        run = await store.get_run(run_id)
        assert run is not None and run.owner is None
    owned = await store.get_run("owned")
    assert owned is not None and owned.owner == "other"
    assert {r.run_id for r in await store.claim_runs("you", T0 + 50, 100, ["wf"])} == {
        "free",
        "pending",
        "due",
    }


async def test_release_a_subset_of_runs(store: Store) -> None:
    await _claimable_world(store)
    await store.claim_runs("me", T0 + 50, 100, ["wf"])
    assert await store.release_runs("me", ["pending", "owned", "nope"]) == 1
    owners: dict[str, str | None] = {r.run_id: r.owner for r in await store.list_runs()}
    assert owners["pending"] is None
    assert owners["free"] == owners["due"] == "me"
    assert owners["owned"] == "other"


# -- cancellation ----


async def test_cancel_requests_lists_flagged_unfinished_runs_of_the_worker(store: Store) -> None:
    await store.write(
        [
            new_run("mine", owner="me"),
            new_run("mine2", owner="me"),
            new_run("theirs", owner="other"),
            new_run("ended", owner="me"),
        ]
    )
    await store.write(
        [UpdateRun(run_id, cancel_requested=True) for run_id in ("mine", "theirs", "ended")]
    )
    await store.write([set_run("ended", "completed")])
    assert await store.cancel_requests("me") == ["mine"]
    assert await store.cancel_requests("other") == ["theirs"]
    assert await store.cancel_requests("nobody") == []


# -- workers and workflows ----


async def test_registered_workers_are_listed(store: Store) -> None:
    await store.register_worker("w1", "host-a", 101, T0)
    await store.register_worker("w2", "host-b", 202, T0 + 1)
    workers = {w.worker_id: w for w in await store.list_workers()}
    assert set(workers) == {"w1", "w2"}
    w1 = workers["w1"]
    assert (w1.host, w1.pid, w1.started_at, w1.heartbeat_at) == ("host-a", 101, at(T0), at(T0))
    assert w1.workflows == ()


async def test_a_worker_is_listed_with_the_workflows_it_serves_and_its_lease(
    store: Store,
) -> None:
    await store.register_worker("w1", "h", 1, T0, ["buy", "ship"], 60.0)
    await store.register_worker("w1", "h", 1, T0 + 5, ["other"], 5.0)  # again: heartbeat only
    assert await store.heartbeat("w1", T0 + 9)
    await store.register_worker("w2", "h", 2, T0)
    workers = {w.worker_id: w for w in await store.list_workers()}
    assert workers["w1"].workflows == ("buy", "ship")
    assert workers["w1"].lease == timedelta(seconds=60)
    assert workers["w1"].heartbeat_at == at(T0 + 9)
    assert workers["w2"].lease is None


async def test_heartbeat_moves_only_that_workers_heartbeat(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    await store.register_worker("w2", "h", 2, T0)
    await store.heartbeat("w1", T0 + 30)
    workers = {w.worker_id: w for w in await store.list_workers()}
    assert workers["w1"].heartbeat_at == at(T0 + 30)
    assert workers["w1"].started_at == at(T0)
    assert workers["w2"].heartbeat_at == at(T0)


async def test_heartbeat_of_unknown_worker_returns_false_and_registers_nothing(
    store: Store,
) -> None:
    assert await store.heartbeat("ghost", T0) is False
    assert await store.list_workers() == []


async def test_heartbeat_of_a_registered_worker_returns_true(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    assert await store.heartbeat("w1", T0) is True  # the same time again still counts
    assert await store.heartbeat("w1", T0 + 5) is True


async def test_heartbeat_of_a_removed_worker_returns_false(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    await store.remove_workers(["w1"])
    assert await store.heartbeat("w1", T0 + 5) is False
    assert await store.list_workers() == []


async def test_registering_a_worker_again_refreshes_its_heartbeat(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    await store.register_worker("w1", "h", 1, T0 + 20)
    [worker] = await store.list_workers()
    assert worker.heartbeat_at == at(T0 + 20)


async def test_remove_workers_forgets_them_and_releases_their_runs(store: Store) -> None:
    for worker in ("w1", "w2", "w3"):
        await store.register_worker(worker, "h", 1, T0)
    await store.write(
        [
            new_run("a", owner="w1"),
            new_run("b", owner="w1"),
            new_run("c", owner="w2"),
            new_run("d", owner="w3"),
        ]
    )
    assert await store.remove_workers(["w1", "w2"]) == 3
    assert [w.worker_id for w in await store.list_workers()] == ["w3"]
    owners = {r.run_id: r.owner for r in await store.list_runs()}
    assert owners == {"a": None, "b": None, "c": None, "d": "w3"}


async def test_orphaned_runs_are_released(store: Store) -> None:
    # Given runs owned by a living worker, by ids no worker row names, and by nobody
    await store.register_worker("alive", "h", 1, T0)
    await store.write(
        [
            new_run("held", owner="alive"),
            new_run("orphan", owner="gone"),
            new_run("orphan-pending", status="pending", owner="never-registered"),
            new_run("free"),
        ]
    )
    # When recovery releases orphans
    assert await store.release_orphaned_runs() == 2
    # Then only the orphans are let go, and any registered worker may claim them
    owners = {r.run_id: r.owner for r in await store.list_runs()}
    assert owners == {"held": "alive", "orphan": None, "orphan-pending": None, "free": None}
    assert await store.release_orphaned_runs() == 0
    claimed = await store.claim_runs("alive", T0 + 1, 10, ["wf"])
    assert {r.run_id for r in claimed} == {"orphan", "orphan-pending", "free"}


async def test_releasing_orphans_leaves_finished_runs_alone(store: Store) -> None:
    await store.write(
        [
            new_run("done", owner="gone"),
            append("done", 1, EventKind.RUN_COMPLETED, key=None, name=None),
            set_run("done", "completed", output=1),
        ]
    )
    assert await store.release_orphaned_runs() == 0
    run = await store.get_run("done")
    assert run is not None and (run.status, run.owner) == (RunStatus.COMPLETED, "gone")


async def test_register_workflows_lists_names_once_sorted(store: Store) -> None:
    assert await store.list_workflows() == []
    await store.register_workflows(["sell", "buy"], T0)
    await store.register_workflows(["buy", "audit"], T0 + 1)
    assert await store.list_workflows() == ["audit", "buy", "sell"]


async def test_list_runs_without_payloads_reads_no_input_or_output(store: Store) -> None:
    await store.write([new_run("r1", args=["x" * 1000]), new_run("r2", created=T0 + 1)])
    await store.write([set_run("r1", "completed", output="big result")])
    full: dict[str, Run] = {r.run_id: r for r in await store.list_runs()}
    bare: dict[str, Run] = {r.run_id: r for r in await store.list_runs(payloads=False)}
    assert list(bare) == list(full) == ["r2", "r1"]
    assert full["r1"].input == ["x" * 1000] and full["r1"].output == "big result"
    assert (bare["r1"].input, bare["r1"].output) == (None, None)
    for run_id, run in bare.items():
        assert (run.status, run.workflow, run.created_at, run.error) == (
            full[run_id].status,
            full[run_id].workflow,
            full[run_id].created_at,
            full[run_id].error,
        )


async def test_check_location_of_an_open_store_passes(store: Store) -> None:
    await store.check_location()
    await store.write([new_run("r1")])
    await store.check_location()


async def test_close_twice_is_safe(store: Store) -> None:
    await store.close()
    await store.close()


# -- due runs ----


async def test_new_run_is_due_at_once_and_keeps_its_parent(store: Store) -> None:
    await store.write([new_run("child", created=T0 + 3, parent="p1"), new_run("top")])
    child, top = await store.get_run("child"), await store.get_run("top")
    assert child is not None and top is not None
    assert (child.wake_at, child.parent_run_id) == (at(T0 + 3), "p1")
    assert top.parent_run_id is None


async def test_next_due_is_the_earliest_wake_at_of_runs_that_may_be_claimed(
    store: Store,
) -> None:
    await store.write([new_run("late"), new_run("early"), new_run("foreign", workflow="other")])
    await store.write(
        [
            set_run("late", "sleeping", wake_at=T0 + 50),
            set_run("early", "sleeping", wake_at=T0 + 20),
            set_run("foreign", "sleeping", wake_at=T0 + 10),
        ]
    )
    assert await store.next_due(["wf"]) == T0 + 20
    assert await store.next_due(["wf", "other"]) == T0 + 10
    assert await store.next_due(["other", "nobody"]) == T0 + 10


@pytest.mark.parametrize(
    "ignored",
    [
        new_run("x", owner="w1"),
        new_run("x", workflow="other"),
        *(new_run("x", status=s.value) for s in sorted(TERMINAL_STATUSES)),
    ],
    ids=lambda op: f"owner={op.owner}-workflow={op.workflow}-status={op.status}",
)
async def test_next_due_ignores_owned_finished_and_foreign_runs(
    store: Store, ignored: NewRun
) -> None:
    await store.write([ignored, new_run("due")])  # ``ignored`` is due earlier, at T0
    await store.write([set_run("due", "sleeping", wake_at=T0 + 20)])
    assert await store.next_due(["wf"]) == T0 + 20


async def test_next_due_ignores_runs_waiting_only_for_an_event(store: Store) -> None:
    await store.write([new_run("r1")])
    await store.write([set_run("r1", "waiting", wake_at=None)])
    assert await store.next_due(["wf"]) is None


async def test_next_due_with_nothing_to_claim_is_none(store: Store) -> None:
    assert await store.next_due(["wf"]) is None
    await store.write([new_run("r1")])
    assert await store.next_due([]) is None


async def test_claim_takes_the_earliest_due_first(store: Store) -> None:
    await store.register_worker("me", "h", 1, T0)
    await store.write([new_run("created-first", created=T0), new_run("due-first", created=T0 + 1)])
    await store.write(
        [
            set_run("created-first", "sleeping", wake_at=T0 + 30),
            set_run("due-first", "sleeping", wake_at=T0 + 10),
        ]
    )
    assert [r.run_id for r in await store.claim_runs("me", T0 + 40, 1, ["wf"])] == ["due-first"]


async def test_claim_takes_a_run_due_exactly_now_but_not_one_due_later(store: Store) -> None:
    await store.register_worker("me", "h", 1, T0)
    await store.write([new_run("now"), new_run("soon")])
    await store.write(
        [set_run("now", "sleeping", wake_at=T0 + 10), set_run("soon", "sleeping", wake_at=T0 + 11)]
    )
    assert [r.run_id for r in await store.claim_runs("me", T0 + 10, 10, ["wf"])] == ["now"]


async def test_claim_leaves_a_run_that_waits_only_for_an_event(store: Store) -> None:
    await store.register_worker("me", "h", 1, T0)
    await store.write([new_run("r1")])
    await store.write([set_run("r1", "waiting", wake_at=None)])
    assert await store.claim_runs("me", T0 + 1_000_000, 10, ["wf"]) == []


async def test_releasing_or_removing_unknown_workers_releases_nothing(store: Store) -> None:
    await store.register_worker("w1", "h", 1, T0)
    await store.write([new_run("r1", owner="w1")])
    assert await store.release_runs("ghost") == 0
    assert await store.release_runs("w1", []) == 0
    assert await store.remove_workers(["ghost"]) == 0
    assert await store.remove_workers([]) == 0
    run = await store.get_run("r1")
    assert run is not None and run.owner == "w1"
    assert [w.worker_id for w in await store.list_workers()] == ["w1"]


# -- last_pos ----


async def test_last_pos_of_an_unknown_run_or_one_without_history_is_zero(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2"), append("r2", 1)])
    assert await store.last_pos("nope") == 0
    assert await store.last_pos("r1") == 0


async def test_last_pos_is_the_highest_pos_of_the_run(store: Store) -> None:
    await store.write([new_run("r1"), new_run("r2"), append("r1", 3), append("r1", 1)])
    await store.write([append("r1", 7), append("r2", 9)])
    assert await store.last_pos("r1") == 7
    assert await store.last_pos("r2") == 9


async def test_last_pos_does_not_count_a_batch_that_conflicted(store: Store) -> None:
    await store.write([new_run("r1"), append("r1", 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.write([append("r1", 2), append("r1", 3), append("r1", 1)])
    assert await store.last_pos("r1") == 1


# -- workers ----


async def test_registering_a_worker_again_keeps_its_start(store: Store) -> None:
    await store.register_worker("w1", "host-a", 101, T0)
    await store.register_worker("w1", "host-b", 202, T0 + 20)
    [worker] = await store.list_workers()
    assert (worker.host, worker.pid, worker.started_at) == ("host-a", 101, at(T0))
    assert worker.heartbeat_at == at(T0 + 20)
