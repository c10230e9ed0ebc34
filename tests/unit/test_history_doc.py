"""docs/history.md documents every history record kind and every field a run records.

The history format is public: a kind or a ``data`` field that ships without its section
in the reference would be one that users' tools meet undocumented. These tests read the
doc's sections (``### `kind` ``, each with a table of fields whose first column is
``| `field` |``) and compare them with ``EventKind`` and with what real runs record.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import legato
from legato.errors import WaitTimeout
from legato.model import EventKind, HistoryEvent, RunStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, outcome
from tests.fixtures.waiting import DAY, SECOND, claim_due, only_task, status

DOC = Path(__file__).parents[2] / "docs" / "history.md"
FIELD_ROW = re.compile(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|")
# Kinds whose data is the user's own value (the workflow's output), not Legato's fields.
PAYLOAD_KINDS = {EventKind.RUN_COMPLETED.value}


def sections() -> dict[str, str]:
    """The doc's ``### `kind` `` sections: heading text (backticks dropped) -> body."""
    found: dict[str, str] = {}
    heading: str | None = None
    body: list[str] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith(("# ", "## ", "### ")):
            if heading is not None:
                found[heading] = "\n".join(body)
            heading = line[4:].strip().strip("`") if line.startswith("### ") else None
            body = []
        elif heading is not None:
            body.append(line)
    if heading is not None:
        found[heading] = "\n".join(body)
    return found


def documented_fields(section: str) -> set[str]:
    """Field names in the first column of a section's tables."""
    return {m.group(1) for line in section.splitlines() if (m := FIELD_ROW.match(line))}


def recorded_fields(histories: list[list[HistoryEvent]]) -> dict[str, set[str]]:
    """For each kind, the names of the ``data`` fields its records hold."""
    fields: dict[str, set[str]] = {}
    for history in histories:
        for event in history:
            seen = fields.setdefault(event.kind.value, set())  # a kind with no data counts
            if isinstance(event.data, dict) and event.kind.value not in PAYLOAD_KINDS:
                seen.update(event.data)
    return fields


