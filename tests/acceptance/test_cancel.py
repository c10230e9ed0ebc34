"""``legato cancel``: a run no worker has taken is cancelled at once."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tests.acceptance.cli_driver import Cli, purchase


def test_cancel_pending_run_without_worker_ends_cancelled(
    cli: Cli, registered: Callable[[], None]
) -> None:
    # Given a registered workflow and no worker running: a started run stays pending.
    registered()
    run_id = cli.ok(
        "start",
        "purchase_course",
        "--input",
        orjson.dumps(purchase(1)).decode(),
        "--run-id",
        "purchase-p-1",
    ).strip()
    pending = cli.json("runs", "show", run_id)
    assert pending["status"] == "pending"
    assert "waiting for a worker" in pending["next"]

    # When it is cancelled
    out = cli.ok("cancel", run_id)

    # Then it is cancelled at once, with the cancellation in its history.
    assert "cancelled" in out
    shown = cli.json("runs", "show", run_id)
    assert shown["status"] == "cancelled"
    assert shown["next"].startswith("nothing: the run was cancelled")
    kinds = [r["kind"] for r in cli.json("runs", "history", run_id)]
    assert kinds == ["cancel_requested", "run_cancelled"]


def test_cancel_of_an_ended_run_is_refused(cli: Cli, registered: Callable[[], None]) -> None:
    registered()
    run_id = cli.ok(
        "start",
        "purchase_course",
        "--input",
        orjson.dumps(purchase(2)).decode(),
        "--run-id",
        "purchase-p-2",
    ).strip()
    assert cli.json("cancel", run_id) == {"run_id": run_id, "status": "cancelled"}

    again = cli.run("cancel", run_id)

    assert again.returncode == 1
    assert "already ended cancelled" in again.stderr
    assert "Traceback" not in again.stderr
