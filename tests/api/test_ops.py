"""What an operator watches: ``/api/workers``, ``/api/workflows``, the probes
(``/healthz``, ``/readyz``), ``/metrics`` (requests counted by route template, never by
id), and the OpenAPI document naming every route these tests cover."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import (
    API_APP,
    LEGATO,
    REPO_ROOT,
    Server,
    assert_problem,
    cli_env,
    eventually,
    free_port,
)

ROUTES = {
    ("POST", "/api/runs"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/{run_id}"),
    ("GET", "/api/runs/{run_id}/history"),
    ("POST", "/api/runs/{run_id}/signals"),
    ("POST", "/api/runs/{run_id}/cancel"),
    ("POST", "/api/runs/{run_id}/resume"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/{task_id}"),
    ("POST", "/api/tasks/{task_id}/complete"),
    ("POST", "/api/events"),
    ("GET", "/api/events"),
    ("GET", "/api/events/{event_id}"),
    ("GET", "/api/flows/{correlation_id}"),
    ("GET", "/api/deadletters"),
    ("POST", "/api/deadletters/redrive"),
    ("GET", "/api/workers"),
    ("GET", "/api/workflows"),
    ("GET", "/api/expectations"),
    ("GET", "/api/alerts"),
    ("GET", "/api/tokens"),
    ("POST", "/api/tokens"),
    ("DELETE", "/api/tokens/{name}"),
    ("POST", "/api/tasks/{task_id}/claim"),
    ("POST", "/api/runs/{run_id}/retry"),
    ("POST", "/api/runs/{run_id}/resume-compensation"),
    ("POST", "/api/runs/{run_id}/restart"),
    ("POST", "/api/bulk/{action}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}
"""Every route of the API, each exercised by a test of this directory."""


def test_the_openapi_document_has_exactly_the_routes_tested(server: Server) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    documented = {
        (method.upper(), path.replace("{run_id:path}", "{run_id}"))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == ROUTES


def test_healthz(server: Server) -> None:
    answer = httpx.get(f"{server.base_url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "detail": "the server answers"}


def test_readyz(server: Server) -> None:
    answer = httpx.get(f"{server.base_url}/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok"
    assert body["detail"].startswith("the database answers, at schema ")


@pytest.mark.sqlite_only
def test_readyz_is_503_once_the_database_file_is_gone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("deleted")
    other = Server(f"sqlite:///{directory / 'legato.db'}", directory)
    secret = other.token("operate")
    other.start()
    try:
        assert httpx.get(f"{other.base_url}/readyz").status_code == 200
        (directory / "legato.db").unlink()
        answer = httpx.get(f"{other.base_url}/readyz")
        assert answer.status_code == 503, answer.text
        assert answer.json()["status"] == "unavailable"
        assert httpx.get(f"{other.base_url}/healthz").status_code == 200
        with other.client(secret) as operator:
            assert_problem(operator.post("/api/runs", json={"workflow": "w"}), 503)
    finally:
        other.stop(server_errors_expected=True)


@pytest.mark.sqlite_only
def test_a_file_that_is_not_a_database_is_refused_in_one_line_before_serving(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n")
    refused = subprocess.run(
        [str(LEGATO), "server", "--port", str(free_port()), "--database", f"sqlite:///{path}"],
        cwd=REPO_ROOT,
        env=cli_env(f"sqlite:///{path}"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "is corrupt or not a SQLite database" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "legato server on" not in refused.stderr  # never started serving
    assert path.read_text() == "my notes, not a database\n"


SERVED = ["await_signal", "buy", "drifting", "gated", "on_order", "pay"]
"""The workflows a worker of the API test app registers, by name."""


@pytest.fixture(scope="module")
def worker(server: Server) -> Iterator[int]:
    process = server.start_worker(API_APP)
    yield process.pid


def test_workflows_lists_what_workers_registered(
    server: Server, reader: httpx.Client, worker: int
) -> None:
    answer = reader.get("/api/workflows")
    assert answer.status_code == 200
    assert answer.json() == SERVED


def test_workers_lists_each_worker_and_the_runs_it_holds(
    server: Server,
    operator: httpx.Client,
    reader: httpx.Client,
    worker: int,
    unique: str,
    tmp_path: Path,
) -> None:
    def mine() -> dict[str, Any]:
        [listed] = [w for w in reader.get("/api/workers").json() if w["pid"] == worker]
        return listed

    listed = mine()
    assert listed["host"].startswith(socket.gethostname())
    assert sorted(listed["workflows"]) == [
        "await_signal",
        "buy",
        "drifting",
        "gated",
        "on_order",
        "pay",
    ]
    assert listed["lease_s"] == 15.0
    assert datetime.fromisoformat(listed["heartbeat_at"]) >= datetime.fromisoformat(
        listed["started_at"]
    )
    assert listed["worker_id"]
    assert listed["runs"] == 0

    gate = tmp_path / "gate"
    started = operator.post(
        "/api/runs",
        json={"workflow": "gated", "input": {"id": unique, "gate": str(gate)}, "run_id": unique},
    )
    assert started.status_code == 201, started.text
    eventually(lambda: mine()["runs"] == 1, "the worker to hold the run")
    shown = reader.get(f"/api/runs/{unique}").json()
    assert shown["owner"]["worker_id"] == listed["worker_id"]
    gate.touch()
    assert server.wait_for_run(unique)["status"] == "completed"
    assert mine()["runs"] == 0


def test_metrics_count_requests_by_route_template(server: Server, reader: httpx.Client) -> None:
    for run_id in ("m-1", "m-2", "m/3"):
        assert_problem(reader.get(f"/api/runs/{run_id}"), 404)
    assert reader.get("/api/runs").status_code == 200
    assert reader.get("/api/nowhere").status_code == 404

    answer = httpx.get(f"{server.base_url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(answer.text)
        if family.name == "legato_http_requests"
        for s in family.samples
        if s.name == "legato_http_requests_total"
    }
    assert counted[("/api/runs/{run_id}", "GET", "404")] >= 3
    assert counted[("/api/runs", "GET", "200")] >= 1
    assert counted[("unmatched", "GET", "404")] >= 1
    assert not [route for route, _, _ in counted if "m-1" in route or "m/3" in route]
    timed = [
        f
        for f in text_string_to_metric_families(answer.text)
        if f.name == "legato_http_request_seconds"
    ]
    assert timed and timed[0].type == "histogram"
