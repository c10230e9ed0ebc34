"""A course purchase end to end through the API: started with ``POST /api/runs``, executed
by a real worker of ``examples/course_purchase``, followed with ``GET /api/runs/{id}``
until it ends, then read back: its steps, its history, the event it published and that
event's deliveries to the choreographed observers, and its flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import EXAMPLE_APP, Server, eventually

OBSERVERS = {"send_receipt", "record_conversion", "refresh_recommendations"}


@pytest.fixture(scope="module", autouse=True)
def worker(server: Server) -> Iterator[None]:
    server.start_worker(EXAMPLE_APP)
    yield


def purchase(unique: str, course: str = "python-101") -> dict[str, Any]:
    return {"id": unique, "learner": f"learner-{unique}", "course": course, "amount_cents": 4900}


def test_a_purchase_completes_and_its_history_says_how(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    bought = purchase(unique)
    started = operator.post(
        "/api/runs", json={"workflow": "purchase_course", "input": bought, "run_id": unique}
    )
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "pending"

    run = server.wait_for_run(unique)
    assert run["status"] == "completed", run
    assert run["workflow"] == "purchase_course"
    assert run["input"] == [bought]
    assert run["completed_steps"] == ["authorize_payment", "create_enrollment"]
    assert run["last_error"] is None
    assert run["compensations_done"] == [] and run["compensations_pending"] == []
    payment_id = run["output"]["payment_id"]
    assert isinstance(payment_id, str) and payment_id
    assert run["next"] == "nothing: the run completed"
    [announced] = run["published"]
    assert announced["type"] == "purchase.completed"

    history = reader.get(f"/api/runs/{unique}/history")
    assert history.status_code == 200
    records = history.json()
    steps = [(r["kind"], r["name"]) for r in records if r["kind"].startswith("step_")]
    assert steps == [
        ("step_started", "authorize_payment"),
        ("step_completed", "authorize_payment"),
        ("step_started", "create_enrollment"),
        ("step_completed", "create_enrollment"),
    ]
    [charged] = [
        r for r in records if r["kind"] == "step_completed" and r["name"] == "authorize_payment"
    ]
    assert charged["data"]["result"] == payment_id
    assert records[-1]["kind"] == "run_completed"
    assert records[-1]["data"] == {"payment_id": payment_id}
    assert [r["pos"] for r in records] == list(range(1, len(records) + 1))

    # The event it published, from this run, and every observer's delivery of it.
    [stored] = reader.get("/api/events", params={"run_id": unique}).json()
    event = stored["event"]
    assert event["id"] == announced["event_id"]
    assert event["type"] == "purchase.completed"
    assert event["subject"] == unique
    assert event["data"] == {**bought, "payment_id": payment_id}
    assert stored["run_id"] == unique

    def delivered() -> dict[str, Any] | None:
        detail: dict[str, Any] = reader.get(
            f"/api/events/{event['id']}", params={"source": event["source"]}
        ).json()
        done = {d["subscription"] for d in detail["deliveries"] if d["status"] == "done"}
        return detail if done == OBSERVERS else None

    detail = eventually(delivered, "the observers' deliveries")
    assert {d["subscription"] for d in detail["deliveries"]} == OBSERVERS

    flow = reader.get(f"/api/flows/{event['correlationid']}").json()
    assert flow["events"] == 1
    assert flow["dead"] == 0 and flow["pending"] == 0
    assert reader.get("/api/deadletters").json() == []


def test_a_full_course_is_refunded(
    server: Server, operator: httpx.Client, reader: httpx.Client, unique: str
) -> None:
    started = operator.post(
        "/api/runs",
        json={
            "workflow": "purchase_course",
            "args": [purchase(unique, "rust-301")],
            "run_id": unique,
        },
    )
    assert started.status_code == 201, started.text
    run = server.wait_for_run(unique)
    assert run["status"] == "compensated", run
    assert run["completed_steps"] == ["authorize_payment"]
    assert run["compensations_done"] == ["authorize_payment"]
    assert run["last_error"]["step"] == "create_enrollment"
    assert "CourseFull" in run["last_error"]["type"]
    assert run["published"] == []  # no receipt for a refunded course
    kinds = [r["kind"] for r in reader.get(f"/api/runs/{unique}/history").json()]
    assert "step_failed" in kinds
    assert kinds[-1] == "run_compensated", kinds
    assert reader.get("/api/events", params={"run_id": unique}).json() == []
    listed = reader.get(
        "/api/runs", params={"workflow": "purchase_course", "status": "compensated"}
    ).json()
    assert [r["run_id"] for r in listed["runs"]] == [unique]
