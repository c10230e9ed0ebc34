"""``legato expectations list`` and ``show``: expectation instances as a user reads them,
through the CLI (in this process, with typer's ``CliRunner``) on a real SQLite file that
an app with ``app.expect`` filled under a ``FakeClock``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

import legato
from legato.cli.main import cli
from legato.testing import FakeClock
from tests.fixtures.db import fresh_database

PAID = "paid-learner-is-enrolled"
INVOICE = "invoice-is-paid"
STATUSES = ["open", "fulfilled", "violated", "cancelled", "late_fulfilled"]
FIELDS = {
    "awaited",
    "expectation",
    "instance",
    "key",
    "status",
    "missing",
    "trigger_seq",
    "correlation_id",
    "opened_at",
    "deadline",
    "closed_at",
    "closed_by",
    "violation_id",
}


async def fill(url: str, start: datetime) -> None:
    """Instances of every kind, on ``url``: the clock runs from ``start`` to 11 minutes on.

    ``paid-learner-is-enrolled`` (10 minutes for an enrollment and a welcome mail):
    order-1 gets its enrollment only and is violated; order-2 gets both and is fulfilled;
    order-4 is refunded (cancelled); order-3, opened last, is open and due. The
    ``invoice-is-paid`` instance of order-3 (2 minutes) is open, and overdue in real time:
    the fake clock stops before its deadline, so no worker violated it.
    """
    clock = FakeClock(start)
    app = legato.App("shop", url, clock=clock)
    app.expect(
        PAID,
        after="purchase.completed",
        then=["enrollment.created", "welcome.sent"],
        within=timedelta(minutes=10),
        unless="purchase.refunded",
    )
    app.expect(INVOICE, after="invoice.issued", then="invoice.paid", within=timedelta(minutes=2))
    async with app:
        for order in ("order-1", "order-2", "order-4"):
            await app.publish("purchase.completed", {"order": order}, correlationid=order)
            await clock.settle()
            await clock.advance(timedelta(seconds=10))
        await clock.advance(timedelta(seconds=30))
        await app.publish("enrollment.created", {}, correlationid="order-1")
        await app.publish("enrollment.created", {}, correlationid="order-2")
        await app.publish("welcome.sent", {}, correlationid="order-2")
        await app.publish("purchase.refunded", {}, correlationid="order-4")
        await clock.settle()
        await clock.advance(timedelta(minutes=10))  # past order-1's deadline
        await app.publish("purchase.completed", {"order": "order-3"}, correlationid="order-3")
        await clock.settle()
        await clock.advance(timedelta(seconds=1))
        await app.publish("invoice.issued", {"order": "order-3"}, correlationid="order-3")
        await clock.settle()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a database holding the instances ``fill`` makes (read-only here).

    The clock starts 15 minutes ago, so it stops 4 minutes ago: order-3's purchase is
    due in about 6 minutes, its invoice overdue by about 2.
    """
    url = fresh_database(tmp_path_factory.mktemp("expectations"))
    asyncio.run(fill(url, datetime.now(UTC) - timedelta(minutes=15)))
    yield url


def legato_cli(database: str, *args: str) -> Result:
    """``legato *args`` in this process, 200 columns wide, on ``database``."""
    env = {"LEGATO_DATABASE_URL": database, "COLUMNS": "200", "FORCE_COLOR": None}
    return CliRunner().invoke(cli, list(args), env=env)


def ok(database: str, *args: str) -> str:
    """Run ``legato *args``; require exit code 0; return stdout."""
    result = legato_cli(database, *args)
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"
    assert result.exception is None, result.exception
    return result.stdout


def as_json(database: str, *args: str) -> Any:
    return orjson.loads(ok(database, *args, "--json"))


def row(table: str, expectation: str, key: str) -> str:
    """The table's line for one instance."""
    [line] = [
        line for line in table.splitlines() if f" {expectation} " in line and f" {key} " in line
    ]
    return line


def keys(listed: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["expectation"], i["key"]) for i in listed]


# -- list ----------------------------------------------------------------------------------


