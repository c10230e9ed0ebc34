"""A test app whose runs wait for the outside world: a signal, or a person's answer.

Served by ``legato worker tests.acceptance.waiting_app:app`` from the repository root, so
acceptance tests can drive ``legato signal`` and ``legato tasks`` against real waits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

app = legato.App("waiting")

REVIEW_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["approved"],
    "additionalProperties": False,
}
"""The form a reviewer fills in: ``{"approved": true|false, "note": "..."}``."""


@app.workflow
async def await_approval(order: dict[str, Any]) -> dict[str, Any]:
    """Wait for the signal ``approval`` and return the order with its payload."""
    approval = await legato.wait_for_signal("approval")
    return {"order": order["id"], "approval": approval}


@app.workflow
async def await_two(order: dict[str, Any]) -> list[Any]:
    """Wait for two ``item`` signals and return their payloads in the order received."""
    first = await legato.wait_for_signal("item")
    second = await legato.wait_for_signal("item")
    return [first, second]


@app.workflow
async def fraud_review(order: dict[str, Any]) -> dict[str, Any]:
    """Open a review task for ``order["reviewer"]`` and return the reviewer's response."""
    response = await legato.human_task(
        "fraud_review",
        {"order": order["id"], "amount_cents": order["amount_cents"]},
        assignee=order.get("reviewer"),
        form=REVIEW_FORM,
        timeout=timedelta(days=2),
    )
    return {"order": order["id"], "review": response}


@app.workflow
async def escalating_review(order: dict[str, Any]) -> dict[str, Any]:
    """A review by ``order["reviewer"]``; after ``order["timeout_s"]`` it goes to the lead."""
    data = {"order": order["id"], "amount_cents": order["amount_cents"]}
    try:
        response = await legato.human_task(
            "first_review",
            data,
            assignee=order["reviewer"],
            form=REVIEW_FORM,
            timeout=timedelta(seconds=order["timeout_s"]),
        )
    except legato.errors.WaitTimeout:
        response = await legato.human_task(
            "second_review", data, assignee=order["lead"], form=REVIEW_FORM
        )
        return {"order": order["id"], "escalated_to": order["lead"], "review": response}
    return {"order": order["id"], "review": response}
