"""Typed history records: one definition per kind, matching what is stored and documented.

``legato.model.records`` is what every writer builds and every reader (replay, describe,
the CLI) reads back. These tests pin it to the stored format: every kind has a class,
its fields are the ones docs/history.md lists, records written by the previous release
read back into the same classes and encode to the same JSON, and a kind this version
does not know is shown, not refused.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import legato
from legato.model import EventKind, HistoryEvent, RunStatus, records
from legato.model.index import HistoryIndex
from legato.storage.base import Append, NewRun, UpdateRun
from legato.storage.sqlite import SqliteStore
from legato.testing import FakeClock
from tests.acceptance.cli_driver import Cli
from tests.fixtures.engine import Harness, outcome
from tests.unit.test_history_doc import PAYLOAD_KINDS, documented_fields, sections

V1_DATABASE = Path(__file__).parents[1] / "migration" / "fixtures" / "history-v1.db"
AT = datetime(2030, 1, 1, tzinfo=UTC)


def event(kind: str, data: object, key: str | None = "1", name: str | None = "pay") -> HistoryEvent:
    return HistoryEvent("r-1", 1, kind, key, name, 1, data, AT)


def test_every_kind_has_one_record_class() -> None:
    assert set(records.RECORDS) == {kind.value for kind in EventKind}
    for kind, cls in records.RECORDS.items():
        assert cls.KIND.value == kind


def test_each_record_class_has_the_fields_its_section_documents() -> None:
    doc = sections()
    for kind, cls in records.RECORDS.items():
        assert f"`legato.records.{cls.__name__}`" in doc[kind], kind
        assert getattr(legato.records, cls.__name__) is cls
        if kind in PAYLOAD_KINDS:
            continue  # run_completed's data is the workflow's own value
        assert set(cls.DATA) == documented_fields(doc[kind]), kind


async def test_records_of_the_previous_release_read_back_and_encode_the_same(
    tmp_path: Path,
) -> None:
    # Given the database the previous release wrote (every kind of call, parked)
    database = tmp_path / "v1.db"
    shutil.copy(V1_DATABASE, database)
    store = SqliteStore(str(database))
    await store.open()
    try:
        events = [e for run in await store.list_runs() for e in await store.history(run.run_id)]
    finally:
        await store.close()
    assert len({e.kind for e in events}) >= 10

    # Then each record reads as its kind's class and writes back to the same columns
    for e in events:
        record = e.record
        assert type(record) is records.RECORDS[e.kind]
        kind, key, name, attempt, data = record.stored()
        assert (kind, key, name, attempt) == (str(e.kind), e.key, e.name, e.attempt)
        assert (None if data is None else orjson.loads(data)) == e.data, e


def test_optional_fields_are_left_out_and_flags_only_written_when_true() -> None:
    retrying = records.StepFailed("2", "charge", 1, "ValueError", "no", 1, 9.5, 3)
    final = records.StepFailed("2", "charge", 2, "ValueError", "no", 2, final=True)
    assert retrying.data() == {
        "type": "ValueError",
        "message": "no",
        "attempts": 1,
        "retry_at": 9.5,
        "max_attempts": 3,
    }
    assert final.data() == {"type": "ValueError", "message": "no", "attempts": 2, "final": True}
    # A field documented as "or null" is written as null, not left out.
    assert records.WaitStarted("3", "go", None).data() == {"timeout_at": None}
    # A kind without data stores NULL; run_completed stores its value bare, even null.
    assert records.TimerFired("3").stored() == ("timer_fired", "3", None, 0, None)
    assert records.RunCompleted(None).stored()[4] == b"null"
    assert records.RunCompleted({"a": 1}).stored()[4] == b'{"a":1}'


def test_a_record_missing_a_required_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no 'result' field"):
        event("step_completed", {"started_at": 1.0}).record  # noqa: B018


def test_unknown_fields_are_ignored() -> None:
    record = event("step_completed", {"result": 5, "started_at": 1.0, "shiny": True}).record
    assert record == records.StepCompleted("1", "pay", 1, 5, started_at=1.0)


async def test_a_kind_written_by_a_newer_version_is_shown_and_skipped(
    tmp_path: Path,
) -> None:
    # Given a completed run whose history holds a record of a kind this version lacks
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    app = legato.App("newer", url, clock=FakeClock(AT))

    @app.workflow(name="hello")
    async def hello() -> str:
        return "hi"

    async with app:
        await app.start(hello, run_id="h-1")
        assert await app.result("h-1", timeout=10) == "hi"
    store = SqliteStore(str(tmp_path / "newer.db"))
    await store.open()
    try:
        pos = await store.last_pos("h-1")
        await store.write(
            [Append("h-1", pos + 1, "run_annotated", None, None, 0, b'{"note": "x"}', 1.0)]
        )
    finally:
        await store.close()

    # Then reading it does not fail: the kind stays a string, the record is unknown
    async with legato.AsyncClient(url) as client:
        history = await client.history("h-1")
        last = history[-1]
        assert last.kind == "run_annotated" and not isinstance(last.kind, EventKind)
        assert last.record == records.UnknownRecord("run_annotated", None, None, 0, {"note": "x"})
        # describe() and the index skip it
        assert (await client.describe("h-1")).status is RunStatus.COMPLETED
        assert HistoryIndex.build(history).last_pos == last.pos

    # and the CLI lists it with its data
    cli = Cli(url)
    out = cli.ok("runs", "history", "h-1")
    assert "run_annotated" in out and '{"note":"x"}' in out
    assert cli.json("runs", "history", "h-1")[-1]["kind"] == "run_annotated"


async def test_a_recovered_run_that_recorded_its_cancel_records_it_once(
    harness: Harness, clock: FakeClock
) -> None:
    # Given a cancelled run whose worker recorded cancel_requested and died before the
    # run failed: its row is flagged, its history already holds the record
    store = harness.store
    assert not isinstance(store, str)
    now = clock.time()
    await store.write(
        [
            NewRun("s-1", "slow", RunStatus.PENDING.value, b"[]", now, None, None),
            Append("s-1", 1, *records.CancelRequested().stored(), now),
            UpdateRun("s-1", cancel_requested=True),
        ]
    )

    # When a worker claims it
    def define(app: legato.App) -> None:
        @app.workflow(name="slow")
        async def slow() -> None:
            await legato.sleep(timedelta(hours=1))

    await harness.start(define)
    await outcome(harness.running.handle("s-1"))
    assert (await store.get_run("s-1")).status is RunStatus.CANCELLED  # type: ignore[union-attr]

    # Then the cancel is carried out, and recorded once
    kinds = [str(e.kind) for e in await store.history("s-1")]
    assert kinds == ["cancel_requested", "run_failed", "run_cancelled"], kinds
