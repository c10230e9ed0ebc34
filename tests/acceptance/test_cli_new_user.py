"""Issue 7: what a new user trips over on the command line, each fixed and pinned.

Every test runs the real ``legato`` executable on real SQLite files in ``tmp_path``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from legato.storage import URL_FORMS
from tests.acceptance.cli_driver import LEGATO, Cli, Workers, purchase, sqlite_url

pytestmark = pytest.mark.sqlite_only
"""A new user's first steps are on SQLite files in the working directory; what these
commands print is the same on PostgreSQL (the CLI on PostgreSQL:
tests/acceptance/test_postgres_examples.py and the PostgreSQL pass of the other
acceptance tests)."""

GATED_APP = "tests.acceptance.gated_app:app"
WAITING_APP = "tests.acceptance.waiting_app:app"
LONG_ID = "purchase-2026-12-01-learner-0123456789abcdef"
LONG_WORKFLOW = "purchase_course_for_a_learner_with_a_long_name"


def run(cli: Cli, *args: str, columns: int = 200, **env: str) -> subprocess.CompletedProcess[str]:
    """``legato *args`` with the terminal ``columns`` wide and extra environment ``env``."""
    return subprocess.run(
        [str(LEGATO), *args],
        cwd=cli.cwd,
        env={**cli.env(), "COLUMNS": str(columns), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def assert_one_line_and_hint(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The command failed with exactly ``Error: ...`` and ``Hint: ...``; return the error."""
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert lines[1].startswith("Hint: "), result.stderr
    return result.stderr


def create_database(cli: Cli) -> None:
    """An empty Legato database at ``cli.database`` (``start`` of a made-up name makes one)."""
    cli.ok("start", "nothing_serves_this", "--run-id", "seed")


# -- 1. legato worker: file paths, and every way of failing to load an app ---------------

COURSES = """
import legato

app = legato.App("courses")


@app.workflow
async def enroll(learner: str) -> str:
    return f"enrolled {learner}"
"""


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    """A directory holding the user's own ``courses.py`` and broken variants of it."""
    (tmp_path / "courses.py").write_text(COURSES)
    (tmp_path / "boom.py").write_text("import legato\n\nrate = 1 / 0\n")
    (tmp_path / "typo.py").write_text("def broken(:\n")
    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "no_app.py").write_text("import legato\n\nvalue = 3\n")
    (tmp_path / "two_apps.py").write_text(
        "import legato\n\nshop = legato.App('shop')\nbilling = legato.App('billing')\n"
    )
    return Cli(sqlite_url(tmp_path / "legato.db"), cwd=tmp_path)


def test_worker_serves_an_app_given_as_a_file_path(project: Cli, tmp_path: Path) -> None:
    workers = Workers(project, tmp_path)
    try:
        workers.start("./courses.py:app")

        assert project.json("workflows", "list") == [{"name": "enroll"}]
        project.ok("start", "enroll", "--input", '"ada"', "--run-id", "e-1")
        assert project.wait_for_status("e-1")["output"] == "enrolled ada"
    finally:
        workers.stop_all()


def test_worker_imports_a_file_inside_a_package_with_its_package(
    cli: Cli, workers: Workers
) -> None:
    # app.py imports .services relatively: it works only as part of course_purchase.
    workers.start("examples/course_purchase/app.py:app")

    cli.ok(
        "start", "purchase_course", "--input", orjson.dumps(purchase(1)).decode(), "--run-id", "f-1"
    )
    assert cli.wait_for_status("f-1")["status"] == "completed"