def test_list_shows_every_instance_newest_first_with_its_status(database: str) -> None:
    table = ok(database, "expectations", "list")

    rows = [line for line in table.splitlines() if PAID in line or INVOICE in line]
    assert [re.findall(r"order-\d", line) for line in rows] == [
        ["order-3"],
        ["order-3"],
        ["order-4"],
        ["order-2"],
        ["order-1"],
    ]
    assert INVOICE in rows[0]
    for key, status in [
        ("order-3", "open"),
        ("order-4", "cancelled"),
        ("order-2", "fulfilled"),
        ("order-1", "violated"),
    ]:
        assert f" {status} " in row(table, PAID, key), table
    assert " open " in row(table, INVOICE, "order-3")


def test_list_shows_the_violation_id_of_a_violated_instance(database: str) -> None:
    [violated] = as_json(database, "expectations", "list", "--status", "violated")
    assert violated["violation_id"]

    table = ok(database, "expectations", "list")

    assert violated["violation_id"] in row(table, PAID, "order-1")
    assert "legato events show VIOLATION_ID" in table


def test_list_shows_how_long_an_open_instance_has_or_how_late_it_is(database: str) -> None:
    table = ok(database, "expectations", "list")

    assert re.search(r"due in [56]m \d\ds", row(table, PAID, "order-3")), table
    assert re.search(r"overdue [12]m \d\ds", row(table, INVOICE, "order-3")), table
    assert "an overdue instance is violated by the next worker" in table


def test_list_json_has_every_field(database: str) -> None:
    listed = as_json(database, "expectations", "list")

    assert all(set(i) == FIELDS for i in listed)
    by_key = {(i["expectation"], i["key"]): i for i in listed}
    violated = by_key[PAID, "order-1"]
    assert violated["status"] == "violated"
    assert violated["missing"] == [1]  # the enrollment came, the welcome mail did not
    assert violated["awaited"] == ["type enrollment.created", "type welcome.sent"]
    assert violated["correlation_id"] == "order-1"
    assert violated["violation_id"]
    opened = datetime.fromisoformat(violated["opened_at"])
    assert datetime.fromisoformat(violated["deadline"]) == opened + timedelta(minutes=10)
    fulfilled = by_key[PAID, "order-2"]
    assert (fulfilled["status"], fulfilled["missing"]) == ("fulfilled", [])
    assert fulfilled["closed_by"] > fulfilled["trigger_seq"]
    assert fulfilled["closed_at"] is not None
    assert fulfilled["violation_id"] is None
    still_open = by_key[PAID, "order-3"]
    assert (still_open["status"], still_open["missing"]) == ("open", [0, 1])
    assert still_open["closed_at"] is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("open", [(INVOICE, "order-3"), (PAID, "order-3")]),
        ("violated", [(PAID, "order-1")]),
        ("fulfilled", [(PAID, "order-2")]),
        ("cancelled", [(PAID, "order-4")]),
        ("late_fulfilled", []),
    ],
)
def test_list_status_keeps_the_instances_in_that_status(
    database: str, status: str, expected: list[tuple[str, str]]
) -> None:
    assert keys(as_json(database, "expectations", "list", "--status", status)) == expected


def test_list_status_filters_the_table_too(database: str) -> None:
    table = ok(database, "expectations", "list", "--status", "violated")

    assert " order-1 " in table
    assert "order-2" not in table and "order-3" not in table


def test_list_name_and_limit_narrow_the_list(database: str) -> None:
    assert keys(as_json(database, "expectations", "list", "--name", INVOICE)) == [
        (INVOICE, "order-3")
    ]
    assert keys(as_json(database, "expectations", "list", "--name", PAID, "--limit", "2")) == [
        (PAID, "order-3"),
        (PAID, "order-4"),
    ]
    table = ok(database, "expectations", "list", "--limit", "2")
    assert "the 2 newest instances shown; --limit N shows more" in table


def test_list_says_so_when_nothing_matches(database: str) -> None:
    shown = ok(database, "expectations", "list", "--name", "nobody-expects-this")

    assert shown.strip() == "no expectation instances match"
    assert as_json(database, "expectations", "list", "--name", "nobody-expects-this") == []


