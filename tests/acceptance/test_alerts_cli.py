"""``legato alerts list``: alerts as an operator reads them, through the CLI (in this
process, with typer's ``CliRunner``) on a real SQLite file that an app filled under a
``FakeClock``: a stuck run, a dead letter, a violated expectation, and one resolved."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

import legato
from legato.cli.alerts import hint_lines
from legato.cli.main import cli
from legato.testing import FakeClock
from tests.fixtures.db import fresh_database

PAID = "paid-learner-is-enrolled"
FIELDS = {
    "alert_id",
    "kind",
    "subject",
    "status",
    "summary",
    "details",
    "raised_at",
    "resolved_at",
    "times",
    "event_id",
}


async def fill(url: str, start: datetime) -> None:
    """Four alerts on ``url``, the clock running from ``start`` to about 7 minutes on.

    ``sync_order`` (stuck after 5 minutes) waits on a partner that never answers: stuck.
    ``bill`` fails its one attempt: a dead letter. Two purchases miss their enrollment's
    5-minute deadline: both violated; order-2's enrollment comes late and resolves its
    alert, order-1's stays raised.
    """
    clock = FakeClock(start)
    app = legato.App("shop", url, clock=clock)
    partner = asyncio.Event()

    @app.step
    async def call_partner(order: str) -> str:
        await partner.wait()  # the partner never answers
        return "ok"

    @app.workflow(name="sync_order", stuck_after=timedelta(minutes=5))
    async def sync_order(order: str) -> str:
        return await call_partner(order)

    @app.on("order.placed", name="bill", retry=legato.Retry(max_attempts=1))
    async def bill(event: legato.Event) -> None:
        raise RuntimeError("billing API down")

    app.expect(
        PAID, after="purchase.completed", then="enrollment.created", within=timedelta(minutes=5)
    )
    async with app:
        await app.publish("purchase.completed", {}, correlationid="order-1")
        await app.publish("purchase.completed", {}, correlationid="order-2")
        await app.start(sync_order, "o-1", run_id="sync-o-1")
        await app.publish("order.placed", {"order": "o-1"})
        await clock.advance(timedelta(minutes=6, seconds=11))  # past stuck_after, deadlines
        await app.publish("enrollment.created", {}, correlationid="order-2")  # late
        await clock.advance(timedelta(seconds=11))  # the next look resolves order-2's
        assert len(await app.list_alerts(status="raised")) == 3
        partner.set()  # let the step end, so the app stops at once


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a database holding the alerts ``fill`` makes (read-only here)."""
    url = fresh_database(tmp_path_factory.mktemp("alerts"))
    asyncio.run(fill(url, datetime.now(UTC) - timedelta(minutes=15)))
    yield url


def legato_cli(database: str, *args: str, color: bool = False) -> Result:
    """``legato *args`` in this process, 200 columns wide, on ``database``."""
    env = {"LEGATO_DATABASE_URL": database, "COLUMNS": "200", "FORCE_COLOR": "1" if color else None}
    return CliRunner().invoke(cli, list(args), env=env)


def ok(database: str, *args: str, color: bool = False) -> str:
    """Run ``legato *args``; require exit code 0; return stdout."""
    result = legato_cli(database, *args, color=color)
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"
    assert result.exception is None, result.exception
    return result.stdout


def as_json(database: str, *args: str) -> Any:
    return orjson.loads(ok(database, *args, "--json"))


def rows(table: str) -> list[str]:
    """The table's lines that begin an alert (a kind in the first column)."""
    return [line for line in table.splitlines() if line.startswith("│ ") and line[2] != " "]


def test_list_shows_every_alert_latest_raised_first_with_its_status(database: str) -> None:
    listed = rows(ok(database, "alerts", "list"))

    assert [line.split("│")[1].strip() for line in listed] == [
        "stuck_run",  # raised last: a minute after the deadlines
        "expectation_violated",
        "expectation_violated",
        "dead_letter",
    ]
    stuck, *_, dead = listed
    assert " sync-o-1 " in stuck and " raised " in stuck and "no progress for 6m" in stuck
    assert " bill 3 " in dead and " raised " in dead and "dead letter of bill" in dead
    # The two violations were raised at once (in either order); order-2's late enrollment
    # resolved its own.
    statuses = [line.split("│")[3].strip() for line in listed]
    assert sorted(statuses[1:3]) == ["raised", "resolved"]
    assert [a["details"].get("key") for a in as_json(database, "alerts", "list")][
        statuses.index("resolved")
    ] == "order-2"


def test_each_row_has_its_raised_and_resolved_times_and_how_often_it_was_raised(
    database: str,
) -> None:
    # Given the alerts as the JSON has them, in the table's order
    alerts = as_json(database, "alerts", "list")
    listed = rows(ok(database, "alerts", "list"))
    assert len(listed) == len(alerts)
    for line, alert in zip(listed, alerts, strict=True):
        cells = [c.strip() for c in line.split("│")[1:-1]]
        kind, subject, status, raised, resolved, times, _ = cells
        assert alert["subject"].startswith(subject)  # a long subject folds onto more lines
        assert (kind, status, times) == (alert["kind"], alert["status"], "1")
        shown = datetime.fromisoformat(alert["raised_at"]).astimezone()
        assert raised in (shown.strftime("%H:%M:%S"), shown.strftime("%Y-%m-%d %H:%M"))
        assert (resolved == "—") is (alert["resolved_at"] is None)