@pytest.mark.parametrize(
    ("target", "exit_code", "expected"),
    [
        ("./courses.py:ap", 2, "module 'courses' has no attribute 'ap'"),
        ("courses:ap", 2, "its legato.App objects: app"),
        ("courses:enroll", 2, "'courses:enroll' is not a legato.App"),
        ("./boom.py:app", 1, "raised ZeroDivisionError: division by zero"),
        ("boom:app", 1, "boom.py, line 3"),
        ("typo.py", 1, "raised SyntaxError"),
        ("needs_dep:app", 1, "No module named 'no_such_dependency_xyz'"),
        ("no_app.py", 2, "module 'no_app' holds no legato.App"),
        ("two_apps", 2, "several legato.App objects (billing, shop)"),
        ("./missing.py:app", 2, "there is no such file"),
        ("missing_module:app", 2, "cannot import 'missing_module'"),
        (":app", 2, "expected MODULE:APP"),
    ],
    ids=[
        "file-missing-attribute",
        "module-missing-attribute",
        "not-an-app",
        "file-raises",
        "module-raises",
        "syntax-error",
        "missing-dependency",
        "no-app",
        "two-apps",
        "no-file",
        "no-module",
        "no-module-part",
    ],
)
def test_worker_that_cannot_load_its_app_says_so_in_one_line(
    project: Cli, tmp_path: Path, target: str, exit_code: int, expected: str
) -> None:
    result = project.run("worker", target)

    assert expected in assert_one_line_and_hint(result, exit_code)
    assert not (tmp_path / "legato.db").exists()


# -- 2. database URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite:/x.db", "sqlite:x.db", "sqlite://x.db", "memory:"])
def test_malformed_database_url_is_refused_listing_the_accepted_forms(
    tmp_path: Path, url: str
) -> None:
    cli = Cli("unused", cwd=tmp_path)

    for args in (["runs", "list"], ["start", "wf"], ["worker", "courses:app"]):
        stderr = assert_one_line_and_hint(run(cli, *args, "--database", url), 2)
        assert f"database URL {url!r}" in stderr
        assert URL_FORMS in stderr
        assert "fix --database" in stderr
    assert list(tmp_path.iterdir()) == []


def test_malformed_database_url_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    cli = Cli("sqlite:/x.db", cwd=tmp_path)

    for args in (
        ["runs", "list"],
        ["start", "wf"],
        ["worker", "courses:app"],
        ["signal", "r", "s"],
    ):
        stderr = assert_one_line_and_hint(cli.run(*args), 2)
        assert "LEGATO_DATABASE_URL='sqlite:/x.db' is malformed" in stderr
        assert URL_FORMS in stderr
        assert "--database" not in stderr
    assert list(tmp_path.iterdir()) == []


# -- 3. commands other than start and worker never create a database -------------------------

MISSING_DATABASE_COMMANDS = [
    ["runs", "list"],
    ["runs", "show", "r-1"],
    ["runs", "history", "r-1"],
    ["runs", "resume", "r-1"],
    ["tasks", "list"],
    ["tasks", "show", "r-1:1"],
    ["tasks", "complete", "r-1:1", "--data", "{}"],
    ["workflows", "list"],
    ["workers", "list"],
    ["cancel", "r-1"],
    ["signal", "r-1", "approval"],
]


@pytest.mark.parametrize("args", MISSING_DATABASE_COMMANDS, ids=" ".join)
def test_command_on_a_missing_database_says_so_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    path = tmp_path / "typo.db"
    cli = Cli(sqlite_url(path))

    stderr = assert_one_line_and_hint(cli.run(*args), 1)

    assert f"no Legato database at {path}" in stderr
    assert "LEGATO_DATABASE_URL" in stderr  # where the path came from
    assert list(tmp_path.iterdir()) == []