def test_list_refuses_an_unknown_status_and_names_the_valid_ones(database: str) -> None:
    result = legato_cli(database, "expectations", "list", "--status", "broken")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Invalid value for '--status'" in result.stderr
    for status in STATUSES:
        assert f"'{status}'" in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_list_takes_the_database_option_over_the_environment(database: str, tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nothing-here.db'}"
    result = CliRunner().invoke(
        cli,
        ["expectations", "list", "--database", database, "--json"],
        env={"LEGATO_DATABASE_URL": missing},
    )

    assert result.exit_code == 0, result.output
    assert len(orjson.loads(result.stdout)) == 5
    assert not (tmp_path / "nothing-here.db").exists()


def test_list_keeps_violation_ids_whole_on_a_narrow_terminal(database: str) -> None:
    [violated] = as_json(database, "expectations", "list", "--status", "violated")
    env = {"LEGATO_DATABASE_URL": database, "COLUMNS": "80", "FORCE_COLOR": None}

    result = CliRunner().invoke(cli, ["expectations", "list"], env=env)

    assert result.exit_code == 0, result.output
    assert violated["violation_id"] in result.stdout
    assert PAID in result.stdout


# -- show ----------------------------------------------------------------------------------


def test_show_details_each_instance_and_counts_them_by_status(database: str) -> None:
    listed = {i["key"]: i for i in as_json(database, "expectations", "list", "--name", PAID)}

    shown = ok(database, "expectations", "show", PAID)

    assert f"{PAID}: 4 instances (1 open, 1 fulfilled, 1 violated, 1 cancelled, " in shown
    assert shown.rstrip().endswith("0 late_fulfilled)")
    assert INVOICE not in shown
    panels = {panel.split()[0]: panel for panel in shown.split("╭─ key ")[1:]}
    assert list(panels) == ["order-3", "order-4", "order-2", "order-1"]
    violated = panels["order-1"]
    assert f"trigger         seq {listed['order-1']['trigger_seq']} " in violated
    assert "missing         type welcome.sent " in violated
    assert "correlation id  order-1 " in violated
    assert f"violation       {listed['order-1']['violation_id']} " in violated
    fulfilled = panels["order-2"]
    assert f"closed by       seq {listed['order-2']['closed_by']} " in fulfilled
    assert "missing         — " in fulfilled
    assert "missing         type enrollment.created, type welcome.sent " in panels["order-3"]
    assert re.search(r"\(due in [56]m \d\ds\)", panels["order-3"])


def test_show_key_shows_that_key_only(database: str) -> None:
    shown = ok(database, "expectations", "show", PAID, "--key", "order-1")

    assert shown.count("╭─ key ") == 1
    assert "╭─ key order-1 " in shown
    assert "violated" in shown
    assert f"{PAID} for key order-1: 1 instance (0 open, 0 fulfilled, 1 violated," in shown


def test_show_json_has_the_counts_and_the_instances(database: str) -> None:
    shown = as_json(database, "expectations", "show", PAID, "--key", "order-2")

    assert shown["expectation"] == PAID
    assert shown["key"] == "order-2"
    assert shown["counts"] == {s: int(s == "fulfilled") for s in STATUSES}
    [instance] = shown["instances"]
    assert set(instance) == FIELDS
    assert (instance["key"], instance["status"]) == ("order-2", "fulfilled")


def test_show_of_a_key_without_instances_says_so(database: str) -> None:
    shown = ok(database, "expectations", "show", PAID, "--key", "order-99")

    assert shown.strip() == (
        f"no instances of expectation {PAID} for key order-99 yet: a trigger event opens one"
    )
    empty = as_json(database, "expectations", "show", PAID, "--key", "order-99")
    assert (empty["instances"], empty["counts"]["open"]) == ([], 0)


def test_show_of_an_unknown_expectation_is_a_clear_error(database: str) -> None:
    result = legato_cli(database, "expectations", "show", "paid-learner-is-enroled")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no expectation 'paid-learner-is-enroled' on this database" in result.stderr
    assert f"registered expectations: {INVOICE}, {PAID}" in result.stderr
    assert "Traceback" not in result.output