def test_raised_is_red_and_resolved_green(database: str) -> None:
    coloured = ok(database, "alerts", "list", color=True)

    assert "\x1b[31mraised" in coloured
    assert "\x1b[32mresolved" in coloured


def test_status_and_kind_filter_the_list(database: str) -> None:
    raised = as_json(database, "alerts", "list", "--status", "raised")
    assert [a["kind"] for a in raised] == ["stuck_run", "expectation_violated", "dead_letter"]
    [resolved] = as_json(database, "alerts", "list", "--status", "resolved")
    assert resolved["details"]["key"] == "order-2"
    assert resolved["resolved_at"] is not None

    both = as_json(database, "alerts", "list", "--kind", "expectation_violated")
    assert sorted(a["details"]["key"] for a in both) == ["order-1", "order-2"]
    [one] = as_json(database, "alerts", "list", "-k", "expectation_violated", "-s", "raised")
    assert one["details"]["key"] == "order-1"


def test_json_has_every_field_of_an_alert(database: str) -> None:
    listed = as_json(database, "alerts", "list")

    assert [set(a) for a in listed] == [FIELDS] * 4
    stuck = listed[0]
    assert stuck["alert_id"] == "stuck_run:sync-o-1"
    assert stuck["details"] == {"run_id": "sync-o-1", "workflow": "sync_order", "status": "running"}
    assert stuck["event_id"]


def test_the_hint_names_the_command_that_shows_each_raised_subject(database: str) -> None:
    printed = ok(database, "alerts", "list").splitlines()

    start = printed.index("a raised alert is resolved once its cause clears; look closer with:")
    assert [line.split(maxsplit=1) for line in printed[start + 1 :]] == [
        ["stuck_run", "legato runs show sync-o-1"],
        ["expectation_violated", f"legato expectations show {PAID} --key order-1"],
        ["dead_letter", "legato deadletters list --subscription bill"],
    ]


def test_every_command_the_hint_names_runs(database: str) -> None:
    printed = ok(database, "alerts", "list").splitlines()
    commands = [line.split(maxsplit=1)[1] for line in printed if " legato " in line]
    assert len(commands) == 3
    for command in commands:
        shown = ok(database, *shlex.split(command)[1:])
        assert "sync-o-1" in shown or "order-1" in shown or "billing API down" in shown


def test_no_hint_when_nothing_listed_is_raised(database: str) -> None:
    printed = ok(database, "alerts", "list", "--status", "resolved")

    assert "look closer" not in printed
    assert len(rows(printed)) == 1


def test_the_limit_keeps_the_latest_and_says_more_exist(database: str) -> None:
    printed = ok(database, "alerts", "list", "--limit", "2")

    assert len(rows(printed)) == 2
    assert "the 2 latest alerts shown; --limit N shows more" in printed
    assert [a["kind"] for a in as_json(database, "alerts", "list", "-n", "1")] == ["stuck_run"]


def test_a_filter_that_matches_nothing_says_so(database: str) -> None:
    assert ok(database, "alerts", "list", "--kind", "dead_worker").strip() == (
        "no dead_worker alerts"
    )
    assert ok(database, "alerts", "list", "-s", "resolved", "-k", "stuck_run").strip() == (
        "no resolved stuck_run alerts"
    )
    assert as_json(database, "alerts", "list", "--kind", "unrouted_event") == []


def test_a_database_with_no_alerts_says_when_they_are_looked_for(tmp_path: Path) -> None:
    url = fresh_database(tmp_path)
    with legato.Client(url) as client:  # a migrated database, with nothing in it
        assert client.list_alerts() == []

    assert ok(url, "alerts", "list").strip().startswith("no alerts yet: the workers serving")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--status", "open"), ("--kind", "stuck"), ("--limit", "0")],
)
def test_bad_option_values_are_refused_by_the_parser(
    database: str, option: str, value: str
) -> None:
    result = legato_cli(database, "alerts", "list", option, value)

    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output


@pytest.mark.sqlite_only
def test_a_database_that_does_not_exist_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    result = legato_cli(f"sqlite:///{missing}", "alerts", "list")

    assert result.exit_code == 1
    assert "no Legato database at" in result.output
    assert not missing.exists()


def test_the_hint_names_the_latest_of_several_raised_alerts_of_a_kind() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)

    def stuck(run_id: str) -> legato.Alert:
        return legato.Alert(
            f"stuck_run:{run_id}",
            legato.AlertKind.STUCK_RUN,
            run_id,
            legato.AlertStatus.RAISED,
            f"run {run_id} has made no progress",
            at,
            details={"run_id": run_id},
        )

    # Given two stuck runs, latest first, one with a space in its id
    lines = hint_lines([stuck("order 7"), stuck("order-6")])

    assert lines[1:] == ["  stuck_run  legato runs show 'order 7'  (the latest of 2)"]
