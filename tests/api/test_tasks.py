"""``/api/tasks``: the human-task inbox over real ``fraud_review`` runs
(``tests/acceptance/waiting_app.py``): list, show, complete, with the task's form
checked and a closed task refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.acceptance.waiting_app import REVIEW_FORM
from tests.api.conftest import WAITING_APP, Server, assert_problem, eventually


@pytest.fixture(scope="module", autouse=True)
def worker(server: Server) -> Iterator[None]:
    server.start_worker(WAITING_APP)
    yield


def open_review(server: Server, operator: httpx.Client, unique: str) -> dict[str, Any]:
    """Start a ``fraud_review`` run assigned to ``unique``; its task, once open."""
    started = operator.post(
        "/api/runs",
        json={
            "workflow": "fraud_review",
            "input": {"id": unique, "amount_cents": 12_500, "reviewer": unique},
            "run_id": unique,
        },
    )
    assert started.status_code == 201, started.text
    reader = server.as_scope("read")

    def task() -> dict[str, Any] | None:
        found = reader.get("/api/tasks", params={"assignee": unique})
        assert found.status_code == 200, found.text
        tasks: list[dict[str, Any]] = found.json()
        assert len(tasks) <= 1
        return tasks[0] if tasks else None

    return eventually(task, f"the review task of {unique}")


def test_an_open_task_is_listed_with_its_form(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    task = open_review(server, operator, unique)
    assert task["run_id"] == unique
    assert task["name"] == "fraud_review"
    assert task["assignee"] == unique
    assert task["status"] == "open"
    assert task["data"] == {"order": unique, "amount_cents": 12_500}
    assert task["form"] == REVIEW_FORM
    assert task["response"] is None
    assert task["completed_at"] is None
    assert datetime.fromisoformat(task["due_at"]) > datetime.fromisoformat(task["created_at"])

    assert reader.get(f"/api/tasks/{task['task_id']}").json() == task
    assert reader.get("/api/tasks", params={"run_id": unique}).json() == [task]
    assert task in reader.get("/api/tasks").json()  # open tasks by default
    assert reader.get("/api/tasks", params={"run_id": unique, "status": "completed"}).json() == []
    assert reader.get("/api/tasks", params={"assignee": f"{unique}-nobody"}).json() == []
    shown = reader.get(f"/api/runs/{unique}").json()
    assert shown["status"] == "waiting"
    assert "fraud_review" in shown["next"]


def test_complete_a_task_and_the_run_goes_on(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    task = open_review(server, operator, unique)
    response = {"approved": True, "note": "known customer"}
    answer = operator.post(f"/api/tasks/{task['task_id']}/complete", json={"response": response})
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["task_id"] == task["task_id"]
    assert done["status"] == "completed"
    assert done["response"] == response
    assert done["completed_by"] == "api-operate"  # the token that answered
    assert task["completed_by"] is None
    assert datetime.fromisoformat(done["completed_at"]) >= datetime.fromisoformat(
        task["created_at"]
    )
    assert reader.get(f"/api/tasks/{task['task_id']}").json() == done
    assert reader.get("/api/tasks", params={"run_id": unique, "status": "completed"}).json() == [
        done
    ]
    assert reader.get("/api/tasks", params={"run_id": unique}).json() == []  # no longer open

    run = server.wait_for_run(unique)
    assert run["status"] == "completed"
    assert run["output"] == {"order": unique, "review": response}


def test_completing_twice_is_a_409_and_keeps_the_first_answer(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    task = open_review(server, operator, unique)
    url = f"/api/tasks/{task['task_id']}/complete"
    assert operator.post(url, json={"response": {"approved": False}}).status_code == 200
    again = operator.post(url, json={"response": {"approved": True}})
    body = assert_problem(again, 409, "task-closed")
    assert body["task_id"] == task["task_id"]
    shown = reader.get(f"/api/tasks/{task['task_id']}").json()
    assert shown["response"] == {"approved": False}
    assert server.wait_for_run(unique)["output"]["review"] == {"approved": False}


@pytest.mark.parametrize(
    "response",
    [
        {"approved": "yes"},
        {"note": "no decision"},
        {"approved": True, "extra": 1},
        "approved",
        None,
    ],
    ids=["wrong-type", "missing-required", "extra-property", "not-an-object", "null"],
)
def test_a_response_that_breaks_the_form_is_a_422_and_the_task_stays_open(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, response: Any
) -> None:
    task = open_review(server, operator, unique)
    answer = operator.post(f"/api/tasks/{task['task_id']}/complete", json={"response": response})
    body = assert_problem(answer, 422, "invalid-task-response")
    assert body["task_id"] == task["task_id"]
    assert reader.get(f"/api/tasks/{task['task_id']}").json() == task
    assert reader.get(f"/api/runs/{unique}").json()["status"] == "waiting"
    # And it can still be answered.
    fine = operator.post(
        f"/api/tasks/{task['task_id']}/complete", json={"response": {"approved": True}}
    )
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize(
    "body",
    [{}, {"response": {"approved": True}, "by": "me"}],
    ids=["no-response", "extra-member"],
)
def test_a_malformed_completion_is_a_422_and_the_task_stays_open(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str, body: Any
) -> None:
    task = open_review(server, operator, unique)
    answer = operator.post(f"/api/tasks/{task['task_id']}/complete", json=body)
    assert_problem(answer, 422, "invalid-request")
    assert reader.get(f"/api/tasks/{task['task_id']}").json() == task


def test_unknown_tasks_are_404(operator: httpx.Client, reader: httpx.Client) -> None:
    body = assert_problem(reader.get("/api/tasks/no-such-task"), 404, "task-not-found")
    assert body["task_id"] == "no-such-task"
    completed = operator.post("/api/tasks/no-such-task/complete", json={"response": {}})
    assert assert_problem(completed, 404, "task-not-found")["task_id"] == "no-such-task"


@pytest.mark.parametrize(
    "params",
    [{"status": "done"}, {"limit": 0}, {"limit": 1001}],
    ids=["status", "limit-0", "limit-1001"],
)
def test_a_bad_task_listing_is_a_422(reader: httpx.Client, params: dict[str, Any]) -> None:
    assert_problem(reader.get("/api/tasks", params=params), 422, "invalid-request")


def test_claim_an_unassigned_task_then_someone_elses_is_a_409(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    started = operator.post(
        "/api/runs",
        json={
            "workflow": "fraud_review",
            "input": {"id": unique, "amount_cents": 100, "reviewer": None},
            "run_id": unique,
        },
    )
    assert started.status_code == 201, started.text
    [task] = eventually(
        lambda: reader.get("/api/tasks", params={"run_id": unique}).json(), "the task"
    )
    assert task["assignee"] is None

    claimed = operator.post(f"/api/tasks/{task['task_id']}/claim")

    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["assignee"] == "api-operate"
    assert operator.post(f"/api/tasks/{task['task_id']}/claim").status_code == 200  # mine
    assert_problem(reader.post(f"/api/tasks/{task['task_id']}/claim"), 403, "not-permitted")
    theirs = open_review(server, operator, f"{unique}-b")  # assigned to someone else
    problem = assert_problem(operator.post(f"/api/tasks/{theirs['task_id']}/claim"), 409)
    assert problem["type"] == "urn:legato:problem:task-claimed"
    assert f"assigned to '{unique}-b'" in problem["detail"]
    assert_problem(operator.post("/api/tasks/no-such-task/claim"), 404, "task-not-found")
