"""The course purchase: authorize the payment, enroll the learner, refund if that fails.

The critical path is orchestrated: ``purchase_course`` is a durable workflow that owns the
order of its steps and their compensation. Only once it succeeded does it publish
``purchase.completed``; the receipt, analytics and recommendations are choreographed
around it: each subscribes with ``@app.on``, is delivered the event at least once with
its own retries, and can neither block nor fail the purchase.

Serve it with ``legato worker examples.course_purchase.app:app`` (from the repository
root) and start purchases with ``legato start purchase_course --input '{...}'``, or run
``python examples/course_purchase/main.py`` to execute both paths in one process.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legato

from .services import Analytics, CourseFull, Enrollments, Mailer, Payments, Recommendations

app = legato.App("courses")

# The services the steps talk to. Fakes that remember their effects, so the demo can show
# that one payment was taken per purchase and that the refund happened.
payments = Payments()
enrollments = Enrollments(seats={"python-101": 30, "sql-201": 30, "rust-301": 0})
# The observers of a completed purchase.
mailer = Mailer()
analytics = Analytics()
recommendations = Recommendations()

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
    # Here, and only here: the learner is charged and enrolled. A compensated purchase never
    # gets this far, so it announces nothing (no receipt for a refunded course). The event
    # commits with the run's progress and replay does not publish it again.
    await legato.publish(
        "purchase.completed", {**purchase, "payment_id": payment_id}, subject=purchase["id"]
    )
    return {"payment_id": payment_id}


# -- Choreographed observers: each reacts on its own, after the purchase completed --------
#
# The run does not wait for them: a slow mailer or a recommendations outage leaves the
# purchase completed, and their deliveries retry (then go to the dead letters) on their own.


@app.on("purchase.completed")
async def send_receipt(event: legato.Event) -> None:
    """Email the learner a receipt: one email, however often the event is delivered."""
    purchase = event.data
    # The delivery's idempotency key is the same on every attempt and redelivery.
    await mailer.send(
        purchase["learner"],
        f"Your receipt for {purchase['course']} (payment {purchase['payment_id']})",
        idempotency_key=legato.delivery().idempotency_key,
    )


@app.on("purchase.completed")
def record_conversion(event: legato.Event) -> None:
    """Count the sale (a blocking analytics call: Legato runs it in a thread)."""
    purchase = event.data
    analytics.record_conversion(event.id, purchase["course"], purchase["amount_cents"])


# A refresh that fails is retried soon: recommendations can be a little late, not wrong.
@app.on(
    "purchase.completed",
    retry=legato.Retry(max_attempts=5, initial_interval=timedelta(milliseconds=200)),
)
async def refresh_recommendations(event: legato.Event) -> None:
    """Recompute the learner's recommendations now that they own the course."""
    purchase = event.data
    await recommendations.refresh(purchase["learner"], purchase["course"])