def shop(failures: Counter[str], *, diverge: bool = False) -> Callable[[legato.App], Any]:
    """Workflows that between them make every kind of call and end every way."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.step(name="reserve")
        async def reserve(order: str, *, qty: int = 1) -> str:
            return f"res-{order}-{qty}"

        @reserve.compensate
        async def release(order: str, result: str, *, qty: int = 1) -> None:
            failures["release"] += 1
            if failures["release"] == 1:
                raise ConnectionError("inventory service down")

        @app.step(name="charge", retry=legato.Retry(max_attempts=3, jitter=False))
        async def charge(order: str) -> str:
            failures["charge"] += 1
            if failures["charge"] == 1:
                raise ConnectionError("payment service blip")
            return f"paid-{order}"

        @app.step(name="ship", retry=legato.Retry(max_attempts=1))
        async def ship(order: str) -> None:
            raise ValueError(f"cannot ship {order}")

        @app.workflow(name="pack")
        async def pack(order: str) -> dict[str, str]:
            return {"packed": await charge(order)}

        @app.workflow(name="checkout")
        async def checkout(order: str) -> None:
            await reserve(order, qty=2)
            await charge(order)
            legato.now()
            legato.uuid()
            legato.random()
            await legato.sleep(DAY)
            try:
                await legato.wait_for_signal("late", timeout=SECOND)
            except WaitTimeout:
                pass
            await legato.wait_for_signal("go", timeout=DAY)
            await legato.human_task("review", {"order": order}, assignee="bob", timeout=DAY)
            await legato.child(pack, order)
            await ship(order)

        @app.workflow(name="parked")
        async def parked(order: str) -> None:
            await reserve(order)
            await legato.wait_for_signal("never")

        @app.workflow(name="renew")
        async def renew(term: int) -> int:
            if term < 1:
                legato.continue_as_new(term + 1)
            return term

        @app.workflow(name="drifting")
        async def drifting(order: str) -> str:
            if not diverge:
                await reserve(order)
            await legato.sleep(DAY)
            return "done"

        return SimpleNamespace(checkout=checkout, parked=parked, renew=renew, drifting=drifting)

    return define


async def run_everything(harness: Harness, clock: FakeClock) -> list[list[HistoryEvent]]:
    """Run the shop's workflows to their ends; return every run's history."""
    failures: Counter[str] = Counter()
    defs = await harness.start(shop(failures))
    app = harness.running

    # A checkout: a retried step, values, a timer, a timed-out and a received signal, a
    # human task, a child run, a step that gives up, and a compensation retried once.
    checkout = await app.start(defs.checkout, "o-1")
    await advance(clock, 5 * SECOND)
    await advance(clock, DAY + 5 * SECOND)
    await app.signal(checkout.run_id, "go", {"by": "ann"})
    await claim_due(clock)
    await advance(clock, SECOND)
    task = await only_task(app, checkout.run_id)
    await app.complete_task(task.task_id, {"approved": True})
    for _ in range(10):
        await claim_due(clock)
        await advance(clock, 10 * SECOND)
    assert isinstance(await outcome(checkout), legato.errors.RunFailed)
    assert await status(harness.store, checkout.run_id) is RunStatus.COMPENSATED

    # A cancel of a waiting run, and a run that continues as new.
    parked = await app.start(defs.parked, "o-2")
    await advance(clock, SECOND)
    await app.cancel(parked.run_id)
    for _ in range(5):
        await claim_due(clock)
        await advance(clock, 10 * SECOND)
    assert await status(harness.store, parked.run_id) is RunStatus.CANCELLED
    renewed = await app.start(defs.renew, 0)
    assert await outcome(renewed) == 1

    # A run whose code changed under it: blocked, then resumed with the old code.
    drifting = await app.start(defs.drifting, "o-3")
    await advance(clock, SECOND)
    await harness.restart(shop(failures, diverge=True))
    await advance(clock, DAY + SECOND)
    assert await status(harness.store, drifting.run_id) is RunStatus.BLOCKED
    await harness.restart(shop(failures))
    await harness.running.resume(drifting.run_id)
    await advance(clock, DAY + SECOND)
    assert await outcome(drifting) == "done"

    app = harness.running
    ids = [checkout.run_id, parked.run_id, renewed.run_id, drifting.run_id]
    first = await app.history(checkout.run_id)
    ids += [e.data["child_run_id"] for e in first if e.kind is EventKind.CHILD_STARTED]
    return [await app.history(run_id) for run_id in ids]


def test_every_event_kind_has_a_section_in_the_history_reference() -> None:
    headings = set(sections())
    missing = [kind.value for kind in EventKind if kind.value not in headings]
    assert not missing, f"docs/history.md has no '### `kind`' section for {missing}"


async def test_every_recorded_data_field_is_documented_in_its_kinds_section(
    harness: Harness, clock: FakeClock
) -> None:
    # Given runs that succeed, retry, fail, compensate, sleep, wait for a signal, ask a
    # person, start a child, are cancelled, continue as new, block and resume
    recorded = recorded_fields(await run_everything(harness, clock))
    exercised = {
        EventKind.STEP_COMPLETED,
        EventKind.STEP_FAILED,
        EventKind.COMPENSATION_FAILED,
        EventKind.COMPENSATION_COMPLETED,
        EventKind.RUN_COMPENSATED,
        EventKind.TIMER_STARTED,
        EventKind.WAIT_STARTED,
        EventKind.WAIT_TIMED_OUT,
        EventKind.SIGNAL_RECEIVED,
        EventKind.TASK_CREATED,
        EventKind.CHILD_STARTED,
        EventKind.VALUE,
        EventKind.RUN_FAILED,
        EventKind.RUN_CANCELLED,
        EventKind.RUN_CONTINUED,
        EventKind.RUN_BLOCKED,
        EventKind.RUN_RESUMED,
    }
    assert {k.value for k in exercised} <= set(recorded), "the scenario missed a kind"
    assert {"retry_at", "max_attempts", "final"} <= recorded["step_failed"]
    assert {"args", "kwargs"} <= recorded["step_completed"]
    assert "cancelled" in recorded["run_failed"]

    # Then every field each kind recorded is a row of that kind's section
    doc = sections()
    undocumented = {
        kind: sorted(fields - documented_fields(doc.get(kind, "")))
        for kind, fields in recorded.items()
    }
    undocumented = {kind: fields for kind, fields in undocumented.items() if fields}
    assert not undocumented, f"data fields missing from docs/history.md: {undocumented}"


def test_example_history_in_the_reference_uses_only_documented_kinds_and_fields() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```jsonl\n", 1)[1].split("```", 1)[0]
    records: list[dict[str, Any]] = [json.loads(line) for line in block.splitlines()]
    assert [r["pos"] for r in records] == sorted(r["pos"] for r in records)
    doc = sections()
    for record in records:
        kind = EventKind(record["kind"])
        if isinstance(record["data"], dict) and kind.value not in PAYLOAD_KINDS:
            assert set(record["data"]) <= documented_fields(doc[kind.value]), record
