"""``legato tasks``: list, show and answer the human tasks of waiting runs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import legato
from tests.acceptance.cli_driver import LEGATO, Cli, Workers, sqlite_url
from tests.acceptance.test_bad_input import assert_refused
from tests.acceptance.waiting_app import REVIEW_FORM
from tests.fixtures.db import fresh_database

WAITING_APP = "tests.acceptance.waiting_app:app"


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A database served by one worker of the waiting test app for the whole module."""
    directory = tmp_path_factory.mktemp("tasks")
    cli = Cli(fresh_database(directory))
    started = Workers(cli, directory)
    try:
        started.start(WAITING_APP)
        yield cli
    finally:
        started.stop_all()


def open_review(cli: Cli, run_id: str, reviewer: str | None = "ada") -> dict[str, Any]:
    """Start a fraud review and return its task (JSON) once it is in the inbox."""
    order = {"id": run_id, "amount_cents": 125_00, "reviewer": reviewer}
    cli.ok("start", "fraud_review", "--input", orjson.dumps(order).decode(), "--run-id", run_id)
    cli.wait_for_status(run_id, {"waiting"})
    deadline = time.monotonic() + 30
    while True:
        tasks = cli.json("tasks", "list", "--run", run_id)
        if tasks:
            (task,) = tasks
            assert isinstance(task, dict)
            return task
        assert time.monotonic() < deadline, f"no task for run {run_id}"
        time.sleep(0.1)


def test_list_shows_the_open_task_with_who_and_when(inbox: Cli) -> None:
    task = open_review(inbox, "review-1", reviewer="ada")

    listed = inbox.json("tasks", "list")
    for_ada = inbox.json("tasks", "list", "--assignee", "ada")
    for_bob = inbox.json("tasks", "list", "--assignee", "bob")
    table = inbox.ok("tasks", "list", "--assignee", "ada")

    assert task["task_id"] in {t["task_id"] for t in listed}
    assert task["task_id"] in {t["task_id"] for t in for_ada}
    assert all(t["assignee"] == "ada" for t in for_ada)
    assert task["task_id"] not in {t["task_id"] for t in for_bob}
    assert task["name"] == "fraud_review"
    assert task["status"] == "open"
    assert task["run_id"] == "review-1"
    created = datetime.fromisoformat(task["created_at"])
    due = datetime.fromisoformat(task["due_at"])
    assert due - created == timedelta(days=2)
    for text in (task["task_id"], "fraud_review", "ada", "review-1", "open"):
        assert text in table, table
    assert "no open tasks for nobody" in inbox.ok("tasks", "list", "--assignee", "nobody")


def test_show_gives_data_form_and_status(inbox: Cli) -> None:
    task = open_review(inbox, "review-2")

    shown = inbox.json("tasks", "show", task["task_id"])
    text = inbox.ok("tasks", "show", task["task_id"])

    assert shown["data"] == {"order": "review-2", "amount_cents": 125_00}
    assert shown["form"] == REVIEW_FORM
    assert shown["status"] == "open"
    assert shown["response"] is None
    assert shown["completed_at"] is None
    for text_part in (f"task {task['task_id']}", "fraud_review", '"approved"', "boolean"):
        assert text_part in text, text
    assert f"legato tasks complete {task['task_id']} --data JSON" in text


def test_complete_resumes_the_run_with_the_response(inbox: Cli) -> None:
    task = open_review(inbox, "review-3")
    response = {"approved": False, "note": "card reported stolen"}

    out = inbox.ok("tasks", "complete", task["task_id"], "--data", orjson.dumps(response).decode())

    assert f"task {task['task_id']} completed" in out
    run = inbox.wait_for_status("review-3")
    assert run["status"] == "completed", run
    assert run["output"] == {"order": "review-3", "review": response}
    shown = inbox.json("tasks", "show", task["task_id"])
    assert shown["status"] == "completed"
    assert shown["response"] == response
    assert shown["completed_at"] is not None
    assert "card reported stolen" in inbox.ok("tasks", "show", task["task_id"])
    assert task["task_id"] not in {t["task_id"] for t in inbox.json("tasks", "list")}
    completed = inbox.json("tasks", "list", "--status", "completed")
    assert task["task_id"] in {t["task_id"] for t in completed}


