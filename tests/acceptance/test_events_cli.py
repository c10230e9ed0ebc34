"""``legato events`` and ``legato deadletters``: the event log and its dead letters,
through the real CLI on a real SQLite file, delivered by ``tests.acceptance.events_app``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.cli_driver import Cli
from tests.acceptance.events_app import deliver, register
from tests.acceptance.test_bad_input import assert_refused


@pytest.fixture
def shop(cli: Cli) -> Cli:
    """``cli`` on a database where the events app registered its subscriptions."""
    register(cli.database)
    return cli


def publish(cli: Cli, type_: str, data: Any, *options: str) -> dict[str, Any]:
    """``legato events publish`` with ``--json``: the stored event and its deliveries."""
    published: dict[str, Any] = cli.json(
        "events", "publish", type_, "--data", orjson.dumps(data).decode(), *options
    )
    return published


def deliveries(cli: Cli, event_id: str) -> dict[str, dict[str, Any]]:
    """The event's deliveries by subscription, from ``legato events show --json``."""
    shown = cli.json("events", "show", event_id)
    return {d["subscription"]: d for d in shown["deliveries"]}


def ids(listed: list[dict[str, Any]]) -> list[str]:
    return [e["event"]["id"] for e in listed]


# -- list ----------------------------------------------------------------------------------


def test_list_filters_by_type_correlation_time_and_unrouted(shop: Cli) -> None:
    publish(shop, "order.placed", {"n": 1}, "--id", "a", "--subject", "o-1")
    publish(shop, "order.paid", {"n": 2}, "--id", "b", "--correlation", "a")
    publish(shop, "misc.noise", None, "--id", "c")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    assert ids(shop.json("events", "list")) == ["a", "b", "c"]
    assert ids(shop.json("events", "list", "--type", "order.paid")) == ["b"]
    assert ids(shop.json("events", "list", "--correlation", "a")) == ["a", "b"]
    assert ids(shop.json("events", "list", "--unrouted")) == ["c"]
    assert ids(shop.json("events", "list", "--since", "1h")) == ["a", "b", "c"]
    assert ids(shop.json("events", "list", "--until", "1h")) == []
    assert ids(shop.json("events", "list", "--since", future)) == []
    assert ids(shop.json("events", "list", "--until", future, "--limit", "2")) == ["a", "b"]
    assert "no events match" in shop.ok("events", "list", "--type", "nothing.like.it")


def test_list_table_shows_type_id_publisher_and_unrouted(shop: Cli) -> None:
    publish(shop, "order.placed", {"n": 1}, "--id", "evt-1", "--subject", "o-1")
    publish(shop, "misc.noise", None, "--id", "evt-2", "--source", "/billing-system")

    table = shop.ok("events", "list")

    for text in ("order.placed", "evt-1", "/legato/client", "o-1", "misc.noise", "evt-2"):
        assert text in table, table
    assert "/billing-system" in table
    assert "unrouted" in table.splitlines()[-2], table  # the last row, above the frame


@pytest.mark.parametrize("bad", ["yesterday", "12x", "2026-13-01"])
def test_list_refuses_a_time_it_cannot_read(shop: Cli, bad: str) -> None:
    assert_refused(shop.run("events", "list", "--since", bad), 2, "not a time", "how long ago")


def test_list_refuses_an_until_before_since(shop: Cli) -> None:
    result = shop.run("events", "list", "--since", "1h", "--until", "2h")
    assert_refused(result, 2, "is not after --since")


# -- show ----------------------------------------------------------------------------------


def test_show_gives_the_event_and_each_delivery_with_its_last_error(shop: Cli) -> None:
    publish(shop, "order.placed", {"total": 42}, "--id", "o-7", "--subject", "o-7")
    deliver(shop.database)

    shown = shop.json("events", "show", "o-7")
    text = shop.ok("events", "show", "o-7")

    assert shown["event"]["type"] == "order.placed"
    assert shown["event"]["data"] == {"total": 42}
    assert shown["event"]["subject"] == "o-7"
    by_name = {d["subscription"]: d for d in shown["deliveries"]}
    assert set(by_name) == {"audit", "billing", "warehouse", "workflow:fulfil"}
    assert by_name["audit"]["status"] == "done"
    dead = by_name["billing"]
    assert (dead["status"], dead["attempts"]) == ("dead", 2)
    assert dead["error"]["message"] == "card declined for o-7"
    assert "CardDeclined" in dead["error"]["traceback"]
    waiting = by_name["warehouse"]
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert datetime.fromisoformat(waiting["due_at"]) > datetime.now(UTC) + timedelta(minutes=20)
    assert by_name["workflow:fulfil"]["run_id"] == "fulfil:/legato/client:o-7"
    billing_line = next(line for line in text.splitlines() if "billing" in line)
    assert "dead" in billing_line
    assert "CardDeclined: card declined for o-7" in billing_line
    assert "ConnectionError: warehouse offline" in text
    assert '"total": 42' in text
    assert "legato deadletters redrive o-7" in text