def test_default_database_that_does_not_exist_is_named_with_its_origin(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    result = subprocess.run(
        [str(LEGATO), "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    stderr = assert_one_line_and_hint(result, 1)
    assert f"no Legato database at {tmp_path / 'legato.db'}" in stderr
    assert "the default" in stderr
    assert list(tmp_path.iterdir()) == []


def test_start_creates_the_database(tmp_path: Path) -> None:
    cli = Cli(sqlite_url(tmp_path / "new.db"))

    cli.ok("start", "enroll", "--run-id", "first")

    assert cli.json("runs", "show", "first")["status"] == "pending"


# -- 4. legato demo keeps its database ----------------------------------------------------------


def test_demo_ends_with_a_runs_show_command_that_works_when_pasted(tmp_path: Path) -> None:
    cli = Cli("sqlite:/unused-by-the-demo", cwd=tmp_path)
    # TMPDIR keeps the demo's kept directory inside this test's tmp_path.
    result = run(cli, "demo", columns=80, TMPDIR=str(tmp_path))
    assert result.returncode == 0, result.stderr

    suggested = result.stdout.strip().splitlines()[-1].strip()
    argv = shlex.split(suggested)
    assert argv[:3] == ["legato", "runs", "show"], suggested
    assert "--database" in argv
    kept = list(tmp_path.glob("legato-demo-*/demo.db"))
    assert len(kept) == 1
    assert str(kept[0]) in result.stdout

    shown = run(cli, *argv[1:], columns=80)
    assert shown.returncode == 0, shown.stderr
    assert "compensated" in shown.stdout
    assert "purchase-p-1002" in shown.stdout


# -- 5. a history one can read at 80 columns -----------------------------------------------------


@pytest.fixture
def demo_database(tmp_path: Path) -> Cli:
    """A database holding the demo's two runs (ids end with a random suffix)."""
    cli = Cli(sqlite_url(tmp_path / "demo.db"))
    cli.ok("demo", "--database", cli.database)
    return cli


def test_history_is_one_line_per_record_at_80_columns(demo_database: Cli) -> None:
    runs = demo_database.json("runs", "list", "--status", "compensated")
    run_id = runs[0]["run_id"]
    records = demo_database.json("runs", "history", run_id)

    result = run(demo_database, "runs", "history", run_id, columns=80)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"history of run {run_id}: {len(records)} records")
    assert lines[1].split()[:4] == ["pos", "time", "kind", "call"]
    assert lines[1].split()[-1] == "data"
    body = lines[2:]
    assert len(body) == len(records)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for line, record in zip(body, records, strict=True):
        assert line.split()[0] == str(record["pos"])
        assert record["kind"] in line
    failed = next(line for line in body if " step_failed " in line)
    assert "#2 create_enrollment" in failed
    assert "CourseFull: course" in failed  # the data, cut to the width left
    wide = run(demo_database, "runs", "history", run_id, columns=200).stdout
    assert "CourseFull: course rust-301 is full; gave up after 1 attempt" in wide


def test_history_json_has_the_raw_records(demo_database: Cli) -> None:
    run_id = demo_database.json("runs", "list", "--status", "compensated")[0]["run_id"]

    records = demo_database.json("runs", "history", run_id)

    failed = next(r for r in records if r["kind"] == "step_failed")
    assert failed["data"]["type"].endswith("CourseFull")
    assert set(failed) == {"pos", "kind", "key", "name", "attempt", "data", "at"}


# -- 6. ids and names are never cut ------------------------------------------------------------


def test_runs_list_prints_long_ids_and_names_whole_at_80_columns(tmp_path: Path) -> None:
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    cli.ok("start", LONG_WORKFLOW, "--run-id", LONG_ID)
    cli.ok("start", "short", "--run-id", "r-2")

    out = run(cli, "runs", "list", columns=80).stdout

    assert LONG_ID in out, out
    assert LONG_WORKFLOW in out, out
    assert "…" not in out, out


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Cli]:
    """A database served by a worker of the waiting test app."""
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    workers = Workers(cli, tmp_path)
    try:
        workers.start(WAITING_APP)
        yield cli
    finally:
        workers.stop_all()


def test_tasks_list_prints_long_task_and_run_ids_whole_at_80_columns(inbox: Cli) -> None:
    order = {"id": LONG_ID, "amount_cents": 100, "reviewer": "ada"}
    inbox.ok("start", "fraud_review", "--input", orjson.dumps(order).decode(), "--run-id", LONG_ID)
    deadline = time.monotonic() + 30
    while not (tasks := inbox.json("tasks", "list")):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    out = run(inbox, "tasks", "list", columns=80).stdout

    assert tasks[0]["task_id"] in out, out
    assert LONG_ID in out.replace(tasks[0]["task_id"], ""), out
    assert "…" not in out, out


# -- 7. help without <bool>, hints with the real ids -------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["start"], ["runs", "list"], ["worker"], ["demo"], ["workers", "list"]]
)
def test_help_shows_flags_without_a_bool_metavar(tmp_path: Path, command: list[str]) -> None:
    result = Cli("unused", cwd=tmp_path).run(*command, "--help")

    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout, result.stdout
    assert "--help" in result.stdout


