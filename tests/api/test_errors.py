"""Every error path answers an RFC 9457 problem (``application/problem+json`` with
``type``, ``title``, ``status``, ``detail``, ``instance`` and the ids it is about), and a
refused write writes nothing: unknown runs, tasks and events (404), malformed JSON,
unknown body members, unknown status values and wrong content types (422), unknown
routes (404) and methods (405)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import Server, assert_problem

MISSING = "no-such-run"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/runs/{id}", None),
        ("GET", "/api/runs/{id}/history", None),
        ("POST", "/api/runs/{id}/signals", {"name": "go"}),
        ("POST", "/api/runs/{id}/cancel", None),
        ("POST", "/api/runs/{id}/resume", None),
    ],
    ids=["describe", "history", "signal", "cancel", "resume"],
)
@pytest.mark.parametrize("run_id", [MISSING, "a/b/c"], ids=["plain", "slashes"])
def test_an_unknown_run_is_a_404_naming_it(
    admin: httpx.Client, method: str, path: str, body: Any, run_id: str
) -> None:
    answer = admin.request(method, path.format(id=run_id), json=body)
    problem = assert_problem(answer, 404, "run-not-found")
    assert problem["title"] == "RunNotFound"
    assert problem["run_id"] == run_id
    assert run_id in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "member"),
    [
        ("GET", "/api/tasks/no-such-task", None, "task_id"),
        ("POST", "/api/tasks/no-such-task/complete", {"response": {}}, "task_id"),
        ("GET", "/api/events/no-such-event", None, "event_id"),
    ],
    ids=["task", "complete-task", "event"],
)
def test_an_unknown_task_or_event_is_a_404_naming_it(
    admin: httpx.Client, method: str, path: str, body: Any, member: str
) -> None:
    answer = admin.request(method, path, json=body)
    problem = assert_problem(answer, 404)
    assert problem[member] == path.split("/")[3]


def test_the_problem_body_in_full(admin: httpx.Client) -> None:
    answer = admin.get(f"/api/runs/{MISSING}")
    assert answer.json() == {
        "type": "urn:legato:problem:run-not-found",
        "title": "RunNotFound",
        "status": 404,
        "detail": f"no run with id '{MISSING}'",
        "instance": f"/api/runs/{MISSING}",
        "run_id": MISSING,
    }


WRITES = [
    ("/api/runs", {"workflow": "w"}),
    ("/api/runs/r-1/signals", {"name": "go"}),
    ("/api/tasks/t-1/complete", {"response": {}}),
    ("/api/events", {"type": "api.x"}),
    ("/api/deadletters/redrive", {"subscription": "s"}),
    ("/api/tokens", {"name": "someone"}),
]
WRITE_IDS = ["start", "signal", "complete", "publish", "redrive", "token"]


def snapshot(admin: httpx.Client) -> dict[str, Any]:
    """What a refused write must leave as it was."""
    return {
        "runs": admin.get("/api/runs", params={"limit": 1000}).json(),
        "events": admin.get("/api/events", params={"limit": 1000}).json(),
        "tokens": admin.get("/api/tokens").json(),
        "tasks": admin.get("/api/tasks").json(),
    }


@pytest.fixture(scope="module")
def seeded(admin: httpx.Client) -> str:
    """A pending run ``r-1`` (no worker serves ``w``), so refusals on it are about the body."""
    assert admin.post("/api/runs", json={"workflow": "w", "run_id": "r-1"}).status_code == 201
    return "r-1"


@pytest.mark.parametrize(("path", "body"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    "raw",
    [b'{"workflow": ', b"{'single': 'quotes'}", b"", b"\xff\xfe"],
    ids=["truncated", "not-json", "empty", "not-utf8"],
)
def test_malformed_json_is_a_422_and_writes_nothing(
    admin: httpx.Client, seeded: str, path: str, body: Any, raw: bytes
) -> None:
    before = snapshot(admin)
    answer = admin.post(path, content=raw, headers={"content-type": "application/json"})
    assert_problem(answer, 422)
    assert snapshot(admin) == before


@pytest.mark.parametrize(("path", "body"), WRITES, ids=WRITE_IDS)
def test_an_unknown_body_member_is_a_422_naming_it_and_writes_nothing(
    admin: httpx.Client, seeded: str, path: str, body: dict[str, Any]
) -> None:
    before = snapshot(admin)
    answer = admin.post(path, json={**body, "unexpected_member": True})
    problem = assert_problem(answer, 422, "invalid-request")
    assert "unexpected_member" in str(problem["errors"])
    assert snapshot(admin) == before


@pytest.mark.parametrize(("path", "body"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml"],
    ids=["text", "form", "xml"],
)
def test_a_wrong_content_type_is_a_422_and_writes_nothing(
    admin: httpx.Client, seeded: str, path: str, body: dict[str, Any], content_type: str
) -> None:
    before = snapshot(admin)
    answer = admin.post(path, content=orjson.dumps(body), headers={"content-type": content_type})
    assert_problem(answer, 422)
    assert snapshot(admin) == before


@pytest.mark.parametrize(("path", "body"), WRITES, ids=WRITE_IDS)
def test_a_body_that_is_not_an_object_is_a_422(
    admin: httpx.Client, seeded: str, path: str, body: dict[str, Any]
) -> None:
    before = snapshot(admin)
    assert_problem(admin.post(path, json=[body]), 422)
    assert_problem(admin.post(path, json="text"), 422)
    assert snapshot(admin) == before


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/runs", {"status": "finished"}),
        ("/api/runs", {"status": "COMPLETED"}),
        ("/api/tasks", {"status": "closed"}),
        ("/api/alerts", {"status": "open"}),
        ("/api/alerts", {"kind": "fire"}),
        ("/api/expectations", {"status": "late"}),
    ],
    ids=["runs", "runs-upper-case", "tasks", "alerts", "alert-kind", "expectations"],
)
def test_an_unknown_status_value_is_a_422_naming_the_parameter(
    reader: httpx.Client, path: str, params: dict[str, str]
) -> None:
    problem = assert_problem(reader.get(path, params=params), 422, "invalid-request")
    [name] = params
    assert problem["errors"][0]["loc"] == ["query", name]
    assert problem["detail"].startswith(f"query.{name}: ")


def test_an_unknown_route_is_a_404_problem(reader: httpx.Client) -> None:
    problem = assert_problem(reader.get("/api/nothing-here"), 404, "not-found")
    assert problem["instance"] == "/api/nothing-here"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/deadletters/redrive", {"POST"}),
        ("PUT", "/api/runs/r-1", {"GET"}),
        ("DELETE", "/api/runs", {"GET", "POST"}),
        ("PUT", "/api/events", {"GET", "POST"}),
        ("PATCH", "/api/tokens", {"GET", "POST"}),
    ],
    ids=["redrive", "describe", "runs", "events", "tokens"],
)
def test_an_unknown_method_is_a_405_with_allow(
    admin: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    answer = admin.request(method, path)
    assert_problem(answer, 405, "method-not-allowed")
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


def test_no_error_was_a_server_error(server: Server, reader: httpx.Client) -> None:
    """None of this module's requests made the server fail (no 5xx counted)."""
    metrics = reader.get("/metrics").text
    counted = [line for line in metrics.splitlines() if line.startswith("legato_http_requests")]
    assert counted
    assert not [line for line in counted if 'status="5' in line], counted


@pytest.mark.parametrize("sent", ["declared", "streamed"])
def test_a_body_over_the_cap_is_a_413_and_writes_nothing(
    server: Server, operator: httpx.Client, sent: str
) -> None:
    from legato.server.limits import MAX_BODY_BYTES

    before = operator.get("/api/events", params={"limit": 1000}).json()
    event = b'{"type": "api.huge", "data": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(event), 1 << 20):
            yield event[start : start + (1 << 20)]

    answer = operator.post(
        "/api/events",
        content=event if sent == "declared" else chunks(),
        headers={"content-type": "application/json"},
    )

    problem = assert_problem(answer, 413, "payload-too-large")
    assert f"{MAX_BODY_BYTES:,} bytes" in problem["detail"]
    assert operator.get("/api/events", params={"limit": 1000}).json() == before