def test_show_of_an_unknown_event_is_a_clear_error(shop: Cli) -> None:
    result = shop.run("events", "show", "no-such-event")
    assert_refused(result, 1, "no event 'no-such-event' in the log")


def test_show_of_an_id_two_sources_used_asks_for_the_source(shop: Cli) -> None:
    publish(shop, "order.paid", {"from": "client"}, "--id", "p-1")
    publish(shop, "order.paid", {"from": "bank"}, "--id", "p-1", "--source", "/bank")

    result = shop.run("events", "show", "p-1")
    chosen = shop.json("events", "show", "p-1", "--source", "/bank")

    assert_refused(result, 2, "published by several sources", "--source SOURCE")
    assert chosen["event"]["data"] == {"from": "bank"}


# -- publish -------------------------------------------------------------------------------


def test_publish_writes_one_pending_delivery_per_matching_subscription(shop: Cli) -> None:
    published = publish(shop, "order.packed", {"order": "o-1"}, "--key", "o-1")
    text = shop.ok("events", "publish", "misc.noise", "--data", "{}")

    event = published["event"]
    assert event["source"] == "/legato/client"
    assert event["partitionkey"] == "o-1"
    assert event["correlationid"] == event["id"]  # a flow of its own
    assert published["duplicate"] is False
    assert {d["subscription"]: d["status"] for d in published["deliveries"]} == {
        "audit": "pending",
        "notify": "pending",
    }
    assert "no subscription matched it (unrouted)" in text
    assert len(shop.json("events", "list")) == 2


def test_publishing_the_same_source_and_id_again_writes_nothing(shop: Cli) -> None:
    publish(shop, "order.paid", {"amount": 1}, "--id", "pay-1")

    again = publish(shop, "order.paid", {"amount": 999}, "--id", "pay-1")
    text = shop.ok("events", "publish", "order.paid", "--data", "{}", "--id", "pay-1")

    assert again["duplicate"] is True
    assert again["event"]["data"] == {"amount": 1}
    assert "was published before; nothing was written" in text
    assert ids(shop.json("events", "list")) == ["pay-1"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["order.placed", "--data", "{bad"], "not valid JSON"),
        (["order.placed", "--data", "NaN"], "not valid JSON"),
        (["order.placed", "--data", "{}", "--subject", ""], "subject must be a non-empty"),
        (["", "--data", "{}"], "type must be a non-empty string"),
        (["order.placed", "--data", "{}", "--id", ""], "id must be a non-empty string"),
    ],
    ids=["bad-json", "nan", "empty-subject", "empty-type", "empty-id"],
)
def test_publish_of_bad_input_is_refused_and_writes_nothing(
    shop: Cli, args: list[str], expected: str
) -> None:
    result = shop.run("events", "publish", *args)

    assert_refused(result, 2, expected)
    assert shop.json("events", "list") == []


def test_cloudevents_from_a_file_are_published_as_they_are(shop: Cli, tmp_path: Path) -> None:
    batch = [
        {"specversion": "1.0", "type": "order.packed", "source": "/wms", "id": "w-1"},
        {
            "specversion": "1.0",
            "type": "order.paid",
            "source": "/pay",
            "id": "p-9",
            "correlationid": "order-9",
            "data": {"amount": 5},
        },
    ]
    (tmp_path / "batch.json").write_bytes(orjson.dumps(batch))

    published = shop.json("events", "publish-cloudevents", str(tmp_path / "batch.json"))

    assert [(e["id"], e["source"]) for e in published] == [("w-1", "/wms"), ("p-9", "/pay")]
    assert published[0]["correlationid"] == "w-1"  # no correlation id: a flow of its own
    stored = shop.json("events", "show", "p-9")["event"]
    assert (stored["correlationid"], stored["data"]) == ("order-9", {"amount": 5})


def test_a_cloudevents_batch_with_one_bad_event_publishes_none(shop: Cli, tmp_path: Path) -> None:
    good = {"specversion": "1.0", "type": "order.packed", "source": "/wms", "id": "w-2"}
    (tmp_path / "bad.json").write_bytes(orjson.dumps([good, {"type": "order.paid"}]))

    result = shop.run("events", "publish-cloudevents", str(tmp_path / "bad.json"))

    assert_refused(result, 2, "event 1 of the batch", "nothing was published")
    assert shop.json("events", "list") == []