def test_python_m_legato_is_the_legato_command(tmp_path: Path) -> None:
    # For a venv whose scripts are not on PATH: the same commands, the same output.
    result = subprocess.run(
        [sys.executable, "-m", "legato", "runs", "list", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--status" in result.stdout and "python -m legato" in result.stdout


def test_worker_help_lists_log_level_and_concurrency(tmp_path: Path) -> None:
    out = Cli("unused", cwd=tmp_path).ok("worker", "--help")

    assert "--log-level" in out and "--concurrency" in out


def test_hints_name_the_run_the_error_is_about(tmp_path: Path) -> None:
    # Given a run that ended: started with no worker, then cancelled at once
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    cli.ok("start", "enroll", "--run-id", "ended-1")
    cli.ok("cancel", "ended-1")

    for args in (["signal", "ended-1", "approval"], ["cancel", "ended-1"]):
        stderr = assert_one_line_and_hint(cli.run(*args), 1)
        assert "`legato runs show ended-1`" in stderr
        assert "RUN_ID" not in stderr


def test_task_hint_names_the_task(inbox: Cli) -> None:
    order = {"id": "hint-1", "amount_cents": 100, "reviewer": "ada"}
    inbox.ok("start", "fraud_review", "--input", orjson.dumps(order).decode(), "--run-id", "hint-1")
    deadline = time.monotonic() + 30
    while not (tasks := inbox.json("tasks", "list", "--run", "hint-1")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    task_id = tasks[0]["task_id"]

    result = inbox.run("tasks", "complete", task_id, "--data", '{"approved": "yes"}')

    stderr = assert_one_line_and_hint(result, 2)
    assert f"`legato tasks show {task_id}`" in stderr
    assert "TASK_ID" not in stderr


# -- 8. deeply nested JSON ------------------------------------------------------------------------

DEEP = "[" * 60_000 + "]" * 60_000  # one argument stays under Linux's 128 KiB limit


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["start", "enroll", "--input", DEEP], "--input"),
        (["start", "enroll", "--args", DEEP], "--args"),
        (["signal", "r-1", "approval", "--data", DEEP], "--data"),
        (["tasks", "complete", "r-1:1", "--data", DEEP], "--data"),
    ],
    ids=["input", "args", "signal-data", "task-data"],
)
def test_deeply_nested_json_is_one_line_not_a_recursion_error(
    tmp_path: Path, args: list[str], option: str
) -> None:
    cli = Cli(sqlite_url(tmp_path / "legato.db"))

    stderr = assert_one_line_and_hint(cli.run(*args), 2)

    assert f"{option} cannot be stored as JSON: it is nested too deeply" in stderr
    assert "RecursionError" not in stderr
    assert list(tmp_path.iterdir()) == []


# -- 9. legato worker --log-level and --concurrency --------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--concurrency", "0"], {}, "--concurrency must be a positive integer, got '0'"),
        (["--concurrency", "-3"], {}, "got '-3'"),
        (["--concurrency", "many"], {}, "got 'many'"),
        (["--log-level", "LOUD"], {}, "--log-level is 'LOUD'; the levels are DEBUG"),
        ([], {"LEGATO_LOG_LEVEL": "chatty"}, "LEGATO_LOG_LEVEL is 'chatty'"),
    ],
    ids=["zero", "negative", "not-a-number", "bad-level", "bad-level-env"],
)
def test_worker_with_a_bad_option_value_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    cli = Cli(sqlite_url(tmp_path / "legato.db"))

    result = run(cli, "worker", GATED_APP, *args, **env)

    assert expected in assert_one_line_and_hint(result, 2)
    assert not (tmp_path / "legato.db").exists()


def registered_workflows(cli: Cli) -> set[str]:
    """The workflows registered on ``cli``'s database (none while it does not exist)."""
    listed = cli.run("workflows", "list", "--json")
    if listed.returncode != 0:
        return set()
    return {w["name"] for w in orjson.loads(listed.stdout)}


