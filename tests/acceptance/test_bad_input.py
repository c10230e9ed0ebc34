"""Bad input gets one clear line on stderr, a non-zero exit code, and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import legato
from tests.acceptance.cli_driver import Cli, Workers, sqlite_url


def assert_refused(result: object, exit_code: int, *expected: str) -> None:
    """The command failed cleanly: the exit code, the message, and no traceback."""
    import subprocess

    assert isinstance(result, subprocess.CompletedProcess)
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    for text in expected:
        assert text in output, output


@pytest.mark.parametrize(
    ("args", "exit_code", "expected"),
    [
        (["start", "purchase_course", "--input", "{bad"], 2, "not valid JSON"),
        (["start", "purchase_course", "--input", "NaN"], 2, "not valid JSON"),
        (["start", "purchase_course", "--args", '{"id": 1}'], 2, "must be a JSON list"),
        (["start", "purchase_course", "--input", "1", "--args", "[1]"], 2, "not both"),
        # Valid JSON that JSON storage cannot hold: checked before anything is written.
        (
            ["start", "purchase_course", "--input", "123456789012345678901234567890"],
            2,
            "cannot be stored as JSON",
        ),
        (["runs", "show", "no-such-run"], 1, "no run with id 'no-such-run'"),
        (["runs", "history", "no-such-run"], 1, "no run with id 'no-such-run'"),
        (["cancel", "no-such-run"], 1, "no run with id 'no-such-run'"),
        (["runs", "list", "--status", "finished"], 2, "Invalid value for '--status'"),
        (["runs", "list", "--limit", "0"], 2, "Invalid value for '--limit'"),
    ],
    ids=[
        "invalid-json",
        "nan",
        "args-not-a-list",
        "input-and-args",
        "unserializable",
        "show-unknown-run",
        "history-unknown-run",
        "cancel-unknown-run",
        "bad-status",
        "bad-limit",
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    cli: Cli, args: list[str], exit_code: int, expected: str
) -> None:
    # Given an existing, empty database (reads on a missing one create nothing)
    with legato.Client(cli.database) as client:
        client.list_workflows()

    result = cli.run(*args)

    assert_refused(result, exit_code, expected)
    assert cli.json("runs", "list") == []


@pytest.mark.parametrize(
    "url",
    ["mysql:///x.db", "sqlite://host/x.db", "sqlite:///", "postgresql://h/db?schema=X"],
)
@pytest.mark.sqlite_only  # a URL, refused before any database is opened
def test_unusable_database_url_is_refused(cli: Cli, tmp_path: Path, url: str) -> None:
    for args in (["runs", "list"], ["start", "purchase_course", "--input", "{}"]):
        result = cli.run(*args, "--database", url)
        assert_refused(result, 2, f"database URL {url!r}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.sqlite_only  # a URL, refused before any database is opened
def test_database_url_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    cli = Cli("nosuchscheme://x")

    assert_refused(cli.run("workflows", "list"), 2, "unknown scheme 'nosuchscheme'")


@pytest.mark.sqlite_only
def test_corrupt_database_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database\n" * 100
    path.write_bytes(garbage)
    cli = Cli(sqlite_url(path))

    for args in (
        ["runs", "list"],
        ["runs", "show", "x"],
        ["start", "purchase_course", "--input", "{}"],
        ["worker", "examples.course_purchase.app:app"],
    ):
        assert_refused(cli.run(*args), 1, "not a SQLite database")

    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.db"]


@pytest.mark.sqlite_only
def test_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.close()
    before = path.read_bytes()
    cli = Cli(sqlite_url(path))

    for args in (
        ["runs", "list"],
        ["workflows", "list"],
        ["start", "purchase_course", "--input", "{}"],
    ):
        assert_refused(cli.run(*args), 1, "not a Legato one")

    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["orders"]


@pytest.mark.sqlite_only
def test_missing_directory_is_reported(tmp_path: Path) -> None:
    cli = Cli(sqlite_url(tmp_path / "nowhere" / "legato.db"))

    assert_refused(cli.run("runs", "list"), 1, "does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_worker_with_a_target_that_is_not_an_app_is_refused(cli: Cli) -> None:
    assert_refused(
        cli.run("worker", "examples.course_purchase.services:Payments"), 2, "is not a legato.App"
    )
    assert_refused(cli.run("worker", "no_such_module:app"), 2, "cannot import")


def test_run_id_of_another_workflow_is_refused(cli: Cli, workers: Workers) -> None:
    # Given two apps' workflows registered on one database, and a pending purchase run
    for target in ("examples.course_purchase.app:app", "tests.acceptance.gated_app:app"):
        workers.stop(workers.start(target))
    cli.ok("start", "purchase_course", "--input", "{}", "--run-id", "shared-id")

    # When the same id is started as another workflow
    result = cli.run("start", "gated_order", "--input", "{}", "--run-id", "shared-id")

    # Then it is refused, and the existing run is untouched
    assert_refused(result, 2, "run id 'shared-id' already belongs to workflow 'purchase_course'")
    runs = cli.json("runs", "list")
    assert [(r["run_id"], r["workflow"]) for r in runs] == [("shared-id", "purchase_course")]


@pytest.mark.postgres_only
def test_a_postgres_database_that_does_not_exist_is_named(cli: Cli) -> None:
    from tests.fixtures.db import POSTGRES_URL

    url = POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_legato_db"
    result = cli.run("runs", "list", "--database", url)
    assert_refused(result, 1, 'database "no_such_legato_db" does not exist', "createdb")


@pytest.mark.postgres_only
def test_an_unreachable_postgres_server_is_named_with_host_and_port(cli: Cli) -> None:
    # Nothing listens on port 1 of this machine.
    result = cli.run("runs", "list", "--database", "postgresql://postgres@127.0.0.1:1/test")
    assert_refused(
        result, 1, "cannot reach PostgreSQL at 127.0.0.1:1/test", "Is the server running"
    )