# -- dead letters --------------------------------------------------------------------------


def test_deadletters_list_shows_each_dead_delivery_with_its_event_and_error(shop: Cli) -> None:
    publish(shop, "order.placed", {}, "--id", "o-1", "--subject", "o-1")
    publish(shop, "order.paid", {}, "--id", "p-1")
    deliver(shop.database)

    dead = shop.json("deadletters", "list")
    text = shop.ok("deadletters", "list")

    assert [(d["subscription"], d["event_id"], d["type"]) for d in dead] == [
        ("billing", "o-1", "order.placed")
    ]
    assert dead[0]["error"]["message"] == "card declined for o-1"
    for part in ("billing", "o-1", "order.placed", "CardDeclined"):
        assert part in text, text
    assert shop.json("deadletters", "list", "--subscription", "audit") == []
    assert "no dead letters for audit" in shop.ok("deadletters", "list", "-s", "audit")


def test_redrive_by_id_makes_the_dead_letter_pending_then_a_fixed_handler_delivers_it(
    shop: Cli,
) -> None:
    publish(shop, "order.placed", {}, "--id", "o-1", "--subject", "o-1")
    deliver(shop.database)
    assert deliveries(shop, "o-1")["billing"]["status"] == "dead"

    out = shop.ok("deadletters", "redrive", "o-1")

    assert "1 dead letter(s) for event o-1 made pending again" in out
    redriven = deliveries(shop, "o-1")["billing"]
    assert (redriven["status"], redriven["attempts"]) == ("pending", 0)
    assert shop.json("deadletters", "list") == []
    deliver(shop.database, healthy={"billing"})
    assert deliveries(shop, "o-1")["billing"]["status"] == "done"
    assert deliveries(shop, "o-1")["billing"]["attempts"] == 1


def test_redrive_by_subscription_at_a_rate_redrives_all_of_its_dead_letters(shop: Cli) -> None:
    for n in (1, 2, 3):
        publish(shop, "order.placed", {}, "--id", f"o-{n}", "--subject", f"o-{n}")
    deliver(shop.database)
    assert len(shop.json("deadletters", "list", "--subscription", "billing")) == 3

    asked = shop.run("deadletters", "redrive", "--subscription", "billing")  # no terminal
    assert asked.returncode == 1
    assert "3 dead letter(s) of billing would be delivered again" in asked.stdout
    assert "nothing done: 3 dead letter(s) would be redriven" in asked.stderr
    assert len(shop.json("deadletters", "list", "--subscription", "billing")) == 3

    redriven = shop.json(
        "deadletters", "redrive", "--subscription", "billing", "--rate", "100/s", "--yes"
    )
    again = shop.ok("deadletters", "redrive", "--subscription", "billing", "--rate", "100")

    assert redriven["redriven"] == 3 and redriven["preview"]["count"] == 3
    assert sorted(redriven["preview"]["event_ids"]) == ["o-1", "o-2", "o-3"]
    assert "no dead letters for subscription billing; nothing to redrive" in again
    for n in (1, 2, 3):
        assert deliveries(shop, f"o-{n}")["billing"]["status"] == "pending"
    assert deliveries(shop, "o-1")["warehouse"]["attempts"] == 1  # other subscribers untouched


@pytest.mark.parametrize(
    "args",
    [
        ["deadletters", "redrive", "--subscription", "biling"],
        ["deadletters", "redrive", "o-1", "--subscription", "biling"],
        ["deadletters", "list", "--subscription", "biling"],
        ["events", "replay", "--since", "1h", "--to", "biling"],
    ],
    ids=["redrive", "redrive-event", "list", "replay"],
)
def test_an_unknown_subscription_is_refused_and_changes_nothing(shop: Cli, args: list[str]) -> None:
    publish(shop, "order.placed", {}, "--id", "o-1", "--subject", "o-1")
    deliver(shop.database)
    before = shop.json("events", "show", "o-1")

    result = shop.run(*args)

    assert_refused(result, 2, "no subscription named 'biling'", "billing")
    assert shop.json("events", "show", "o-1") == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["deadletters", "redrive"], "an EVENT_ID, or --subscription NAME"),
        (["deadletters", "redrive", "-s", "billing", "--rate", "fast"], "not a rate"),
        (["deadletters", "redrive", "-s", "billing", "--rate", "0/s"], "not a rate"),
    ],
    ids=["nothing-named", "bad-rate", "zero-rate"],
)
def test_redrive_refuses_a_command_line_that_names_nothing_or_a_bad_rate(
    shop: Cli, args: list[str], expected: str
) -> None:
    assert_refused(shop.run(*args), 2, expected)


