"""A worker executes what ``legato start`` writes; ``legato runs`` tells the story.

One example worker serves the module's database (the ``served`` fixture); each test
starts its own runs with distinct ids.
"""

from __future__ import annotations

import orjson

from tests.acceptance.cli_driver import Cli, purchase


def start(cli: Cli, run_id: str, value: object) -> str:
    """``legato start purchase_course --input JSON --run-id ID``; returns the printed id."""
    out = cli.ok(
        "start", "purchase_course", "--input", orjson.dumps(value).decode(), "--run-id", run_id
    )
    return out.strip()


def test_started_purchase_completes_on_the_worker(served: Cli) -> None:
    run_id = start(served, "purchase-p-1", purchase(1))
    assert run_id == "purchase-p-1"

    shown = served.wait_for_status(run_id)

    assert shown["status"] == "completed"
    assert shown["output"] == {"payment_id": shown["output"]["payment_id"]}
    assert shown["output"]["payment_id"].startswith("pay-")
    assert shown["completed_steps"] == ["authorize_payment", "create_enrollment"]
    assert shown["compensations_done"] == []
    assert shown["next"] == "nothing: the run completed"


def test_full_course_ends_compensated_and_show_says_what_failed(served: Cli) -> None:
    run_id = start(served, "purchase-p-2", purchase(2, course="rust-301"))

    shown = served.wait_for_status(run_id)

    assert shown["status"] == "compensated"
    assert shown["last_error"]["type"].endswith("CourseFull")
    assert shown["last_error"]["step"] == "create_enrollment"
    assert shown["completed_steps"] == ["authorize_payment"]
    assert shown["compensations_done"] == ["authorize_payment"]
    assert shown["compensations_pending"] == []
    # The screen answers what step, what failed, what happened next, in one view.
    text = served.ok("runs", "show", run_id)
    assert "compensated" in text
    assert "create_enrollment failed (attempt 1)" in text
    assert "CourseFull: course rust-301 is full" in text
    assert "authorize_payment" in text
    assert "next:" in text and "every completed step was compensated" in text


def test_start_with_args_list_and_generated_run_id(served: Cli) -> None:
    out = served.ok(
        "start", "purchase_course", "--args", orjson.dumps([purchase(3)]).decode(), "--json"
    )

    started = orjson.loads(out)
    assert started["workflow"] == "purchase_course"
    assert len(started["run_id"]) == 36  # a UUID
    assert served.wait_for_status(started["run_id"])["status"] == "completed"


def test_start_again_with_the_same_run_id_returns_the_same_run(served: Cli) -> None:
    first = start(served, "purchase-p-4", purchase(4))
    second = start(served, "purchase-p-4", purchase(4))

    assert first == second == "purchase-p-4"
    served.wait_for_status(first)
    listed = served.json("runs", "list", "--limit", "1000")
    assert [r["run_id"] for r in listed].count("purchase-p-4") == 1


def test_start_wait_prints_how_the_run_ended(served: Cli) -> None:
    completed = served.run(
        "start",
        "purchase_course",
        "--input",
        orjson.dumps(purchase(5)).decode(),
        "--wait",
        "--timeout",
        "20",
        "--json",
    )
    refunded = served.run(
        "start",
        "purchase_course",
        "--input",
        orjson.dumps(purchase(6, course="rust-301")).decode(),
        "--wait",
        "--timeout",
        "20",
    )

    assert completed.returncode == 0, completed.stderr
    assert orjson.loads(completed.stdout)["status"] == "completed"
    assert refunded.returncode == 1  # the run did not complete
    assert "compensated" in refunded.stdout and "CourseFull" in refunded.stdout
    assert "Traceback" not in refunded.stderr


def test_runs_list_shows_each_runs_step_and_filters(served: Cli) -> None:
    run_id = start(served, "purchase-p-7", purchase(7, course="rust-301"))
    served.wait_for_status(run_id)

    compensated = served.json("runs", "list", "--status", "compensated", "--limit", "1000")
    only_ours = served.json("runs", "list", "--workflow", "purchase_course", "--limit", "1")
    nothing = served.json("runs", "list", "--workflow", "no_such_workflow")
    table = served.ok("runs", "list")

    assert run_id in [r["run_id"] for r in compensated]
    assert {r["status"] for r in compensated} == {"compensated"}
    row = next(r for r in compensated if r["run_id"] == run_id)
    assert row["step"] == "create_enrollment failed (attempt 1)"
    assert len(only_ours) == 1
    assert nothing == []
    assert run_id in table and "create_enrollment failed" in table


def test_runs_history_lists_every_record_in_order(served: Cli) -> None:
    run_id = start(served, "purchase-p-8", purchase(8, course="rust-301"))
    served.wait_for_status(run_id)

    records = served.json("runs", "history", run_id)
    table = served.ok("runs", "history", run_id)

    positions = [r["pos"] for r in records]
    # Strictly increasing; not necessarily contiguous: the engine drops the "started"
    # record of a step that completed before its batch was written.
    assert positions == sorted(set(positions))
    kinds = [r["kind"] for r in records]
    assert kinds[-2:] == ["compensation_completed", "run_compensated"]
    assert "run_failed" in kinds
    assert all(r["at"].endswith("+00:00") for r in records)  # ISO 8601, UTC
    assert "compensation_completed" in table


def test_workflows_list_shows_what_the_worker_registered(served: Cli) -> None:
    assert served.json("workflows", "list") == [{"name": "purchase_course"}]
    assert "purchase_course" in served.ok("workflows", "list")


def test_run_that_fails_before_any_step_completes_ends_failed_not_compensated(
    served: Cli,
) -> None:
    # Given a purchase the payment step cannot even read (it is not an object): the
    # step fails for good before anything was done, so there is nothing to compensate.
    run_id = start(served, "purchase-bad-input", "not-a-purchase")

    shown = served.wait_for_status(run_id)

    # Then the run ends "failed" and stays so: it is not relabelled "compensated" (a
    # terminal status never changes), and no run_compensated record is written.
    assert shown["status"] == "failed", shown["next"]
    kinds = [r["kind"] for r in served.json("runs", "history", run_id)]
    assert "run_compensated" not in kinds