@pytest.fixture
def gated_worker(tmp_path: Path) -> Iterator[tuple[Cli, subprocess.Popen[bytes], Path]]:
    """A ``legato worker --concurrency 1 --log-level DEBUG`` of the gated app; its log."""
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(LEGATO), "worker", GATED_APP, "--concurrency", "1", "--log-level", "debug"],
            cwd=cli.cwd,
            env=cli.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "gated_order" not in registered_workflows(cli):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield cli, process, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_gated(cli: Cli, run_id: str, gate: Path) -> None:
    """Start a gated order that waits at ``gate`` until the file exists."""
    order = {"id": run_id, "gate": str(gate)}
    cli.ok("start", "gated_order", "--input", orjson.dumps(order).decode(), "--run-id", run_id)


def wait_for_step(cli: Cli, run_id: str, step: str) -> dict[str, Any]:
    """Poll until the run is on ``step``."""
    deadline = time.monotonic() + 30
    while (shown := cli.json("runs", "show", run_id))["current_step"] != step:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    shown_run: dict[str, Any] = shown
    return shown_run


def test_worker_concurrency_holds_one_run_in_flight(
    gated_worker: tuple[Cli, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    cli, _, log_path = gated_worker
    # Given one run at its gate on a worker that takes one run at a time
    start_gated(cli, "first", tmp_path / "first.gate")
    wait_for_step(cli, "first", "wait_at_gate")

    # When a second run is started, it stays pending while the first is in flight
    start_gated(cli, "second", tmp_path / "second.gate")
    time.sleep(1.0)
    assert cli.json("runs", "show", "second")["status"] == "pending"

    # Then once the first passes its gate, the second runs
    (tmp_path / "first.gate").write_text("open")
    (tmp_path / "second.gate").write_text("open")
    assert cli.wait_for_status("first")["status"] == "completed"
    assert cli.wait_for_status("second")["status"] == "completed"
    log = log_path.read_text()
    assert "at most 1 runs in flight at once" in log
    assert " DEBUG " in log


# -- 10. legato workers list -----------------------------------------------------------------------


def test_workers_list_shows_each_worker_and_the_runs_it_owns(
    gated_worker: tuple[Cli, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    cli, process, _ = gated_worker
    start_gated(cli, "owned-1", tmp_path / "owned.gate")
    wait_for_step(cli, "owned-1", "wait_at_gate")

    listed = cli.json("workers", "list")

    assert len(listed) == 1
    worker = listed[0]
    assert worker["pid"] == process.pid
    assert worker["runs"] == 1
    assert worker["host"] and worker["worker_id"]
    assert worker["started_at"] <= worker["heartbeat_at"]
    out = run(cli, "workers", "list", columns=80).stdout
    assert worker["worker_id"] in out, out
    assert str(process.pid) in out, out
    (tmp_path / "owned.gate").write_text("open")


def test_workers_list_on_a_database_without_workers(tmp_path: Path) -> None:
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    create_database(cli)

    assert cli.json("workers", "list") == []
    assert "no workers registered" in cli.ok("workers", "list")


# -- 11. start warns about a workflow no worker has registered ----------------------------------


def test_start_of_an_unregistered_workflow_warns_and_waits(tmp_path: Path) -> None:
    # Given a database on which a worker registered purchase_course (the demo's worker)
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    cli.ok("demo", "--database", cli.database)

    # When a run of a misspelt name is started
    result = cli.run("start", "purchase_cours", "--input", "{}", "--run-id", "typo-1")

    # Then it is created pending, its id printed, and stderr warns about the name
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "typo-1"
    assert "Traceback" not in result.stderr
    assert "no worker has ever registered workflow 'purchase_cours'" in result.stderr
    assert "run typo-1 waits (pending) until one does" in result.stderr
    assert "Did you mean 'purchase_course'?" in result.stderr
    assert "Known workflows: purchase_course" in result.stderr
    assert cli.json("runs", "show", "typo-1")["status"] == "pending"


def test_start_of_a_registered_workflow_does_not_warn(tmp_path: Path) -> None:
    cli = Cli(sqlite_url(tmp_path / "legato.db"))
    cli.ok("demo", "--database", cli.database)

    result = cli.run("start", "purchase_course", "--input", "{}", "--run-id", "fine-1")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
