"""``/api/events``, ``/api/flows``, ``/api/deadletters``, ``/api/expectations`` and
``/api/alerts`` on a real server with a worker of ``tests/api/api_app.py`` delivering:
publish as JSON, as a structured CloudEvent and as a batch; refusals that store nothing;
the log's filters; one event with its deliveries; a flow; dead letters and redrive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import API_APP, Server, assert_problem, eventually

CLOUDEVENT = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@pytest.fixture(scope="module", autouse=True)
def worker(server: Server) -> Iterator[None]:
    server.start_worker(API_APP)
    yield


def cloudevent(unique: str, n: int = 0, **attrs: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{unique}-{n}",
        "source": "/tests/api",
        "type": "api.audited",
        "subject": unique,
        "data": {"n": n},
        **attrs,
    }


def publish_json(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/events", json=fields)
    assert answer.status_code == 201, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    assert len(events) == 1
    return events[0]


def post_raw(client: httpx.Client, body: Any, content_type: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post("/api/events", content=content, headers={"content-type": content_type})


def log(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/events", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def event_ids(stored: list[dict[str, Any]]) -> list[str]:
    return [s["event"]["id"] for s in stored]


def everything(client: httpx.Client) -> list[dict[str, Any]]:
    return log(client, limit=1000)


# -- POST /api/events --------------------------------------------------------------------


def test_publish_json(operator: httpx.Client, reader: httpx.Client, unique: str) -> None:
    event = publish_json(
        operator,
        type="api.audited",
        data={"order": unique, "total": 12.5},
        subject=unique,
        key="k-1",
        id=unique,
        source="/tests/api",
        correlationid=f"{unique}-flow",
        causationid="cause-1",
    )
    assert event["specversion"] == "1.0"
    assert event["id"] == unique
    assert event["source"] == "/tests/api"
    assert event["type"] == "api.audited"
    assert event["subject"] == unique
    assert event["data"] == {"order": unique, "total": 12.5}
    assert event["partitionkey"] == "k-1"
    assert event["correlationid"] == f"{unique}-flow"
    assert event["causationid"] == "cause-1"
    [stored] = log(reader, correlation_id=f"{unique}-flow")
    assert stored["event"] == event
    assert stored["run_id"] is None


def test_publish_json_with_defaults(operator: httpx.Client) -> None:
    event = publish_json(operator, type="api.audited")
    assert event["id"]
    assert event["source"]
    assert event["correlationid"] == event["id"]  # a flow of its own
    assert "data" not in event or event["data"] is None


def test_publishing_the_same_source_and_id_again_stores_one_event(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    first = publish_json(operator, type="api.audited", id=unique, source="/tests/api", data=1)
    again = publish_json(operator, type="api.audited", id=unique, source="/tests/api", data=2)
    assert again == first
    assert [s["event"]["data"] for s in log(reader, correlation_id=unique)] == [1]


def test_publish_a_structured_cloudevent(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    sent = cloudevent(unique, time="2026-01-02T03:04:05Z", tenant="acme")
    answer = post_raw(operator, sent, CLOUDEVENT)
    assert answer.status_code == 201, answer.text
    [event] = answer.json()["events"]
    assert {k: event[k] for k in ("id", "source", "type", "subject", "data")} == {
        k: sent[k] for k in ("id", "source", "type", "subject", "data")
    }
    assert datetime.fromisoformat(event["time"]) == datetime.fromisoformat("2026-01-02T03:04:05Z")
    assert event["tenant"] == "acme"  # an extension attribute is kept
    # Published as it is, but for the correlation id it lacked: it starts a flow of its own.
    assert event["correlationid"] == event["id"]
    assert reader.get(f"/api/flows/{event['id']}").json()["events"] == 1
    stored = reader.get(f"/api/events/{unique}-0")
    assert stored.status_code == 200, stored.text
    assert stored.json()["stored"]["event"] == event
    with_charset = post_raw(operator, cloudevent(unique, 1), f"{CLOUDEVENT}; charset=utf-8")
    assert with_charset.status_code == 201, with_charset.text


def test_publish_a_cloudevents_batch(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    batch = [cloudevent(unique, n, correlationid=unique) for n in range(3)]
    answer = post_raw(operator, batch, BATCH)
    assert answer.status_code == 201, answer.text
    assert [e["id"] for e in answer.json()["events"]] == [f"{unique}-{n}" for n in range(3)]
    stored = log(reader, correlation_id=unique)
    assert event_ids(stored) == [f"{unique}-{n}" for n in range(3)]
    assert [s["seq"] for s in stored] == sorted(s["seq"] for s in stored)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", {"data": 1}),
        ("application/json", {"type": ""}),
        ("application/json", {"type": "api.audited", "colour": "red"}),
        ("application/json", b'{"type": "api.audited"'),
        ("application/json", [{"type": "api.audited"}]),
        ("application/json", {"type": "api.audited", "subject": "a\u0000b"}),
        (CLOUDEVENT, {"specversion": "1.0", "source": "/s", "type": "api.audited"}),
        (CLOUDEVENT, {"specversion": "0.3", "id": "x", "source": "/s", "type": "api.audited"}),
        (CLOUDEVENT, {"id": "x", "source": "/s", "type": "api.audited"}),
        (
            CLOUDEVENT,
            {
                "specversion": "1.0",
                "id": "x",
                "source": "/s",
                "type": "a",
                "data": 1,
                "data_base64": "AQ==",
            },
        ),
        (CLOUDEVENT, b"not json"),
        (CLOUDEVENT, [{"specversion": "1.0", "id": "x", "source": "/s", "type": "a"}]),
        (BATCH, []),
        (BATCH, {"specversion": "1.0", "id": "x", "source": "/s", "type": "api.audited"}),
        (BATCH, b"[{"),
        ("text/plain", b"api.audited"),
        ("application/xml", b"<event/>"),
    ],
    ids=[
        "json-no-type",
        "json-empty-type",
        "json-unknown-member",
        "json-malformed",
        "json-array",
        "json-nul",
        "ce-no-id",
        "ce-old-specversion",
        "ce-no-specversion",
        "ce-data-twice",
        "ce-malformed",
        "ce-array",
        "batch-empty",
        "batch-object",
        "batch-malformed",
        "text-plain",
        "xml",
    ],
)
def test_an_invalid_event_is_a_422_and_nothing_is_stored(
    operator: httpx.Client, reader: httpx.Client, content_type: str, body: Any
) -> None:
    before = everything(reader)
    assert_problem(post_raw(operator, body, content_type), 422)
    assert everything(reader) == before


def test_a_batch_with_one_invalid_event_stores_none_of_them(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    batch = [cloudevent(unique, 0), cloudevent(unique, 1), {**cloudevent(unique, 2), "id": None}]
    del batch[1]["type"]
    before = everything(reader)
    body = assert_problem(post_raw(operator, batch, BATCH), 422, "invalid-event")
    assert "event 1 of the batch" in body["detail"]
    assert everything(reader) == before
    assert_problem(reader.get(f"/api/events/{unique}-0"), 404, "event-not-found")


# -- GET /api/events ---------------------------------------------------------------------


def test_the_log_filters(operator: httpx.Client, reader: httpx.Client, unique: str) -> None:
    a = publish_json(operator, type=f"api.audited.{unique}", correlationid=unique, data="a")
    b = publish_json(operator, type=f"api.other.{unique}", correlationid=unique, data="b")
    c = publish_json(operator, type=f"api.audited.{unique}", data="c")
    stored = {s["event"]["id"]: s for s in log(reader, correlation_id=unique)}
    assert list(stored) == [a["id"], b["id"]]

    assert event_ids(log(reader, type=f"api.audited.{unique}")) == [a["id"], c["id"]]
    assert event_ids(log(reader, type=f"api.other.{unique}", correlation_id=unique)) == [b["id"]]
    assert log(reader, type=f"api.audited.{unique}", correlation_id="nope") == []

    seq_a = stored[a["id"]]["seq"]
    assert event_ids(log(reader, type=f"api.audited.{unique}", after_seq=seq_a)) == [c["id"]]
    assert event_ids(log(reader, type=f"api.audited.{unique}", limit=1)) == [a["id"]]

    recorded = [datetime.fromisoformat(stored[e]["recorded_at"]) for e in (a["id"], b["id"])]
    gap = recorded[0] + (recorded[1] - recorded[0]) / 2
    assert event_ids(log(reader, correlation_id=unique, since=gap.isoformat())) == [b["id"]]
    assert event_ids(log(reader, correlation_id=unique, until=gap.isoformat())) == [a["id"]]
    later = (recorded[1] + timedelta(hours=1)).isoformat()
    assert log(reader, correlation_id=unique, since=later) == []


def test_the_log_lists_unrouted_events(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    nobody = publish_json(operator, type=f"api.nobody.{unique}")
    audited = publish_json(operator, type="api.audited", correlationid=unique)
    unrouted = event_ids(log(reader, unrouted=True, limit=1000))
    assert nobody["id"] in unrouted
    assert audited["id"] not in unrouted
    [shown] = log(reader, type=f"api.nobody.{unique}")
    assert shown["routed"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"after_seq": -1},
        {"after_seq": 2**64},
        {"limit": 0},
        {"limit": 1001},
        {"since": "soon"},
        {"unrouted": "perhaps"},
    ],
    ids=["negative-seq", "huge-seq", "limit-0", "limit-1001", "since", "unrouted"],
)
def test_a_bad_log_query_is_a_422(reader: httpx.Client, params: dict[str, Any]) -> None:
    assert_problem(reader.get("/api/events", params=params), 422)


# -- GET /api/events/{id} ----------------------------------------------------------------


def test_an_event_with_its_deliveries(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    event = publish_json(operator, type="api.audited", id=unique, subject=unique)

    def delivered() -> dict[str, Any] | None:
        shown = reader.get(f"/api/events/{unique}")
        assert shown.status_code == 200, shown.text
        body: dict[str, Any] = shown.json()
        statuses = [d["status"] for d in body["deliveries"]]
        return body if statuses == ["done"] else None

    detail = eventually(delivered, "the audit delivery")
    assert detail["stored"]["event"] == event
    assert detail["stored"]["routed"] == 1
    [delivery] = detail["deliveries"]
    assert delivery["subscription"] == "audit"
    assert delivery["seq"] == detail["stored"]["seq"]
    assert delivery["attempts"] == 1
    assert delivery["error"] is None


def test_an_event_id_in_two_sources_needs_its_source(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    publish_json(operator, type="api.audited", id=unique, source="/one", data=1)
    publish_json(operator, type="api.audited", id=unique, source="/two", data=2)
    body = assert_problem(reader.get(f"/api/events/{unique}"), 409, "ambiguous-event")
    assert body["event_id"] == unique
    assert "/one" in body["detail"] and "/two" in body["detail"]
    two = reader.get(f"/api/events/{unique}", params={"source": "/two"})
    assert two.status_code == 200, two.text
    assert two.json()["stored"]["event"]["data"] == 2
    missing = reader.get(f"/api/events/{unique}", params={"source": "/three"})
    assert assert_problem(missing, 404, "event-not-found")["event_id"] == unique


def test_an_unknown_event_is_a_404(reader: httpx.Client, unique: str) -> None:
    body = assert_problem(reader.get(f"/api/events/{unique}"), 404, "event-not-found")
    assert body["event_id"] == unique


# -- GET /api/flows/{correlation_id} -----------------------------------------------------


def test_a_flow_shows_its_events_deliveries_and_runs(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    placed = publish_json(operator, type="api.order.placed", subject=unique, correlationid=unique)
    publish_json(operator, type="api.audited", correlationid=unique)

    def settled() -> dict[str, Any] | None:
        answer = reader.get(f"/api/flows/{unique}")
        assert answer.status_code == 200, answer.text
        flow: dict[str, Any] = answer.json()
        return flow if flow["runs"] == 1 and flow["pending"] == 0 else None

    flow = eventually(settled, "the flow to settle")
    assert flow["correlation_id"] == unique
    assert flow["events"] == 2
    assert flow["dead"] == 0
    roots = {r["event"]["type"]: r for r in flow["roots"]}
    assert set(roots) == {"api.order.placed", "api.audited"}
    assert roots["api.order.placed"]["event"]["id"] == placed["id"]
    [trigger] = roots["api.order.placed"]["deliveries"]
    assert trigger["subscription"] == "workflow:on_order"
    assert trigger["run"]["workflow"] == "on_order"
    assert [d["subscription"] for d in roots["api.audited"]["deliveries"]] == ["audit"]


def test_the_flow_of_an_unknown_correlation_id_is_empty(reader: httpx.Client, unique: str) -> None:
    answer = reader.get(f"/api/flows/{unique}")
    assert answer.status_code == 200
    assert answer.json() == {
        "correlation_id": unique,
        "events": 0,
        "runs": 0,
        "dead": 0,
        "pending": 0,
        "roots": [],
        "expectations": [],
    }


# -- dead letters, their redrive, alerts -------------------------------------------------


def dead_letters(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/deadletters", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_dead_letters_their_alert_and_redrive(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    event = publish_json(operator, type="api.doomed", id=unique, subject=unique)

    def dead() -> dict[str, Any] | None:
        mine = [d for d in dead_letters(reader, subscription="doomed") if d["event_id"] == unique]
        return mine[0] if mine else None

    letter = eventually(dead, "the dead letter")
    assert letter["subscription"] == "doomed"
    assert letter["status"] == "dead"
    assert letter["attempts"] == 1
    assert letter["type"] == "api.doomed"
    assert letter["source"] == event["source"]
    assert letter["error"]["message"] == f"nobody answers for {unique}"
    # The traceback names the server's files: for those who may act on it, not readers.
    assert "traceback" not in letter["error"]
    [mine] = [d for d in dead_letters(operator, subscription="doomed") if d["event_id"] == unique]
    assert "Unreachable" in mine["error"]["traceback"]
    [delivery] = reader.get(f"/api/events/{unique}").json()["deliveries"]
    assert "traceback" not in delivery["error"]
    flow = reader.get(f"/api/flows/{event['correlationid']}").json()
    assert "nobody answers" in orjson.dumps(flow).decode()  # the error, without:
    assert "traceback" not in orjson.dumps(flow).decode()
    assert all(d["subscription"] == "doomed" for d in dead_letters(reader))
    assert dead_letters(reader, subscription="audit") == []

    subject = f"doomed {letter['seq']}"

    def alert(status: str) -> dict[str, Any] | None:
        found = reader.get("/api/alerts", params={"kind": "dead_letter", "status": status})
        assert found.status_code == 200, found.text
        mine = [a for a in found.json() if a["subject"] == subject]
        return mine[0] if mine else None

    raised = eventually(lambda: alert("raised"), "the dead letter's alert")
    assert raised["alert_id"] == f"dead_letter:{subject}"
    assert raised["kind"] == "dead_letter"
    assert raised["details"]["subscription"] == "doomed"
    assert raised["resolved_at"] is None

    redriven = operator.post("/api/deadletters/redrive", json={"event_id": unique})
    assert redriven.status_code == 200, redriven.text
    assert redriven.json() == {"redriven": 1, "preview": None}

    # It is delivered again from its first attempt: it fails again, and is dead again.
    def died_again() -> dict[str, Any] | None:
        detail = reader.get(f"/api/events/{unique}").json()
        [delivery] = detail["deliveries"]
        later = datetime.fromisoformat(delivery["updated_at"]) > datetime.fromisoformat(
            letter["updated_at"]
        )
        return delivery if delivery["status"] == "dead" and later else None

    again = eventually(died_again, "the redriven delivery to die again")
    assert again["attempts"] == 1
    assert again["replay"] is False
    assert again["redriven_by"] == "api-operate"  # the token that redrove it
    assert datetime.fromisoformat(again["redriven_at"]) > datetime.fromisoformat(
        letter["updated_at"]
    )
    assert letter["redriven_by"] is None and letter["redriven_at"] is None


def test_a_subscriptions_redrive_is_previewed_then_confirmed(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    def dead_letter_of(event_id: str) -> dict[str, Any] | None:
        mine = [d for d in dead_letters(reader, subscription="doomed") if d["event_id"] == event_id]
        return mine[0] if mine else None

    publish_json(operator, type="api.doomed", id=unique, subject=unique)
    eventually(lambda: dead_letter_of(unique), "the dead letter")
    url, body = "/api/deadletters/redrive", {"subscription": "doomed", "rate": 100}

    answer = operator.post(url, json=body)  # no confirm: the preview, nothing done
    assert answer.status_code == 200, answer.text
    preview = answer.json()["preview"]
    assert answer.json()["redriven"] is None
    assert preview["subscription"] == "doomed"
    assert preview["count"] == len(dead_letters(reader, subscription="doomed")) >= 1
    assert dead_letter_of(unique) is not None  # still dead: nothing was done

    # Another letter dies meanwhile: the preview's token no longer names the set.
    publish_json(operator, type="api.doomed", id=f"{unique}-2", subject=unique)
    eventually(lambda: dead_letter_of(f"{unique}-2"), "the second dead letter")
    stale = operator.post(url, json=body | {"confirm": preview["confirm"]})
    changed = assert_problem(stale, 409, "bulk-changed")
    assert changed["preview"]["count"] == preview["count"] + 1

    done = operator.post(url, json=body | {"confirm": changed["preview"]["confirm"]})
    assert done.status_code == 200, done.text
    assert done.json() == {"redriven": preview["count"] + 1, "preview": None}
    assert reader.post(url, json=body).status_code == 403  # a reader may not even preview


def test_redriving_what_is_not_dead_redrives_nothing(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    publish_json(operator, type="api.audited", id=unique)
    eventually(
        lambda: (
            [d["status"] for d in reader.get(f"/api/events/{unique}").json()["deliveries"]]
            == ["done"]
        ),
        "the audit delivery",
    )
    answer = operator.post("/api/deadletters/redrive", json={"event_id": unique})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redriven": 0, "preview": None}
    [delivery] = reader.get(f"/api/events/{unique}").json()["deliveries"]
    assert delivery["status"] == "done"
    assert delivery["replay"] is False


@pytest.mark.parametrize(
    ("body", "status", "kind", "member"),
    [
        ({}, 422, "invalid-request", None),
        ({"event_id": "x", "rate": 0}, 422, "invalid-request", None),
        ({"event_id": "x", "colour": "red"}, 422, "invalid-request", None),
        ({"subscription": "no-such-subscription"}, 404, "unknown-subscription", "name"),
        ({"event_id": "no-such-event"}, 404, "event-not-found", "event_id"),
    ],
    ids=["nothing-named", "rate-0", "unknown-member", "unknown-subscription", "unknown-event"],
)
def test_a_bad_redrive_is_refused(
    operator: httpx.Client,
    body: dict[str, Any],
    status: int,
    kind: str,
    member: str | None,
) -> None:
    answer = operator.post("/api/deadletters/redrive", json=body)
    problem = assert_problem(answer, status, kind)
    if member is not None:
        assert problem[member] in body.values()


def test_an_unrouted_event_type_raises_an_alert(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    published = publish_json(operator, type=f"api.unheard.{unique}")

    def raised() -> dict[str, Any] | None:
        found = reader.get("/api/alerts", params={"kind": "unrouted_event"}).json()
        mine = [a for a in found if a["subject"] == f"api.unheard.{unique}"]
        return mine[0] if mine else None

    alert = eventually(raised, "the unrouted event's alert")
    assert alert["status"] == "raised"
    assert alert["details"]["event_id"] == published["id"]
    assert alert in reader.get("/api/alerts").json()
    assert alert not in reader.get("/api/alerts", params={"status": "resolved"}).json()


@pytest.mark.parametrize(
    "params",
    [{"status": "open"}, {"kind": "fire"}, {"limit": 0}],
    ids=["status", "kind", "limit-0"],
)
def test_a_bad_alert_query_is_a_422(reader: httpx.Client, params: dict[str, Any]) -> None:
    assert_problem(reader.get("/api/alerts", params=params), 422, "invalid-request")


# -- expectations ------------------------------------------------------------------------


def test_an_expectation_opens_and_is_fulfilled(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    paid = publish_json(operator, type="api.paid", correlationid=unique)

    def instance(status: str) -> dict[str, Any] | None:
        found = reader.get(
            "/api/expectations",
            params={"name": "api-paid-then-shipped", "correlation_id": unique},
        )
        assert found.status_code == 200, found.text
        listed: list[dict[str, Any]] = found.json()
        return listed[0] if listed and listed[0]["status"] == status else None

    opened = eventually(lambda: instance("open"), "the expectation to open")
    assert opened["expectation"] == "api-paid-then-shipped"
    assert opened["key"] == unique
    assert opened["awaited"] == ["type api.shipped"]
    assert paid["id"] in opened["instance"]
    deadline = datetime.fromisoformat(opened["deadline"]) - datetime.fromisoformat(
        opened["opened_at"]
    )
    assert deadline == timedelta(hours=1)
    assert opened in reader.get("/api/expectations", params={"status": "open"}).json()
    assert opened in reader.get("/api/expectations", params={"key": unique}).json()

    publish_json(operator, type="api.shipped", correlationid=unique)
    closed = eventually(lambda: instance("fulfilled"), "the expectation to be fulfilled")
    assert closed["closed_at"] is not None
    assert closed["missing"] == []
    assert (
        reader.get("/api/expectations", params={"status": "open", "correlation_id": unique}).json()
        == []
    )
    assert reader.get("/api/expectations", params={"name": "no-such-expectation"}).json() == []


@pytest.mark.parametrize(
    "params", [{"status": "late"}, {"limit": 1001}], ids=["status", "limit-1001"]
)
def test_a_bad_expectation_query_is_a_422(reader: httpx.Client, params: dict[str, Any]) -> None:
    assert_problem(reader.get("/api/expectations", params=params), 422, "invalid-request")