def test_complete_json_prints_the_completed_task(inbox: Cli) -> None:
    task = open_review(inbox, "review-4", reviewer=None)
    assert task["assignee"] is None

    done = inbox.json("tasks", "complete", task["task_id"], "--data", '{"approved": true}')

    assert done["task_id"] == task["task_id"]
    assert done["status"] == "completed"
    assert done["response"] == {"approved": True}
    assert inbox.wait_for_status("review-4")["output"]["review"] == {"approved": True}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"approved": "yes"}', "'yes' is not of type 'boolean' (at approved)"),
        ('{"note": "looks fine"}', "'approved' is a required property"),
        ('{"approved": true, "score": 3}', "Additional properties are not allowed"),
        ('"approve"', "is not of type 'object'"),
    ],
    ids=["wrong-type", "missing", "extra", "not-an-object"],
)
def test_response_that_does_not_match_the_form_is_refused_and_task_stays_open(
    inbox: Cli, request: pytest.FixtureRequest, data: str, expected: str
) -> None:
    run_id = f"review-bad-{request.node.callspec.id}"
    task = open_review(inbox, run_id)
    history = inbox.json("runs", "history", run_id)

    result = inbox.run("tasks", "complete", task["task_id"], "--data", data)

    assert_refused(result, 2, "does not match its form", expected, "still open")
    assert inbox.json("tasks", "show", task["task_id"])["status"] == "open"
    time.sleep(0.2)  # a response that slipped through would resume the run by now
    assert inbox.json("runs", "history", run_id) == history
    assert inbox.json("runs", "show", run_id)["status"] == "waiting"
    # The task still takes a valid answer.
    inbox.ok("tasks", "complete", task["task_id"], "--data", '{"approved": true}')
    assert inbox.wait_for_status(run_id)["status"] == "completed"


def test_completing_twice_is_refused_and_keeps_the_first_response(inbox: Cli) -> None:
    task = open_review(inbox, "review-5")
    inbox.ok("tasks", "complete", task["task_id"], "--data", '{"approved": true}')
    run = inbox.wait_for_status("review-5")
    history = inbox.json("runs", "history", "review-5")

    result = inbox.run("tasks", "complete", task["task_id"], "--data", '{"approved": false}')

    assert_refused(result, 1, f"task {task['task_id']!r} is completed")
    assert inbox.json("tasks", "show", task["task_id"])["response"] == {"approved": True}
    assert inbox.json("runs", "history", "review-5") == history
    assert inbox.json("runs", "show", "review-5")["output"] == run["output"]


@pytest.mark.parametrize(
    ("args", "exit_code", "expected"),
    [
        (["tasks", "show", "no-such-task"], 1, "no task with id 'no-such-task'"),
        (["tasks", "complete", "no-such-task", "--data", "{}"], 1, "no task with id"),
        (["tasks", "complete", "no-such-task", "--data", "{bad"], 2, "not valid JSON"),
        (["tasks", "complete", "no-such-task", "--data", "NaN"], 2, "not valid JSON"),
        (["tasks", "complete", "no-such-task"], 2, "Missing option '--data'"),
        (["tasks", "list", "--status", "done"], 2, "Invalid value for '--status'"),
        (["tasks", "list", "--limit", "0"], 2, "Invalid value for '--limit'"),
    ],
    ids=[
        "show-unknown",
        "complete-unknown",
        "invalid-json",
        "nan",
        "no-data",
        "bad-status",
        "bad-limit",
    ],
)
def test_bad_task_commands_are_refused(
    cli: Cli, args: list[str], exit_code: int, expected: str
) -> None:
    # Given an existing, empty database (commands on a missing one create nothing)
    with legato.Client(cli.database) as client:
        client.list_workflows()

    assert_refused(cli.run(*args), exit_code, expected)


def test_bad_json_is_refused_before_the_task_is_touched(inbox: Cli) -> None:
    task = open_review(inbox, "review-6")

    assert_refused(inbox.run("tasks", "complete", task["task_id"], "--data", "{bad"), 2)

    assert inbox.json("tasks", "show", task["task_id"])["status"] == "open"


def test_database_option_on_every_task_command(inbox: Cli, tmp_path: Path) -> None:
    task = open_review(inbox, "review-7")
    other = Cli(sqlite_url(tmp_path / "other.db"))
    db = ("--database", inbox.database)

    assert_refused(other.run("tasks", "list"), 1, "no Legato database at")
    assert task["task_id"] in {t["task_id"] for t in other.json("tasks", "list", *db)}
    assert other.json("tasks", "show", task["task_id"], *db)["status"] == "open"
    other.ok("tasks", "complete", task["task_id"], "--data", '{"approved": true}', *db)
    assert inbox.wait_for_status("review-7")["status"] == "completed"