# -- replay and prune ----------------------------------------------------------------------


def test_replay_delivers_archived_events_again_marked_as_replay(shop: Cli) -> None:
    publish(shop, "order.paid", {}, "--id", "p-1")
    publish(shop, "order.packed", {"order": "o-1"}, "--id", "k-1")
    deliver(shop.database)
    assert deliveries(shop, "p-1")["audit"]["status"] == "done"

    scheduled = shop.json(
        "events", "replay", "--since", "1h", "--to", "audit", "--type", "order.paid"
    )

    assert scheduled == {"subscription": "audit", "scheduled": 1}
    replayed = deliveries(shop, "p-1")["audit"]
    assert (replayed["status"], replayed["replay"]) == ("pending", True)
    assert deliveries(shop, "k-1")["audit"]["replay"] is False  # another type: left alone
    deliver(shop.database)
    done = deliveries(shop, "p-1")["audit"]
    assert (done["status"], done["replay"]) == ("done", True)
    nothing = shop.ok("events", "replay", "--since", "1h", "--until", "30m", "--to", "audit")
    assert "nothing scheduled" in nothing


def test_prune_deletes_old_delivered_events_and_keeps_pending_ones(shop: Cli) -> None:
    # Given, 30 days ago, a delivered order.paid and an order.placed whose warehouse
    # delivery is still pending (its fulfil run published order.packed, whose notify
    # handler published customer.notified); and an order.paid recorded now
    async def old_events(app: Any) -> None:
        await app.publish("order.paid", {}, id="old-paid")
        await app.publish("order.placed", {}, id="old-placed", subject="o-1")

    deliver(shop.database, start=datetime.now(UTC) - timedelta(days=30), then=old_events)
    publish(shop, "order.paid", {}, "--id", "new-paid")
    deliver(shop.database)
    types = [e["event"]["type"] for e in shop.json("events", "list")]
    assert types == [
        "order.paid",
        "order.placed",
        "order.packed",
        "customer.notified",
        "order.paid",
    ]
    assert deliveries(shop, "old-placed")["warehouse"]["status"] == "pending"

    pruned = shop.json("events", "prune", "--older-than", "7d")

    assert pruned["pruned"] == 3
    assert ids(shop.json("events", "list")) == ["old-placed", "new-paid"]
    assert "0 event(s) recorded more than 7d ago pruned" in shop.ok(
        "events", "prune", "--older-than", "7d"
    )


@pytest.mark.parametrize(
    ("bad", "expected"),
    [("a week", "not a duration"), ("7", "not a duration"), ("99999999d", "1,000 years")],
)
def test_prune_refuses_a_duration_it_cannot_use_and_prunes_nothing(
    shop: Cli, bad: str, expected: str
) -> None:
    publish(shop, "misc.noise", None, "--id", "n-1")

    assert_refused(shop.run("events", "prune", "--older-than", bad), 2, expected)
    assert ids(shop.json("events", "list")) == ["n-1"]


# -- subscriptions -------------------------------------------------------------------------


def test_subscriptions_list_and_remove_one_whose_handler_is_gone(shop: Cli) -> None:
    publish(shop, "order.packed", {"n": 1}, "--id", "p-1")  # nobody delivers it here
    listed = {s["name"]: s for s in shop.json("subscriptions", "list")}
    assert {"audit", "billing", "warehouse", "notify", "workflow:fulfil"} <= set(listed)
    assert (listed["notify"]["kind"], listed["notify"]["pattern"]) == ("handler", "order.packed")
    assert listed["notify"]["pending"] == 1 and listed["notify"]["dead"] == 0
    assert "notify" in shop.ok("subscriptions", "list")

    # notify's handler is gone from the code: its pending delivery holds p-1 back.
    removed = shop.json("subscriptions", "remove", "notify")
    assert removed == {"subscription": "notify", "deliveries_removed": 1}
    assert "notify" not in {s["name"] for s in shop.json("subscriptions", "list")}
    assert deliveries(shop, "p-1") == {"audit": deliveries(shop, "p-1")["audit"]}
    # New events are no longer routed to it.
    assert "notify" not in deliveries(shop, publish(shop, "order.packed", None)["event"]["id"])


def test_removing_an_unknown_subscription_is_refused(shop: Cli) -> None:
    result = shop.run("subscriptions", "remove", "nope")
    assert_refused(result, 2, "nope", "billing", "nothing was changed")
    assert len(shop.json("subscriptions", "list")) >= 5
