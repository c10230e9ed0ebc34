"""``legato signal``: a waiting run gets the payload; bad signals are refused, unwritten."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.cli_driver import Cli, Workers, sqlite_url
from tests.acceptance.test_bad_input import assert_refused
from tests.fixtures.db import fresh_database
from tests.integration.direct_db import DirectDb

WAITING_APP = "tests.acceptance.waiting_app:app"


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A database served by one worker of the waiting test app for the whole module."""
    directory = tmp_path_factory.mktemp("signals")
    cli = Cli(fresh_database(directory))
    started = Workers(cli, directory)
    try:
        started.start(WAITING_APP)
        yield cli
    finally:
        started.stop_all()


def start_waiting(cli: Cli, run_id: str, workflow: str = "await_approval") -> None:
    """Start a run of ``workflow`` and return once it waits for its signal."""
    cli.ok("start", workflow, "--input", orjson.dumps({"id": run_id}).decode(), "--run-id", run_id)
    cli.wait_for_status(run_id, {"waiting"})


def stored_signals(cli: Cli, run_id: str) -> int:
    """How many signals the database holds for ``run_id`` (read straight from it)."""
    with DirectDb(cli.database) as db:
        [(count,)] = db.rows("SELECT count(*) FROM signals WHERE run_id = ?", (run_id,))
    assert isinstance(count, int)
    return count


def test_signal_resumes_the_waiting_run_with_its_payload(waiting: Cli) -> None:
    start_waiting(waiting, "approve-1")

    out = waiting.ok("signal", "approve-1", "approval", "--data", '{"by": "ada", "level": 2}')

    assert "signal 'approval' sent to run approve-1" in out
    shown = waiting.wait_for_status("approve-1")
    assert shown["status"] == "completed"
    assert shown["output"] == {"order": "approve-1", "approval": {"by": "ada", "level": 2}}
    kinds = [r["kind"] for r in waiting.json("runs", "history", "approve-1")]
    assert kinds[0] == "wait_started"
    assert kinds[-1] == "run_completed"


def test_signal_json_output_and_default_null_payload(waiting: Cli) -> None:
    start_waiting(waiting, "approve-2")

    sent = waiting.json("signal", "approve-2", "approval")

    assert sent == {"run_id": "approve-2", "name": "approval", "status": "waiting"}
    shown = waiting.wait_for_status("approve-2")
    assert shown["output"] == {"order": "approve-2", "approval": None}


def test_signals_sent_before_the_run_waits_are_kept_in_order(cli: Cli, workers: Workers) -> None:
    # Given the workflows are registered but no worker runs: a started run stays pending.
    workers.stop(workers.start(WAITING_APP))
    cli.ok("start", "await_two", "--input", '{"id": "early"}', "--run-id", "early")
    assert cli.json("runs", "show", "early")["status"] == "pending"

    # When two signals are sent before it ever waits
    cli.ok("signal", "early", "item", "--data", '"first"')
    cli.ok("signal", "early", "item", "--data", '{"n": 2}', "--database", cli.database)

    # Then a worker started later delivers both, in the order they were sent.
    workers.start(WAITING_APP)
    shown = cli.wait_for_status("early")
    assert shown["status"] == "completed", shown
    assert shown["output"] == ["first", {"n": 2}]


def test_signal_to_an_unknown_run_is_refused(waiting: Cli) -> None:
    result = waiting.run("signal", "no-such-run", "approval", "--data", "1")

    assert_refused(result, 1, "no run with id 'no-such-run'")
    assert stored_signals(waiting, "no-such-run") == 0


def test_signal_to_a_finished_run_is_refused_and_writes_nothing(waiting: Cli) -> None:
    start_waiting(waiting, "approve-3")
    waiting.ok("signal", "approve-3", "approval", "--data", "true")
    assert waiting.wait_for_status("approve-3")["status"] == "completed"
    history = waiting.json("runs", "history", "approve-3")
    signals = stored_signals(waiting, "approve-3")

    result = waiting.run("signal", "approve-3", "approval", "--data", "false")

    assert_refused(result, 1, "run 'approve-3' has ended (completed)", "no more signals")
    assert waiting.json("runs", "history", "approve-3") == history
    assert stored_signals(waiting, "approve-3") == signals
    assert waiting.json("runs", "show", "approve-3")["output"]["approval"] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "{bad"], "not valid JSON"),
        (["--data", "NaN"], "not valid JSON"),
        (["--data", "123456789012345678901234567890"], "cannot be stored as JSON"),
    ],
    ids=["invalid-json", "nan", "unserializable"],
)
def test_signal_with_bad_data_is_refused_and_writes_nothing(
    waiting: Cli, request: pytest.FixtureRequest, args: list[str], expected: str
) -> None:
    run_id = f"bad-data-{request.node.callspec.id}"
    start_waiting(waiting, run_id)
    history = waiting.json("runs", "history", run_id)

    result = waiting.run("signal", run_id, "approval", *args)

    assert_refused(result, 2, expected)
    assert stored_signals(waiting, run_id) == 0
    time.sleep(0.2)  # a signal that slipped through would resume the run by now
    assert waiting.json("runs", "history", run_id) == history
    assert waiting.json("runs", "show", run_id)["status"] == "waiting"


def test_reserved_signal_names_are_refused(waiting: Cli) -> None:
    start_waiting(waiting, "reserved-1")

    for name in ("__task__:reserved-1:1", ""):
        result = waiting.run("signal", "reserved-1", name, "--data", "{}")
        assert_refused(result, 2, "signal names are non-empty strings")

    assert stored_signals(waiting, "reserved-1") == 0
    assert waiting.json("runs", "show", "reserved-1")["status"] == "waiting"


def test_database_option_overrides_the_environment(waiting: Cli, tmp_path: Path) -> None:
    start_waiting(waiting, "elsewhere-1")
    other = Cli(sqlite_url(tmp_path / "other.db"))

    assert_refused(other.run("signal", "elsewhere-1", "approval"), 1, "no Legato database at")
    assert not (tmp_path / "other.db").exists()
    other.ok("signal", "elsewhere-1", "approval", "--data", '"x"', "--database", waiting.database)

    shown: dict[str, Any] = waiting.wait_for_status("elsewhere-1")
    assert shown["output"] == {"order": "elsewhere-1", "approval": "x"}


def test_names_are_echoed_as_written_not_as_markup(waiting: Cli) -> None:
    start_waiting(waiting, "[b]mark[/b]-1")

    out = waiting.ok("signal", "[b]mark[/b]-1", "approval")

    assert "sent to run [b]mark[/b]-1" in out, out


def test_a_signal_sent_while_no_worker_runs_resumes_the_run_later(
    cli: Cli, workers: Workers
) -> None:
    worker = workers.start(WAITING_APP)
    start_waiting(cli, "offline-1")
    workers.stop(worker)

    cli.ok("signal", "offline-1", "approval", "--data", '"while you were out"')
    assert cli.json("runs", "show", "offline-1")["status"] == "waiting"

    workers.start(WAITING_APP)
    shown = cli.wait_for_status("offline-1")
    assert shown["output"] == {"order": "offline-1", "approval": "while you were out"}
