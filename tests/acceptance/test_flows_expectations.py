"""``legato flows show`` marks the expectations of a flow: the open, fulfilled and
violated instances its triggers opened, and under a violation the run it started."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
from typer.testing import CliRunner

import legato
from legato.cli.main import cli
from legato.testing import FakeClock
from tests.fixtures.db import fresh_database


def build(database: str) -> None:
    """order-1 fulfilled, order-2 violated (a refund run started), order-3 open."""
    clock = FakeClock()
    app = legato.App("school", database, clock=clock)

    @app.workflow(name="refund_or_enroll")
    async def refund_or_enroll(violation: legato.Event) -> str:
        return "refunded"

    app.expect(
        "paid-learner-is-enrolled",
        after="purchase.completed",
        then="enrollment.created",
        within=timedelta(minutes=5),
        start="refund_or_enroll",
    )

    async def main() -> None:
        async with app:
            for order in ("order-1", "order-2"):
                await app.publish("purchase.completed", {"order": order}, correlationid=order)
            await app.publish("enrollment.created", {}, correlationid="order-1")
            await clock.advance(timedelta(minutes=6))
            await app.publish("purchase.completed", {"order": "order-3"}, correlationid="order-3")
            await clock.settle()

    asyncio.run(main())


def show(database: str, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["flows", "show", *args, "--database", database], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_violated_flow_shows_the_violation_the_run_it_started_and_the_instance(
    tmp_path: Path,
) -> None:
    database = fresh_database(tmp_path)
    build(database)

    tree = show(database, "order-2")
    lines = tree.splitlines()
    violation = next(i for i, line in enumerate(lines) if "legato.expectation.violated" in line)
    run = next(i for i, line in enumerate(lines) if "── run refund_or_enroll:" in line)
    assert run > violation and "refund_or_enroll  completed" in lines[run]
    # Drawn under the violation: indented one level deeper.
    assert lines[run].index("run ") > lines[violation].index("event ")
    assert "expectations" in tree
    [expect] = [line for line in lines if "expect paid-learner-is-enrolled" in line]
    assert "key order-2" in expect and "violated" in expect
    # The expectation's own done deliveries are not drawn under each event.
    assert "expectation:paid-learner-is-enrolled" not in tree

    data = orjson.loads(show(database, "order-2", "--json"))
    [inst] = data["expectations"]
    assert inst["status"] == "violated" and inst["key"] == "order-2"
    [trigger] = data["roots"]
    [violated] = trigger["caused"]
    assert violated["event"]["type"] == "legato.expectation.violated"
    assert violated["run"]["workflow"] == "refund_or_enroll"
    assert violated["run"]["status"] == "completed"

    chart = show(database, "order-2", "--mermaid")
    assert 'ex1>"expect paid-learner-is-enrolled<br/>violated' in chart
    assert "-.->|expects| ex1" in chart


def test_fulfilled_and_open_flows_are_marked_too(tmp_path: Path) -> None:
    database = fresh_database(tmp_path)
    build(database)
    assert "fulfilled" in next(
        line for line in show(database, "order-1").splitlines() if "expect " in line
    )
    open_line = next(line for line in show(database, "order-3").splitlines() if "expect " in line)
    assert " open " in open_line and "by " in open_line
    assert "legato.expectation" not in show(database, "order-1").replace("expect pa", "")


def test_runs_show_of_a_started_run_links_the_violation(tmp_path: Path) -> None:
    database = fresh_database(tmp_path)
    build(database)
    with legato.Client(database) as client:
        [run] = client.list_runs(workflow="refund_or_enroll")
    result = CliRunner().invoke(
        cli, ["runs", "show", run.run_id, "--database", database], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "started by" in line]
    assert "violation of expectation paid-learner-is-enrolled for key order-2" in line
    assert "type enrollment.created missing" in line
    assert "legato flows show order-2" in line
