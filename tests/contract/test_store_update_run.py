"""The Store contract for ``UpdateRun``: each condition, each change, ``required``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from legato.errors import ConcurrencyConflict
from legato.model import RunStatus
from legato.storage.base import KEEP, Store, UpdateRun
from tests.contract.ops import (
    T0,
    append,
    at,
    new_run,
    new_signal,
    new_task,
    set_run,
    snapshot,
)


async def make_run(
    store: Store,
    run_id: str = "r1",
    *,
    status: str = "running",
    owner: str | None = None,
    cancel_requested: bool = False,
    wake_at: float | None = T0 + 30,
    signals: int = 0,
    output: object = None,
    error: object = None,
) -> list[int]:
    """Write a run as asked, with ``signals`` signals; return their ids (and a decoy run's
    signal, so that another run's signals are there to be ignored)."""
    await store.write([new_run(run_id, owner=owner, deadline=T0 + 60), new_run("decoy")])
    ops: list[Any] = [
        set_run(run_id, status, output=output, error=error, wake_at=wake_at),
        new_signal("decoy"),
    ]
    ops += [new_signal(run_id, f"s{i}") for i in range(signals)]
    if cancel_requested:
        ops.append(UpdateRun(run_id, cancel_requested=True))
    await store.write(ops)
    return [s.id for s in await store.signals(run_id)]


# -- conditions ----

CHANGE: dict[str, Any] = {"status": "compensating", "updated_at": T0 + 99}
"""What the updates of the condition tests change, to see whether they applied."""


@dataclass
class Case:
    """A run as ``make_run`` writes it, a condition, and whether the run matches it."""

    world: dict[str, Any]
    condition: dict[str, Any]
    matches: bool
    signal_after: str | None = None
    """``if_signal_after`` relative to the run's signal ids: "last", "below-last", "zero"."""
    id: str = field(default="")


CONDITIONS = [
    Case({}, {"if_status": ("running",)}, True, id="status-is-the-one"),
    Case({}, {"if_status": ("waiting", "running")}, True, id="status-is-one-of"),
    Case({}, {"if_status": ("waiting", "sleeping")}, False, id="status-is-none-of"),
    Case({"owner": "w1"}, {"if_owner": "w1"}, True, id="owner-is-it"),
    Case({"owner": "w2"}, {"if_owner": "w1"}, False, id="owner-is-another"),
    Case({}, {"if_owner": "w1"}, False, id="owner-wanted-but-unowned"),
    Case({}, {"if_unowned": True}, True, id="unowned-is-unowned"),
    Case({"owner": "w1"}, {"if_unowned": True}, False, id="unowned-but-owned"),
    Case({"cancel_requested": True}, {"if_cancel_requested": True}, True, id="flag-set"),
    Case({}, {"if_cancel_requested": True}, False, id="flag-wanted-but-unset"),
    Case({}, {"if_cancel_requested": False}, True, id="flag-unset"),
    Case({"cancel_requested": True}, {"if_cancel_requested": False}, False, id="flag-set-not"),
    Case({"signals": 2}, {}, True, signal_after="below-last", id="signal-above"),
    Case({"signals": 2}, {}, False, signal_after="last", id="signal-none-above"),
    Case({"signals": 1}, {}, True, signal_after="zero", id="signal-any"),
    Case({}, {}, False, signal_after="zero", id="signal-only-of-another-run"),
    Case({"wake_at": None}, {"if_wake_after": T0 + 5}, True, id="wake-null"),
    Case({"wake_at": T0 + 10}, {"if_wake_after": T0 + 5}, True, id="wake-later"),
    Case({"wake_at": T0 + 5}, {"if_wake_after": T0 + 5}, False, id="wake-equal"),
    Case({"wake_at": T0 + 1}, {"if_wake_after": T0 + 5}, False, id="wake-earlier"),
]


def conditions(case: Case, signal_ids: list[int]) -> dict[str, Any]:
    found = dict(case.condition)
    if case.signal_after == "zero":
        found["if_signal_after"] = 0
    elif case.signal_after == "last":
        found["if_signal_after"] = signal_ids[-1]
    elif case.signal_after == "below-last":
        found["if_signal_after"] = signal_ids[-1] - 1
    return found


@pytest.mark.parametrize("case", CONDITIONS, ids=lambda c: c.id)
async def test_conditional_update_applies_only_where_its_condition_holds(
    store: Store, case: Case
) -> None:
    signal_ids = await make_run(store, **case.world)
    before = await store.get_run("r1")
    assert before is not None
    await store.write([UpdateRun("r1", **conditions(case, signal_ids), **CHANGE, required=False)])
    after = await store.get_run("r1")
    if case.matches:
        assert after == dataclasses.replace(
            before, status=RunStatus.COMPENSATING, updated_at=at(T0 + 99)
        )
    else:
        assert after == before


@pytest.mark.parametrize("case", CONDITIONS, ids=lambda c: c.id)
async def test_required_update_conflicts_where_its_condition_fails(
    store: Store, case: Case
) -> None:
    signal_ids = await make_run(store, **case.world)
    before = await snapshot(store)
    op = UpdateRun("r1", **conditions(case, signal_ids), **CHANGE)
    if case.matches:
        await store.write([op])
        run = await store.get_run("r1")
        assert run is not None and run.status is RunStatus.COMPENSATING
    else:
        with pytest.raises(ConcurrencyConflict):
            await store.write([op])
        assert await snapshot(store) == before


ALL_HOLD: dict[str, Any] = {
    "if_status": ("sleeping", "waiting"),
    "if_owner": "w1",
    "if_cancel_requested": True,
    "if_wake_after": T0 + 5,
}
ONE_FAILS: dict[str, Any] = {
    "if_status": ("running", "sleeping"),
    "if_owner": "w2",
    "if_cancel_requested": False,
    "if_wake_after": T0 + 10,
    "if_signal_after": None,  # resolved to the run's last signal id
}


@pytest.mark.parametrize("failing", [None, *ONE_FAILS])
async def test_update_with_every_condition_applies_only_if_all_hold(
    store: Store, failing: str | None
) -> None:
    ids = await make_run(
        store, status="waiting", owner="w1", cancel_requested=True, wake_at=T0 + 10, signals=2
    )
    condition = {**ALL_HOLD, "if_signal_after": ids[-1] - 1}
    if failing is not None:
        condition[failing] = ids[-1] if failing == "if_signal_after" else ONE_FAILS[failing]
    await store.write([UpdateRun("r1", **condition, **CHANGE, required=False)])
    run = await store.get_run("r1")
    assert run is not None
    assert run.status is (RunStatus.COMPENSATING if failing is None else RunStatus.WAITING)


async def test_update_for_an_unowned_run_with_every_condition(store: Store) -> None:
    await make_run(store, "free", status="waiting", wake_at=None, signals=1)
    await make_run(store, "held", status="waiting", wake_at=None, signals=1, owner="w1")
    condition: dict[str, Any] = {
        "if_status": ("waiting",),
        "if_unowned": True,
        "if_signal_after": 0,
    }
    await store.write(
        [UpdateRun(run_id, **condition, **CHANGE, required=False) for run_id in ("free", "held")]
    )
    statuses: dict[str, RunStatus] = {r.run_id: r.status for r in await store.list_runs()}
    assert (statuses["free"], statuses["held"]) == (RunStatus.COMPENSATING, RunStatus.WAITING)


async def test_update_changes_only_the_run_it_names(store: Store) -> None:
    await make_run(store, "r1")
    await make_run(store, "r2")
    before = await store.get_run("r2")
    await store.write([UpdateRun("r1", if_status=("running",), **CHANGE)])
    assert await store.get_run("r2") == before
    r1 = await store.get_run("r1")
    assert r1 is not None and r1.status is RunStatus.COMPENSATING


# -- changes ----

CHANGES = [
    ({"status": "waiting"}, {"status": RunStatus.WAITING}, "status"),
    ({"wake_at": T0 + 7}, {"wake_at": at(T0 + 7)}, "wake-at-set"),
    ({"wake_at": None}, {"wake_at": None}, "wake-at-cleared"),
    ({"wake_at": KEEP}, {}, "wake-at-kept"),
    ({"cancel_requested": True}, {"cancel_requested": True}, "flag-set"),
    (
        {"cancel_requested": True, "cancel_by": "token:ops"},
        {"cancel_requested": True, "cancel_by": "token:ops"},
        "flag-set-with-who",
    ),
    ({"cancel_requested": False}, {}, "flag-unset-stays-unset"),
    ({"clear_error": True}, {"error": None}, "error-cleared"),
    ({"clear_error": False}, {}, "error-kept"),
    ({"updated_at": T0 + 9}, {"updated_at": at(T0 + 9)}, "updated-at"),
    ({}, {}, "nothing: a pure guard"),
    (
        {
            "status": "sleeping",
            "wake_at": T0 + 8,
            "cancel_requested": True,
            "clear_error": True,
            "updated_at": T0 + 9,
        },
        {
            "status": RunStatus.SLEEPING,
            "wake_at": at(T0 + 8),
            "cancel_requested": True,
            "error": None,
            "updated_at": at(T0 + 9),
        },
        "everything",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [c[:2] for c in CHANGES], ids=[c[2] for c in CHANGES]
)
async def test_update_changes_what_it_is_given_and_nothing_else(
    store: Store, change: dict[str, Any], expected: dict[str, Any]
) -> None:
    await make_run(store, owner="w1", output={"o": 1}, error={"type": "E"}, wake_at=T0 + 30)
    before = await store.get_run("r1")
    assert before is not None and before.error == {"type": "E"}
    await store.write([UpdateRun("r1", if_status=("running",), **change)])
    assert await store.get_run("r1") == dataclasses.replace(before, **expected)


async def test_update_clears_a_cancellation_flag(store: Store) -> None:
    await make_run(store, cancel_requested=True)
    await store.write([UpdateRun("r1", cancel_requested=False)])
    run = await store.get_run("r1")
    assert run is not None and run.cancel_requested is False


async def test_clearing_the_flag_forgets_who_asked(store: Store) -> None:
    await make_run(store)
    await store.write([UpdateRun("r1", cancel_requested=True, cancel_by="alice")])
    await store.write([UpdateRun("r1", status="waiting")])
    run = await store.get_run("r1")
    assert run is not None and run.cancel_by == "alice"  # kept while the flag is
    await store.write([UpdateRun("r1", cancel_requested=False)])
    run = await store.get_run("r1")
    assert run is not None and (run.cancel_requested, run.cancel_by) == (False, None)


async def test_update_without_cancel_change_keeps_the_flag(store: Store) -> None:
    await make_run(store, cancel_requested=True)
    await store.write([UpdateRun("r1", status="waiting")])
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.cancel_requested) == (RunStatus.WAITING, True)


async def test_update_keeps_a_null_wake_at_unless_told(store: Store) -> None:
    await make_run(store, wake_at=None)
    await store.write([UpdateRun("r1", status="waiting")])
    run = await store.get_run("r1")
    assert run is not None and run.wake_at is None
    await store.write([UpdateRun("r1", wake_at=T0 + 3)])
    run = await store.get_run("r1")
    assert run is not None and run.wake_at == at(T0 + 3)


# -- required ----


def _batch_around(guard: UpdateRun) -> list[Any]:
    """Ops of every kind before and after ``guard``."""
    return [
        new_run("r2"),
        append("r1", 1),
        set_run("r1", "sleeping", wake_at=T0 + 40),
        new_signal("r1", "before"),
        new_task("r1", "t1"),
        guard,
        new_run("r3"),
        append("r3", 1),
        new_signal("r1", "after"),
        new_task("r1", "t2"),
    ]


async def test_required_update_that_fails_writes_nothing_of_its_batch(store: Store) -> None:
    await make_run(store)
    before = await snapshot(store, ["r1", "r2", "r3"])
    with pytest.raises(ConcurrencyConflict):
        await store.write(_batch_around(UpdateRun("r1", if_status=("running",), **CHANGE)))
    assert await snapshot(store, ["r1", "r2", "r3"]) == before


async def test_updates_of_a_batch_that_conflicts_are_undone(store: Store) -> None:
    await make_run(store, error={"type": "E"})
    before = await snapshot(store)
    with pytest.raises(ConcurrencyConflict):
        await store.write(
            [
                UpdateRun(
                    "r1",
                    status="sleeping",
                    wake_at=None,
                    cancel_requested=True,
                    clear_error=True,
                    updated_at=T0 + 9,
                ),
                UpdateRun("r1", if_status=("sleeping",), status="waiting"),
                append("r1", 1),
                append("r1", 1),
            ]
        )
    assert await snapshot(store) == before


async def test_conditional_update_that_fails_lets_the_batch_go_on(store: Store) -> None:
    await make_run(store)
    await store.write(
        _batch_around(UpdateRun("r1", if_status=("running",), **CHANGE, required=False))
    )
    r1 = await store.get_run("r1")
    assert r1 is not None
    assert (r1.status, r1.wake_at) == (RunStatus.SLEEPING, at(T0 + 40))
    assert {r.run_id for r in await store.list_runs()} == {"r1", "r2", "r3", "decoy"}
    assert [e.pos for e in await store.history("r3")] == [1]
    assert [s.name for s in await store.signals("r1")] == ["before", "after"]
    assert [t.task_id for t in await store.list_tasks(run_id="r1")] == ["t1", "t2"]


async def test_pure_guard_that_holds_lets_the_batch_through_and_changes_nothing(
    store: Store,
) -> None:
    await make_run(store)
    before = await store.get_run("r1")
    await store.write([UpdateRun("r1", if_status=("running",)), new_run("r2")])
    assert await store.get_run("r1") == before
    assert await store.get_run("r2") is not None


async def test_pure_guard_that_fails_writes_nothing_of_its_batch(store: Store) -> None:
    await make_run(store)
    before = await snapshot(store, ["r2"])
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_run("r2"), UpdateRun("r1", if_status=("completed",))])
    assert await snapshot(store, ["r2"]) == before


async def test_required_update_of_an_unknown_run_conflicts_and_writes_nothing(
    store: Store,
) -> None:
    with pytest.raises(ConcurrencyConflict):
        await store.write([new_run("r1"), UpdateRun("ghost", **CHANGE)])
    assert await store.get_run("ghost") is None
    assert await store.get_run("r1") is None


async def test_conditional_update_of_an_unknown_run_creates_nothing(store: Store) -> None:
    await store.write([UpdateRun("ghost", **CHANGE, required=False), new_run("r1")])
    assert [r.run_id for r in await store.list_runs()] == ["r1"]
