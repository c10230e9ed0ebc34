"""The course purchase: authorize the payment, enroll the learner, refund if that fails.

Serve it with ``legato worker examples.course_purchase.app:app`` (from the repository
root) and start purchases with ``legato start purchase_course --input '{...}'``, or run
``python examples/course_purchase/main.py`` to execute both paths in one process.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

from .services import CourseFull, Enrollments, Payments

app = legato.App("courses")

# The services the steps talk to. Fakes that remember their effects, so the demo can show
# that one payment was taken per purchase and that the refund happened.
payments = Payments()
enrollments = Enrollments(seats={"python-101": 30, "sql-201": 30, "rust-301": 0})

HAPPY_PURCHASE: dict[str, Any] = {
    "id": "p-1001",
    "learner": "ada",
    "course": "python-101",
    "amount_cents": 4900,
}
"""A purchase that completes: python-101 has seats."""

COURSE_FULL_PURCHASE: dict[str, Any] = {
    "id": "p-1002",
    "learner": "grace",
    "course": "rust-301",
    "amount_cents": 7900,
}
"""A purchase whose enrollment fails for good: rust-301 has no seat left."""


@app.step(
    retry=legato.Retry(max_attempts=5, initial_interval=timedelta(milliseconds=200)),
    timeout=timedelta(seconds=10),
)
async def authorize_payment(purchase: dict[str, Any]) -> str:
    """Charge the learner; the step key makes a retried charge the same charge."""
    # legato.step_key() is the same on every attempt and after a crash, so the gateway
    # charges once even when its answer is lost and the step runs again.
    return await payments.authorize(
        purchase["id"], purchase["amount_cents"], idempotency_key=legato.step_key()
    )


@authorize_payment.compensate
async def refund_payment(purchase: dict[str, Any], payment_id: str) -> None:
    """Undo ``authorize_payment``: it receives the step's argument, then its result."""
    await payments.refund(payment_id)


# A full course will not free a seat in the next second: fail at once instead of retrying,
# so the refund runs without delay.
@app.step(
    retry=legato.Retry(
        max_attempts=3, initial_interval=timedelta(milliseconds=200), non_retryable=(CourseFull,)
    )
)
def create_enrollment(purchase: dict[str, Any]) -> None:
    """Give the learner a seat (a blocking call: Legato runs it in a thread)."""
    enrollments.create(purchase["learner"], purchase["course"])


@app.workflow
async def purchase_course(purchase: dict[str, Any]) -> dict[str, Any]:
    """Authorize, then enroll; if enrollment fails for good the payment is refunded."""
    payment_id = await authorize_payment(purchase)
    await create_enrollment(purchase)  # CourseFull -> refund_payment runs -> "compensated"
    # When the event bus lands, the workflow publishes here, and only here, after the
    # critical path succeeded:
    #   await legato.publish("purchase.completed", purchase, subject=purchase["id"])
    # so receipts, analytics and recommendations react without blocking the purchase.
    return {"payment_id": payment_id}
