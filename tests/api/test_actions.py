"""Operator actions over HTTP, on a real server with a worker of ``tests/api/api_app.py``:
retry a failed run from its failed step, resume a failed compensation, restart a run,
cancel, and each in bulk (a preview, then its confirmation). Every action is recorded in
the run's history with the token's name; a read token may do none of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import API_APP, Server, assert_problem


@pytest.fixture(scope="module", autouse=True)
def worker(server: Server) -> Iterator[None]:
    server.start_worker(API_APP)
    yield


@pytest.fixture
def fixes(tmp_path: Path) -> dict[str, Path]:
    """Files that, once they exist, are the deployed fixes of ``charge`` and ``release``."""
    return {"fixed": tmp_path / "charge-fixed", "release_fixed": tmp_path / "release-fixed"}


def order(unique: str, fixes: dict[str, Path]) -> dict[str, Any]:
    return {"id": unique, **{name: str(path) for name, path in fixes.items()}}


def start(operator: httpx.Client, workflow: str, run_id: str, body: dict[str, Any]) -> None:
    answer = operator.post(
        "/api/runs", json={"workflow": workflow, "run_id": run_id, "input": body}
    )
    assert answer.status_code == 201, answer.text


def history(reader: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    answer = reader.get(f"/api/runs/{run_id}/history")
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()
    return records


def of_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


def test_retry_a_failed_run_from_its_failed_step(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, fixes: Any
) -> None:
    start(operator, "pay", unique, order(unique, fixes))
    assert server.wait_for_run(unique)["status"] == "failed"
    fixes["fixed"].touch()  # the fix is deployed

    answer = operator.post(f"/api/runs/{unique}/retry")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"run_id": unique, "status": "running"}
    done = server.wait_for_run(unique)
    assert done["status"] == "completed", done
    assert done["output"] == [f"noted {unique}", f"ch-{unique}"]
    records = history(reader, unique)
    [retried] = of_kind(records, "run_retried")
    assert retried["data"]["by"] == "api-operate" and retried["data"]["step"] == "charge"
    assert len(of_kind(records, "step_completed")) == 2  # note ran once, charge once
    assert [r["name"] for r in of_kind(records, "step_completed")] == ["note", "charge"]


def test_resume_the_compensation_that_gave_up(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, fixes: Any
) -> None:
    start(operator, "buy", unique, order(unique, fixes))
    assert server.wait_for_run(unique)["status"] == "compensation_failed"
    fixes["release_fixed"].touch()

    answer = operator.post(f"/api/runs/{unique}/resume-compensation")

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "compensating"
    assert server.wait_for_run(unique)["status"] == "compensated"
    [resumed] = of_kind(history(reader, unique), "compensation_resumed")
    assert resumed["data"]["by"] == "api-operate"


def test_restart_an_ended_run_as_a_new_one(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, fixes: Any
) -> None:
    start(operator, "pay", unique, order(unique, fixes))
    assert server.wait_for_run(unique)["status"] == "failed"
    fixes["fixed"].touch()

    answer = operator.post(f"/api/runs/{unique}/restart", json={"run_id": f"{unique}-again"})

    assert answer.status_code == 201, answer.text
    assert answer.json() == {"run_id": unique, "new_run_id": f"{unique}-again"}
    assert answer.headers["location"] == f"/api/runs/{unique}-again"
    again = server.wait_for_run(f"{unique}-again")
    assert again["status"] == "completed"
    in_flow = reader.get("/api/runs", params={"correlation_id": unique}).json()["runs"]
    assert sorted(r["run_id"] for r in in_flow) == [unique, f"{unique}-again"]  # one flow
    [restarted] = of_kind(history(reader, unique), "run_restarted")
    assert restarted["data"] == {"run_id": f"{unique}-again", "by": "api-operate"}
    assert reader.get(f"/api/runs/{unique}").json()["status"] == "failed"  # as it was


@pytest.mark.parametrize(
    ("action", "detail"),
    [("retry", "not failed"), ("resume-compensation", "not compensation_failed")],
)
def test_an_action_on_a_run_in_the_wrong_status_is_a_409_and_records_nothing(
    operator: httpx.Client, reader: httpx.Client, unique: str, action: str, detail: str
) -> None:
    start(operator, "unserved_a", unique, {})
    before = history(reader, unique)
    problem = assert_problem(operator.post(f"/api/runs/{unique}/{action}"), 409)
    assert detail in problem["detail"] and problem["run_id"] == unique
    assert history(reader, unique) == before


def test_an_action_on_an_unknown_run_is_a_404(operator: httpx.Client) -> None:
    for action in ("retry", "resume-compensation", "restart"):
        assert_problem(operator.post(f"/api/runs/no-such-run/{action}"), 404, "run-not-found")


def test_restart_of_a_run_still_going_is_a_409(operator: httpx.Client, unique: str) -> None:
    start(operator, "unserved_a", unique, {})
    problem = assert_problem(operator.post(f"/api/runs/{unique}/restart"), 409)
    assert "only a run that has ended" in problem["detail"]


def test_a_read_token_may_do_no_action(reader: httpx.Client, unique: str) -> None:
    for path in (f"/api/runs/{unique}/retry", f"/api/runs/{unique}/restart"):
        assert_problem(reader.post(path), 403, "not-permitted")
    assert_problem(reader.post("/api/bulk/retry", json={}), 403, "not-permitted")


def test_cancel_records_the_token_that_asked(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    start(operator, "unserved_a", unique, {})
    assert operator.post(f"/api/runs/{unique}/cancel").json()["status"] == "cancelled"
    [requested] = of_kind(history(reader, unique), "cancel_requested")
    assert requested["data"] == {"by": "api-operate"}


# -- bulk ---------------------------------------------------------------------------------


def test_bulk_retry_previews_counts_then_retries_what_it_counted(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, fixes: Any
) -> None:
    for n in range(3):
        start(operator, "pay", f"{unique}-{n}", order(f"{unique}-{n}", fixes))
    for n in range(3):
        assert server.wait_for_run(f"{unique}-{n}")["status"] == "failed"
    selection = {"workflow": "pay", "run_id_prefix": f"{unique}-"}

    preview = operator.post("/api/bulk/retry", json=selection)

    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["done"] is None
    assert body["preview"]["count"] == 3
    assert sorted(body["preview"]["run_ids"]) == [f"{unique}-{n}" for n in range(3)]
    for n in range(3):  # a preview does nothing
        assert reader.get(f"/api/runs/{unique}-{n}").json()["status"] == "failed"

    fixes["fixed"].touch()
    confirm = body["preview"]["confirm"]
    applied = operator.post("/api/bulk/retry", json={**selection, "confirm": confirm})

    assert applied.status_code == 200, applied.text
    done = applied.json()["done"]
    assert sorted(done["done"]) == [f"{unique}-{n}" for n in range(3)]
    assert done["skipped"] == {}
    for n in range(3):
        assert server.wait_for_run(f"{unique}-{n}")["status"] == "completed"
        [retried] = of_kind(history(reader, f"{unique}-{n}"), "run_retried")
        assert retried["data"]["by"] == "api-operate"


def test_bulk_with_a_stale_confirmation_is_a_409_with_the_new_preview(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, fixes: Any
) -> None:
    start(operator, "pay", f"{unique}-0", order(f"{unique}-0", fixes))
    assert server.wait_for_run(f"{unique}-0")["status"] == "failed"
    selection = {"run_id_prefix": f"{unique}-"}
    confirm = operator.post("/api/bulk/retry", json=selection).json()["preview"]["confirm"]
    start(operator, "pay", f"{unique}-1", order(f"{unique}-1", fixes))
    assert server.wait_for_run(f"{unique}-1")["status"] == "failed"

    stale = operator.post("/api/bulk/retry", json={**selection, "confirm": confirm})

    problem = assert_problem(stale, 409, "bulk-changed")
    assert problem["preview"]["count"] == 2 and problem["preview"]["confirm"] != confirm
    for n in range(2):
        assert not of_kind(history(reader, f"{unique}-{n}"), "run_retried")


def test_bulk_cancel_of_pending_runs(
    operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    for n in range(2):
        start(operator, "unserved_b", f"{unique}-{n}", {})
    selection = {"workflow": "unserved_b", "run_id_prefix": f"{unique}-", "status": "pending"}
    preview = operator.post("/api/bulk/cancel", json=selection).json()["preview"]
    assert preview["count"] == 2
    done = operator.post("/api/bulk/cancel", json={**selection, "confirm": preview["confirm"]})
    assert sorted(done.json()["done"]["done"]) == [f"{unique}-0", f"{unique}-1"]
    for n in range(2):
        assert reader.get(f"/api/runs/{unique}-{n}").json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("action", "body", "status", "detail"),
    [
        ("explode", {}, 422, "action"),
        ("retry", {"status": "completed"}, 422, "takes runs that are failed; not completed"),
        ("retry", {"status": "nonsense"}, 422, "nonsense"),
        ("retry", {"colour": "red"}, 422, "colour"),
    ],
)
def test_bulk_refuses_what_it_cannot_take(
    operator: httpx.Client, action: str, body: dict[str, Any], status: int, detail: str
) -> None:
    problem = assert_problem(operator.post(f"/api/bulk/{action}", json=body), status)
    assert detail in problem["detail"], problem
