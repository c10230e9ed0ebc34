"""``/api/runs``: start (args, input, idempotent run ids), search (every filter, cursor
pages), describe, history, signals, cancel and resume, on a real server with a worker of
``tests/api/api_app.py``.

Runs of ``unserved_*`` workflows stay ``pending``: no worker serves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import API_APP, Server, assert_problem, eventually


@pytest.fixture(scope="module", autouse=True)
def worker(server: Server) -> Iterator[None]:
    """A worker of the API test app, for the module's whole life."""
    server.start_worker(API_APP)
    yield


def start(
    client: httpx.Client, workflow: str, run_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"workflow": workflow, **fields} | ({} if run_id is None else {"run_id": run_id})
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 201, answer.text
    started: dict[str, Any] = answer.json()
    return started


def listed(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/runs", params=params)
    assert answer.status_code == 200, answer.text
    runs: list[dict[str, Any]] = answer.json()["runs"]
    return runs


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [r["run_id"] for r in runs]


# -- POST /api/runs ----------------------------------------------------------------------


def test_start_with_args_answers_201_pending_with_location(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    answer = operator.post(
        "/api/runs", json={"workflow": "unserved_a", "args": [1, "two"], "run_id": unique}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["run_id"] == unique
    assert body["status"] == "pending"
    assert body["workflow"] == "unserved_a"
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert answer.headers["location"] == f"/api/runs/{unique}"
    shown = reader.get(answer.headers["location"]).json()
    assert shown["input"] == [1, "two"]
    assert shown["status"] == "pending"
    assert "waiting for a worker" in shown["next"]


def test_input_is_the_one_argument_and_args_the_list_of_them(
    server: Server, operator: httpx.Client, unique: str
) -> None:
    by_input = start(operator, "await_signal", f"{unique}-input", input={"id": "i-1"})
    by_args = start(operator, "await_signal", f"{unique}-args", args=[{"id": "a-1"}])
    for started, order in ((by_input, "i-1"), (by_args, "a-1")):
        run_id = started["run_id"]
        server.wait_for_run(run_id, {"waiting"})
        sent = operator.post(f"/api/runs/{run_id}/signals", json={"name": "go", "payload": 7})
        assert sent.status_code == 202, sent.text
        done = server.wait_for_run(run_id)
        assert done["status"] == "completed"
        assert done["input"] == [{"id": order}]
        assert done["output"] == {"box": f"box-{order}", "go": 7}


def test_a_start_without_arguments_or_run_id_gets_a_new_id(
    operator: httpx.Client, reader: httpx.Client
) -> None:
    first = start(operator, "unserved_a")
    second = start(operator, "unserved_a")
    assert first["run_id"] != second["run_id"]
    shown = reader.get(f"/api/runs/{first['run_id']}").json()
    assert shown["input"] == []


def test_args_and_input_together_are_refused_and_nothing_is_started(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    answer = operator.post(
        "/api/runs",
        json={"workflow": "unserved_a", "args": [1], "input": 1, "run_id": unique},
    )
    body = assert_problem(answer, 422, "invalid-request")
    assert "not both" in body["detail"]
    assert_problem(reader.get(f"/api/runs/{unique}"), 404, "run-not-found")


def test_the_same_run_id_twice_is_one_run(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    first = operator.post(
        "/api/runs", json={"workflow": "unserved_a", "input": {"n": 1}, "run_id": unique}
    )
    again = operator.post(
        "/api/runs", json={"workflow": "unserved_a", "input": {"n": 2}, "run_id": unique}
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == f"/api/runs/{unique}"
    assert ids(listed(reader, run_id_prefix=unique)) == [unique]
    assert reader.get(f"/api/runs/{unique}").json()["input"] == [{"n": 1}]  # the first's


def test_the_same_run_id_for_another_workflow_is_a_409(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_a", unique)
    answer = operator.post("/api/runs", json={"workflow": "unserved_b", "run_id": unique})
    body = assert_problem(answer, 409, "run-already-exists")
    assert body["run_id"] == unique
    assert "unserved_a" in body["detail"]
    shown = listed(reader, run_id_prefix=unique)
    assert [(r["run_id"], r["workflow"]) for r in shown] == [(unique, "unserved_a")]


@pytest.mark.parametrize(
    "body",
    [
        {"args": [1]},
        {"workflow": ""},
        {"workflow": "unserved_a", "args": "not a list"},
        {"workflow": "unserved_a", "run_id": ""},
        {"workflow": "unserved_a", "run_id": "x" * 256},
        {"workflow": "unserved_a", "priority": 3},
    ],
    ids=[
        "no-workflow",
        "empty-workflow",
        "args-not-a-list",
        "empty-run-id",
        "long-run-id",
        "extra",
    ],
)
def test_a_bad_start_is_a_422_and_starts_nothing(
    operator: httpx.Client, reader: httpx.Client, body: dict[str, Any]
) -> None:
    before = listed(reader, workflow="unserved_a", limit=1000)
    assert_problem(operator.post("/api/runs", json=body), 422)
    assert listed(reader, workflow="unserved_a", limit=1000) == before


# -- GET /api/runs -----------------------------------------------------------------------


def test_search_by_status_workflow_and_run_id_prefix(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_a", f"{unique}-1")
    start(operator, "unserved_b", f"{unique}-2")
    start(operator, "unserved_a", f"{unique}-3")
    cancelled = operator.post(f"/api/runs/{unique}-3/cancel")
    assert cancelled.json() == {"run_id": f"{unique}-3", "status": "cancelled"}

    newest_first = [f"{unique}-3", f"{unique}-2", f"{unique}-1"]
    assert ids(listed(reader, run_id_prefix=unique)) == newest_first
    assert ids(listed(reader, run_id_prefix=unique, workflow="unserved_a")) == [
        f"{unique}-3",
        f"{unique}-1",
    ]
    assert ids(listed(reader, run_id_prefix=unique, status="cancelled")) == [f"{unique}-3"]
    assert ids(listed(reader, run_id_prefix=unique, status="pending")) == [
        f"{unique}-2",
        f"{unique}-1",
    ]
    assert listed(reader, run_id_prefix=unique, status="completed") == []
    assert listed(reader, run_id_prefix=f"{unique}-9") == []
    # A prefix is a prefix, not a pattern: no LIKE wildcards.
    assert listed(reader, run_id_prefix=unique.replace("-", "_")) == []
    assert listed(reader, run_id_prefix="%") == []


def between(earlier: str, later: str) -> datetime:
    """The instant halfway between two ``created_at`` of the API."""
    first, second = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
    assert second - first > timedelta(microseconds=10)
    return first + (second - first) / 2


def test_search_by_creation_time(operator: httpx.Client, reader: httpx.Client, unique: str) -> None:
    created = [start(operator, "unserved_a", f"{unique}-{i}")["created_at"] for i in range(3)]
    first_gap, second_gap = between(created[0], created[1]), between(created[1], created[2])
    assert ids(listed(reader, run_id_prefix=unique, since=first_gap.isoformat())) == [
        f"{unique}-2",
        f"{unique}-1",
    ]
    assert ids(listed(reader, run_id_prefix=unique, until=first_gap.isoformat())) == [f"{unique}-0"]
    window = {"since": first_gap.isoformat(), "until": second_gap.isoformat()}
    assert ids(listed(reader, run_id_prefix=unique, **window)) == [f"{unique}-1"]
    # Another offset, the same instant.
    elsewhere = first_gap.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert ids(listed(reader, run_id_prefix=unique, until=elsewhere)) == [f"{unique}-0"]
    # A time without an offset is UTC.
    naive_utc = first_gap.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert "+" not in naive_utc and not naive_utc.endswith("Z")
    assert ids(listed(reader, run_id_prefix=unique, since=naive_utc)) == [
        f"{unique}-2",
        f"{unique}-1",
    ]
    later = (datetime.fromisoformat(created[2]) + timedelta(hours=1)).isoformat()
    assert listed(reader, run_id_prefix=unique, since=later) == []
    assert (
        listed(
            reader, run_id_prefix=unique, since=second_gap.isoformat(), until=first_gap.isoformat()
        )
        == []
    )
    assert_problem(reader.get("/api/runs", params={"since": "yesterday"}), 422)


def test_since_a_runs_own_created_at_finds_it_and_until_does_not(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    """``since`` is "created at or after", ``until`` "created before": the creation time
    the API answered for a run is on the ``since`` side."""
    missed, let_in = [], []
    for i in range(30):
        run = start(operator, "unserved_a", f"{unique}-{i:02}")
        if ids(listed(reader, run_id_prefix=run["run_id"], since=run["created_at"])) != [
            run["run_id"]
        ]:
            missed.append(run["created_at"])
        if listed(reader, run_id_prefix=run["run_id"], until=run["created_at"]):
            let_in.append(run["created_at"])
    assert missed == []
    assert let_in == []


def test_search_by_correlation_id(server: Server, operator: httpx.Client, unique: str) -> None:
    """A run an event starts has the event's correlation id."""
    published = operator.post(
        "/api/events",
        json={"type": "api.order.placed", "subject": unique, "correlationid": unique},
    )
    assert published.status_code == 201, published.text
    event_id = published.json()["events"][0]["id"]
    reader = server.as_scope("read")
    found = eventually(lambda: listed(reader, correlation_id=unique), "the triggered run")
    assert len(found) == 1
    assert found[0]["workflow"] == "on_order"
    assert event_id in found[0]["run_id"]
    done = server.wait_for_run(found[0]["run_id"])
    assert done["status"] == "completed"
    assert done["output"] == f"handled {unique}"
    assert listed(reader, correlation_id=f"{unique}-other") == []


def test_cursor_pages_list_every_run_exactly_once(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    made = {start(operator, "unserved_b", f"{unique}-{i:02}")["run_id"] for i in range(23)}
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"run_id_prefix": unique, "limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = reader.get("/api/runs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        pages += 1
        assert len(body["runs"]) <= 5
        seen += ids(body["runs"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # A run started between pages is newer than the cursor: it never shifts a page.
        if pages == 2:
            start(operator, "unserved_b", f"{unique}-late")
        assert pages < 10
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == made
    assert seen == sorted(seen, reverse=True)  # newest first: made in order of their ids


def test_unfiltered_pages_cover_the_database_once(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    made = {start(operator, "unserved_a", f"{unique}-{i}")["run_id"] for i in range(4)}
    everything = ids(listed(reader, limit=1000))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        body = reader.get(
            "/api/runs", params={"limit": 7} | ({} if cursor is None else {"cursor": cursor})
        ).json()
        seen += ids(body["runs"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert len(seen) == len(set(seen)) > 7
    assert made <= set(seen)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": ""},
        {"cursor": "eyJ4IjogMX0"},  # base64 JSON, but not a position
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"status": "finished"},
        {"until": "not a time"},
    ],
    ids=[
        "garbage",
        "empty",
        "other-json",
        "limit-0",
        "limit-1001",
        "limit-text",
        "status",
        "until",
    ],
)
def test_a_bad_search_is_a_422(reader: httpx.Client, params: dict[str, Any]) -> None:
    assert_problem(reader.get("/api/runs", params=params), 422)


# -- GET /api/runs/{id}, /history --------------------------------------------------------


def test_describe_a_waiting_run_says_what_step_and_what_next(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "await_signal", unique, input={"id": unique})
    shown = server.wait_for_run(unique, {"waiting"})
    assert shown["run_id"] == unique
    assert shown["workflow"] == "await_signal"
    assert shown["completed_steps"] == ["pack"]
    assert [(s["key"], s["name"], s["status"]) for s in shown["steps"]] == [
        ("1", "pack", "completed")
    ]
    assert shown["current_step"] is None
    assert shown["next"] == "wait for signal 'go'"
    assert shown["last_error"] is None
    assert shown["output"] is None
    operator.post(f"/api/runs/{unique}/signals", json={"name": "go"})
    assert server.wait_for_run(unique)["next"] == "nothing: the run completed"


def test_describe_a_run_in_a_step(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    start(operator, "gated", unique, input={"id": unique, "gate": str(gate)})

    def in_hold() -> dict[str, Any] | None:
        shown: dict[str, Any] = reader.get(f"/api/runs/{unique}").json()
        return shown if shown["current_step"] == "hold" else None

    shown = eventually(in_hold, "the run to be in its step")
    assert shown["status"] == "running"
    assert shown["attempt"] == 1
    assert shown["completed_steps"] == ["pack"]
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [
        ("pack", "completed"),
        ("hold", "running"),
    ]
    assert shown["owner"]["pid"] in {w.pid for w in server.workers}
    assert "hold" in shown["next"]
    gate.touch()
    done = server.wait_for_run(unique)
    assert done["status"] == "completed"
    assert done["current_step"] is None
    assert done["output"] == "through"
    assert done["owner"] is None


def test_a_run_id_with_slashes_works_on_every_route(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    run_id = f"orders/2026/{unique}"
    started = operator.post(
        "/api/runs", json={"workflow": "await_signal", "input": {"id": "s"}, "run_id": run_id}
    )
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"/api/runs/{run_id}"
    assert server.wait_for_run(run_id, {"waiting"})["run_id"] == run_id
    assert ids(listed(reader, run_id_prefix=f"orders/2026/{unique}")) == [run_id]
    sent = operator.post(f"/api/runs/{run_id}/signals", json={"name": "go", "payload": "/"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["run_id"] == run_id
    assert server.wait_for_run(run_id)["output"] == {"box": "box-s", "go": "/"}
    history = reader.get(f"/api/runs/{run_id}/history")
    assert history.status_code == 200
    assert history.json()[-1]["kind"] == "run_completed"
    assert operator.post(f"/api/runs/{run_id}/cancel").json() == {
        "run_id": run_id,
        "status": "completed",
    }
    assert_problem(operator.post(f"/api/runs/{run_id}/resume"), 409)


def test_a_run_id_ending_like_a_route_is_reached_with_its_slashes_encoded(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    # Run ids "U" and "U/history": raw, /api/runs/U/history is U's history; encoded, the
    # other run itself.
    for run_id in (unique, f"{unique}/history"):
        made = operator.post("/api/runs", json={"workflow": "nobody-serves", "run_id": run_id})
        assert made.status_code == 201, made.text
    encoded = f"/api/runs/{unique}%2Fhistory"
    shown = reader.get(encoded)
    assert shown.status_code == 200, shown.text
    assert shown.json()["run_id"] == f"{unique}/history"
    assert reader.get(f"/api/runs/{unique}/history").json() == []  # U's (empty) history
    assert reader.get(f"{encoded}/history").json() == []
    cancelled = operator.post(f"{encoded}/cancel")
    assert cancelled.json() == {"run_id": f"{unique}/history", "status": "cancelled"}
    assert reader.get(f"/api/runs/{unique}").json()["status"] == "pending"  # untouched


def test_history_of_a_completed_run(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "await_signal", unique, input={"id": "h"})
    server.wait_for_run(unique, {"waiting"})
    operator.post(f"/api/runs/{unique}/signals", json={"name": "go", "payload": {"n": 1}})
    server.wait_for_run(unique)
    records = reader.get(f"/api/runs/{unique}/history").json()
    assert [(r["kind"], r["key"], r["name"]) for r in records] == [
        ("step_started", "1", "pack"),
        ("step_completed", "1", "pack"),
        ("wait_started", "2", "go"),
        ("signal_received", "2", "go"),
        ("run_completed", None, None),
    ]
    assert [r["pos"] for r in records] == [1, 2, 3, 4, 5]
    assert records[1]["data"]["result"] == "box-h"
    assert records[3]["data"]["payload"] == {"n": 1}
    assert records[4]["data"] == {"box": "box-h", "go": {"n": 1}}
    times = [datetime.fromisoformat(r["at"]) for r in records]
    assert times == sorted(times)


def test_history_of_a_run_not_started_is_empty(
    operator: httpx.Client, reader: httpx.Client
) -> None:
    run_id = start(operator, "unserved_a")["run_id"]
    assert reader.get(f"/api/runs/{run_id}/history").json() == []


# -- signals -----------------------------------------------------------------------------


def test_signals_are_kept_until_the_run_waits(
    server: Server, operator: httpx.Client, unique: str
) -> None:
    """A signal sent before the run waits (it is still pending) is not lost."""
    start(operator, "unserved_a", f"{unique}-pending")
    early = operator.post(f"/api/runs/{unique}-pending/signals", json={"name": "go"})
    assert early.status_code == 202
    assert early.json() == {"run_id": f"{unique}-pending", "status": "pending"}

    start(operator, "await_signal", unique, input={"id": "k"})
    sent = operator.post(f"/api/runs/{unique}/signals", json={"name": "go", "payload": [1, 2]})
    assert sent.status_code == 202, sent.text
    assert sent.json()["run_id"] == unique
    assert server.wait_for_run(unique)["output"] == {"box": "box-k", "go": [1, 2]}


def test_a_signal_to_a_finished_run_is_a_409(
    server: Server, operator: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_a", unique)
    operator.post(f"/api/runs/{unique}/cancel")
    answer = operator.post(f"/api/runs/{unique}/signals", json={"name": "go"})
    body = assert_problem(answer, 409, "run-finished")
    assert body["run_id"] == unique


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "go", "extra": 1}, {"name": 3}, {"name": "__internal"}],
    ids=["no-name", "empty-name", "extra", "name-not-text", "reserved-name"],
)
def test_a_bad_signal_is_a_422_and_is_not_delivered(
    server: Server, operator: httpx.Client, unique: str, body: dict[str, Any]
) -> None:
    start(operator, "await_signal", unique, input={"id": "b"})
    server.wait_for_run(unique, {"waiting"})
    assert_problem(operator.post(f"/api/runs/{unique}/signals", json=body), 422)
    # Nothing arrived: the run still waits, and its history has no signal.
    assert server.as_scope("read").get(f"/api/runs/{unique}").json()["status"] == "waiting"
    kinds = [r["kind"] for r in server.as_scope("read").get(f"/api/runs/{unique}/history").json()]
    assert "signal_received" not in kinds
    operator.post(f"/api/runs/{unique}/cancel")


# -- cancel ------------------------------------------------------------------------------


def test_cancel_a_pending_run_at_once(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_b", unique)
    answer = operator.post(f"/api/runs/{unique}/cancel")
    assert answer.status_code == 200
    assert answer.json() == {"run_id": unique, "status": "cancelled"}
    shown = reader.get(f"/api/runs/{unique}").json()
    assert shown["status"] == "cancelled"
    assert shown["cancel_requested"] is True
    again = operator.post(f"/api/runs/{unique}/cancel")  # an ended run is left as it is
    assert again.json() == {"run_id": unique, "status": "cancelled"}


def test_cancel_a_waiting_run_its_worker_carries_out(
    server: Server, operator: httpx.Client, unique: str
) -> None:
    start(operator, "await_signal", unique, input={"id": "c"})
    server.wait_for_run(unique, {"waiting"})
    answer = operator.post(f"/api/runs/{unique}/cancel")
    assert answer.status_code == 200
    assert answer.json()["run_id"] == unique
    done = server.wait_for_run(unique)
    assert done["status"] == "cancelled"
    assert done["cancel_requested"] is True


# -- resume ------------------------------------------------------------------------------


def test_resume_a_blocked_run(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, tmp_path: Path
) -> None:
    drift = tmp_path / "drift"
    start(operator, "drifting", unique, input={"id": unique, "drift": str(drift)})
    server.wait_for_run(unique, {"waiting"})
    drift.touch()  # "a deploy" that changes the calls before the point the run reached
    operator.post(f"/api/runs/{unique}/signals", json={"name": "go"})
    blocked = server.wait_for_run(unique)
    assert blocked["status"] == "blocked"
    assert blocked["last_error"]["type"].endswith("NonDeterminismError"), blocked["last_error"]
    assert "resume" in blocked["next"]
    assert_problem(operator.post(f"/api/runs/{unique}/signals", json={"name": "go"}), 409)

    drift.unlink()  # code that makes the recorded calls again
    resumed = operator.post(f"/api/runs/{unique}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"run_id": unique, "status": "running"}
    done = server.wait_for_run(unique)
    assert done["status"] == "completed"
    assert done["output"] == "shipped"


def test_resume_a_run_that_is_not_blocked_is_a_409_and_changes_nothing(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_a", unique)
    body = assert_problem(operator.post(f"/api/runs/{unique}/resume"), 409, "run-error")
    assert body["run_id"] == unique
    assert "not blocked" in body["detail"]
    assert reader.get(f"/api/runs/{unique}").json()["status"] == "pending"
