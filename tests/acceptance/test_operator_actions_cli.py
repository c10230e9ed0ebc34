"""``legato runs retry | resume-compensation | restart | bulk`` and ``--by``, driving the
real executable against a worker of ``tests/api/api_app.py`` (its ``pay`` and ``buy``
runs fail until a file, the fix, exists)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.cli_driver import Cli, Workers

APP = "tests.api.api_app:app"


@pytest.fixture
def shop(cli: Cli, workers: Workers) -> Iterator[Cli]:
    workers.start(APP)
    yield cli


def order(run_id: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "id": run_id,
        "fixed": str(tmp_path / "charge-fixed"),
        "release_fixed": str(tmp_path / "release-fixed"),
    }


def failed(cli: Cli, workflow: str, run_id: str, tmp_path: Path, status: str) -> None:
    body = orjson.dumps(order(run_id, tmp_path)).decode()
    cli.ok("start", workflow, "--input", body, "--run-id", run_id)
    assert cli.wait_for_status(run_id, {status})["status"] == status


def records(cli: Cli, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in cli.json("runs", "history", run_id) if r["kind"] == kind]


def test_retry_then_the_run_completes_and_its_history_says_who(shop: Cli, tmp_path: Path) -> None:
    failed(shop, "pay", "o-1", tmp_path, "failed")
    (tmp_path / "charge-fixed").touch()

    out = shop.ok("runs", "retry", "o-1", "--by", "ann")

    assert "run o-1 retried from its failed step" in out
    assert shop.wait_for_status("o-1", {"completed"})["output"] == ["noted o-1", "ch-o-1"]
    [retried] = records(shop, "o-1", "run_retried")
    assert retried["data"]["by"] == "ann"


def test_resume_compensation_and_restart_default_to_the_cli_user(shop: Cli, tmp_path: Path) -> None:
    failed(shop, "buy", "b-1", tmp_path, "compensation_failed")
    (tmp_path / "release-fixed").touch()

    shop.ok("runs", "resume-compensation", "b-1")
    assert shop.wait_for_status("b-1", {"compensated"})["status"] == "compensated"
    [resumed] = records(shop, "b-1", "compensation_resumed")
    assert resumed["data"]["by"].startswith("cli:")

    (tmp_path / "charge-fixed").touch()
    restarted = shop.json("runs", "restart", "b-1", "--run-id", "b-1-again")
    assert restarted == {"run_id": "b-1", "new_run_id": "b-1-again"}
    assert shop.wait_for_status("b-1-again", {"completed"})["status"] == "completed"


def test_an_action_in_the_wrong_status_is_one_line_and_changes_nothing(
    shop: Cli, tmp_path: Path
) -> None:
    failed(shop, "pay", "o-2", tmp_path, "failed")
    result = shop.run("runs", "resume-compensation", "o-2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is failed, not compensation_failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert records(shop, "o-2", "compensation_resumed") == []


def test_bulk_shows_the_preview_and_without_yes_does_nothing(shop: Cli, tmp_path: Path) -> None:
    for n in range(3):
        failed(shop, "pay", f"bulk-{n}", tmp_path, "failed")

    refused = shop.run("runs", "bulk", "retry", "--workflow", "pay", "--prefix", "bulk-")

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "3 run(s) would be affected by retry:" in refused.stdout
    assert "nothing done" in refused.stderr and "--yes" in refused.stderr
    for n in range(3):
        assert records(shop, f"bulk-{n}", "run_retried") == []

    (tmp_path / "charge-fixed").touch()
    done = shop.json("runs", "bulk", "retry", "--prefix", "bulk-", "--yes", "--by", "ops")

    assert done["preview"]["count"] == 3
    assert sorted(done["done"]["done"]) == ["bulk-0", "bulk-1", "bulk-2"]
    for n in range(3):
        assert shop.wait_for_status(f"bulk-{n}", {"completed"})["status"] == "completed"
        assert records(shop, f"bulk-{n}", "run_retried")[0]["data"]["by"] == "ops"


def test_bulk_refuses_an_unknown_action_or_status(shop: Cli) -> None:
    unknown = shop.run("runs", "bulk", "explode")
    assert unknown.returncode == 2 and "unknown action 'explode'" in unknown.stderr
    wrong = shop.run("runs", "bulk", "retry", "--status", "completed", "--yes")
    assert wrong.returncode == 2
    assert "takes runs that are failed; not completed" in wrong.stderr


def test_cancel_by_is_in_the_history(cli: Cli) -> None:
    cli.ok("start", "unserved", "--run-id", "c-1")
    cli.ok("cancel", "c-1", "--by", "ann")
    [requested] = records(cli, "c-1", "cancel_requested")
    assert requested["data"] == {"by": "ann"}


def test_cancel_of_a_run_in_a_step_is_recorded_by_its_worker_with_who_asked(
    shop: Cli, tmp_path: Path
) -> None:
    gate = str(tmp_path / "never-opened")
    body = orjson.dumps({"id": "g-1", "gate": gate}).decode()
    shop.ok("start", "gated", "--input", body, "--run-id", "g-1")
    shop.wait_for(lambda: shop.json("runs", "show", "g-1")["current_step"] == "hold", "the hold")

    shop.ok("cancel", "g-1", "--by", "bob")  # the worker holds it: it carries the cancel out

    assert shop.wait_for_status("g-1", {"compensated", "cancelled"})["status"] in (
        "compensated",
        "cancelled",
    )
    [requested] = records(shop, "g-1", "cancel_requested")
    assert requested["data"] == {"by": "bob"}


def test_a_redrive_records_who(shop: Cli) -> None:
    shop.ok("events", "publish", "api.doomed", "--data", "{}", "--id", "d-1", "--subject", "d-1")
    shop.wait_for(
        lambda: any(d["event_id"] == "d-1" for d in shop.json("deadletters", "list")),
        "the dead letter",
    )

    shop.ok("deadletters", "redrive", "d-1", "--by", "carol")

    def redriven() -> dict[str, Any] | None:
        mine = [d for d in shop.json("deadletters", "list") if d["event_id"] == "d-1"]
        return mine[0] if mine and mine[0]["redriven_by"] else None

    letter = shop.wait_for(redriven, "the redriven letter to die again")
    assert letter["redriven_by"] == "carol"
    shown = shop.ok("deadletters", "list")
    assert "dead again after a redrive by carol" in shown