def test_an_expired_task_is_refused_and_the_escalated_one_completes(inbox: Cli) -> None:
    order = {"id": "late-1", "amount_cents": 900_00, "reviewer": "ada", "lead": "grace"}
    order["timeout_s"] = 1
    inbox.ok(
        "start", "escalating_review", "--input", orjson.dumps(order).decode(), "--run-id", "late-1"
    )
    deadline = time.monotonic() + 30
    while not (escalated := inbox.json("tasks", "list", "--assignee", "grace")):
        assert time.monotonic() < deadline, inbox.json("runs", "show", "late-1")
        time.sleep(0.2)
    (second,) = escalated
    (first,) = inbox.json("tasks", "list", "--run", "late-1", "--status", "expired")

    assert first["name"] == "first_review"
    assert first["assignee"] == "ada"
    assert second["name"] == "second_review"
    assert inbox.json("tasks", "list", "--run", "late-1") == [second]
    refused = inbox.run("tasks", "complete", first["task_id"], "--data", '{"approved": true}')
    assert_refused(refused, 1, f"task {first['task_id']!r} is expired")

    inbox.ok("tasks", "complete", second["task_id"], "--data", '{"approved": false}')
    run = inbox.wait_for_status("late-1")
    assert run["output"] == {
        "order": "late-1",
        "escalated_to": "grace",
        "review": {"approved": False},
    }


def test_the_task_of_a_cancelled_run_is_closed(inbox: Cli) -> None:
    task = open_review(inbox, "review-8")

    inbox.ok("cancel", "review-8")
    assert inbox.wait_for_status("review-8")["status"] == "cancelled"

    assert inbox.json("tasks", "show", task["task_id"])["status"] == "cancelled"
    assert task["task_id"] not in {t["task_id"] for t in inbox.json("tasks", "list")}
    refused = inbox.run("tasks", "complete", task["task_id"], "--data", '{"approved": true}')
    assert_refused(refused, 1, f"task {task['task_id']!r} is cancelled")


def test_two_people_completing_at_once_one_wins(inbox: Cli) -> None:
    task = open_review(inbox, "review-9")
    answers = [{"approved": True, "note": "ada"}, {"approved": False, "note": "bob"}]

    # Both commands start before either has finished: the database decides.
    racing = [
        subprocess.Popen(
            [str(LEGATO), "tasks", "complete", task["task_id"], "--data", orjson.dumps(a).decode()],
            cwd=inbox.cwd,
            env=inbox.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in answers
    ]
    outputs = [p.communicate(timeout=30) for p in racing]
    results = [(p.returncode, out, err) for p, (out, err) in zip(racing, outputs, strict=True)]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    winner = answers[[code for code, _, _ in results].index(0)]
    loser_err = next(err for code, _, err in results if code == 1)
    assert f"task {task['task_id']!r} is completed" in loser_err
    assert "Traceback" not in loser_err
    assert inbox.json("tasks", "show", task["task_id"])["response"] == winner
    assert inbox.wait_for_status("review-9")["output"]["review"] == winner


def test_names_are_shown_as_written_not_as_markup(inbox: Cli) -> None:
    task = open_review(inbox, "review-[b]10[/b]", reviewer="[red]ada[/red]")

    listed = inbox.ok("tasks", "list", "--assignee", "[red]ada[/red]")
    shown = inbox.ok("tasks", "show", task["task_id"])

    for text in (listed, shown):
        assert "[red]ada[/red]" in text, text
        assert "review-[b]10[/b]" in text, text
    assert "no open tasks for [i]x[/i]" in inbox.ok("tasks", "list", "--assignee", "[i]x[/i]")


def test_an_answer_given_while_no_worker_runs_is_delivered_later(
    cli: Cli, workers: Workers
) -> None:
    worker = workers.start(WAITING_APP)
    task = open_review(cli, "review-offline")
    workers.stop(worker)

    cli.ok("tasks", "complete", task["task_id"], "--data", '{"approved": true, "note": "late"}')
    assert cli.json("runs", "show", "review-offline")["status"] == "waiting"

    workers.start(WAITING_APP)
    run = cli.wait_for_status("review-offline")
    assert run["status"] == "completed", run
    assert run["output"]["review"] == {"approved": True, "note": "late"}


def test_claim_takes_an_unassigned_task_and_refuses_someone_elses(inbox: Cli) -> None:
    task = open_review(inbox, "review-claim", reviewer=None)
    assert task["assignee"] is None

    claimed = inbox.json("tasks", "claim", task["task_id"], "--by", "ann")

    assert claimed["assignee"] == "ann"
    assert [t["task_id"] for t in inbox.json("tasks", "list", "--assignee", "ann")] == [
        task["task_id"]
    ]
    refused = inbox.run("tasks", "claim", task["task_id"], "--by", "bob")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"task '{task['task_id']}' is assigned to 'ann' already" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert inbox.json("tasks", "show", task["task_id"])["assignee"] == "ann"
