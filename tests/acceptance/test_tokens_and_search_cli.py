"""``legato tokens`` and ``legato runs list``'s search options, with the real executable."""

from __future__ import annotations

import itertools

import orjson
import pytest

from tests.acceptance.cli_driver import Cli, purchase


def test_a_token_is_created_listed_and_revoked_and_its_secret_shown_once(cli: Cli) -> None:
    created = cli.json("tokens", "create", "ci-deploy", "--scope", "operate")
    assert created["name"] == "ci-deploy" and created["scope"] == "operate"
    assert created["secret"].startswith("lgt_") and len(created["secret"]) > 40
    listed = cli.json("tokens", "list")
    assert [t["name"] for t in listed] == ["ci-deploy"]
    assert "secret" not in listed[0] and created["secret"] not in cli.ok("tokens", "list")
    revoked = cli.json("tokens", "revoke", "ci-deploy")
    assert revoked["revoked_at"] is not None
    assert cli.json("tokens", "list")[0]["revoked_at"] == revoked["revoked_at"]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["create", "alice", "--scope", "root"], 2, "unknown scope 'root'"),
        (["create", "bad name!"], 2, "token name 'bad name!'"),
        (["revoke", "nobody"], 1, "no active token named 'nobody'"),
    ],
)
def test_bad_token_commands_are_refused_and_write_nothing(
    cli: Cli, args: list[str], code: int, says: str
) -> None:
    cli.ok("tokens", "create", "keeper")
    result = cli.run("tokens", *args)
    assert result.returncode == code, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert [t["name"] for t in cli.json("tokens", "list")] == ["keeper"]


def test_a_token_name_is_never_reused_even_after_a_revoke(cli: Cli) -> None:
    cli.ok("tokens", "create", "alice")
    cli.ok("tokens", "revoke", "alice")
    again = cli.run("tokens", "create", "alice")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert len(cli.json("tokens", "list")) == 1


def test_runs_list_searches_by_prefix_and_time_and_pages_with_a_cursor(cli: Cli) -> None:
    for i in range(5):
        cli.ok(
            "start",
            "purchase_course",
            "--input",
            orjson.dumps(purchase(i)).decode(),
            "--run-id",
            f"shop-{i}",
        )
    cli.ok("start", "purchase_course", "--input", '"other"', "--run-id", "other-1")
    found = cli.json("runs", "list", "--prefix", "shop-")
    assert sorted(r["run_id"] for r in found) == [f"shop-{i}" for i in range(5)]
    assert cli.json("runs", "list", "--prefix", "shop-", "--until", "2000-01-01") == []
    since = cli.json("runs", "list", "--prefix", "other", "--since", "2000-01-01T00:00:00+00:00")
    assert [r["run_id"] for r in since] == ["other-1"]

    first = cli.ok("runs", "list", "--prefix", "shop-", "-n", "2")
    cursor = first.split("--cursor ")[1].split()[0]
    rest = cli.json("runs", "list", "--prefix", "shop-", "--cursor", cursor, "-n", "10")
    shown_first = [line.split()[1] for line in first.splitlines() if "shop-" in line]
    assert len(shown_first) == 2 and len(rest) == 3
    assert sorted(shown_first + [r["run_id"] for r in rest]) == [f"shop-{i}" for i in range(5)]

    bad = cli.run("runs", "list", "--cursor", "not-a-cursor")
    assert bad.returncode == 2 and "is not one a run listing returned" in bad.stderr


def test_runs_watch_follows_a_run_to_its_end_a_line_per_change(cli: Cli, workers) -> None:
    workers.start()
    cli.ok(
        "start", "purchase_course", "--input", orjson.dumps(purchase(1)).decode(), "--run-id", "w-1"
    )
    watched = cli.run("runs", "watch", "w-1", "--json", "--interval", "0.05", timeout=60)
    assert watched.returncode == 0, watched.stderr
    lines = [orjson.loads(line) for line in watched.stdout.splitlines()]
    assert lines[-1]["status"] == "completed"
    seen = [(x["status"], x["step"], x["completed_steps"], x["compensations_done"]) for x in lines]
    assert all(a != b for a, b in itertools.pairwise(seen))  # a line per change
    plain = cli.run("runs", "watch", "w-1")
    assert plain.returncode == 0 and "completed" in plain.stdout and "next:" in plain.stdout


def test_runs_watch_of_a_run_that_does_not_end_gives_up_when_told(cli: Cli) -> None:
    cli.ok(
        "start", "purchase_course", "--input", orjson.dumps(purchase(2)).decode(), "--run-id", "w-2"
    )
    watched = cli.run("runs", "watch", "w-2", "--timeout", "0.5", "--interval", "0.1")
    assert watched.returncode == 1 and "still pending after 0.5s" in watched.stderr
    assert "not started" in watched.stdout
