"""The course purchase as pure choreography: no orchestrator, and an expectation that notices.

    payments            publishes purchase.completed            (the learner has paid)
    purchase.completed  -> enrollment.grant      grants access, publishes enrollment.created
    purchase.completed  -> email.send            emails the receipt
    purchase.completed  -> analytics.conversion  counts the sale
    enrollment.created  -> email.send            tells the learner the course is open
    purchase.refunded   -> email.send            tells the learner the money is back

Nobody owns the sequence. When the enrollment service is down for good, its delivery of
``purchase.completed`` runs out of retries and goes to the dead letters: the learner has
paid, got a receipt, has no access, and no service knows. The expectation
``paid-learner-is-enrolled`` is the one place that knows what should have followed:
after ``purchase.completed``, ``enrollment.created`` for the same correlation id within
five minutes, unless ``purchase.refunded``. When the deadline passes, Legato publishes
``legato.expectation.violated`` and starts ``refund_or_enroll`` with it, once: a
durable workflow that tries the enrollment again and refunds the learner if it fails.

Serve it with ``legato worker examples.course_purchase.choreographed:app`` and play the
payment service with ``legato events publish purchase.completed --source /payments --id
REF --data '{"id": ..., "learner": ..., "course": ..., "amount_cents": ..., "payment_id":
...}'``, or run the demo, which takes the payment too:

    python -m examples.course_purchase.choreographed                    # from the repository root
    python -m examples.course_purchase.choreographed --enrollment-down  # the service fails for good

The demo's expectation has a deadline of a few seconds (``--deadline``), not five minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import legato

from .services import (
    Analytics,
    CourseFull,
    Enrollments,
    EnrollmentService,
    Mailer,
    Payments,
)

EXPECTATION = "paid-learner-is-enrolled"
DEADLINE = timedelta(minutes=5)
"""How long after ``purchase.completed`` the learner must be enrolled."""
DEMO_DEADLINE = timedelta(seconds=3)
"""The demo's deadline: long enough for the enrollment's retries to run out first."""
ENROLLMENT_DOWN = False
"""The switch: True makes the enrollment service fail every call, for good (its delivery
dead-letters). It sets up the module's ``app`` (edit it here to serve a worker with the
outage); the demo's ``--enrollment-down`` turns it on for one run."""
DATABASE = "sqlite:///course_purchase_choreographed.db"
"""Where the demo writes, unless $LEGATO_DATABASE_URL says otherwise."""

PURCHASE: dict[str, Any] = {
    "id": "p-2001",
    "learner": "ada",
    "course": "python-101",
    "amount_cents": 4900,
}
"""The demo's purchase: python-101 has seats, so only an outage keeps ada out."""

# The enrollment service is worth a few quick retries (a blip), not more: an outage will
# not end within a second, and the expectation, not the subscriber, decides what then.
ENROLLMENT_RETRY = legato.Retry(
    max_attempts=3, initial_interval=timedelta(milliseconds=200), non_retryable=(CourseFull,)
)


@dataclass
class Campus:
    """The services of the choreography, each its own team's: fakes that remember.

    ``enrollment.down = True`` makes the enrollment service fail every call, for good.
    """

    payments: Payments = field(default_factory=Payments)
    enrollment: EnrollmentService = field(
        default_factory=lambda: EnrollmentService(Enrollments(seats={"python-101": 30}))
    )
    mailer: Mailer = field(default_factory=Mailer)
    analytics: Analytics = field(default_factory=Analytics)


def define(app: legato.App, campus: Campus, *, within: timedelta = DEADLINE) -> legato.App:
    """Register the services' handlers, the expectation and ``refund_or_enroll`` on ``app``."""

    # -- the services: each reacts on its own to the events it cares for -----------------

    @app.on("purchase.completed", name="enrollment.grant", retry=ENROLLMENT_RETRY)
    async def grant_access(event: legato.Event) -> None:
        purchase = event.data
        await campus.enrollment.grant(purchase["learner"], purchase["course"])
        # Published with an id derived from this delivery: a retry publishes it once.
        await legato.publish("enrollment.created", purchase, subject=purchase["id"])

    @app.on(
        {"type": ["purchase.completed", "enrollment.created", "purchase.refunded"]},
        name="email.send",
    )
    async def email_learner(event: legato.Event) -> None:
        purchase = event.data
        subject = {
            "purchase.completed": f"Your receipt for {purchase['course']}",
            "enrollment.created": f"{purchase['course']} is open: start learning",
            "purchase.refunded": f"Refunded: we could not open {purchase['course']} for you",
        }[event.type]
        await campus.mailer.send(
            purchase["learner"], subject, idempotency_key=legato.delivery().idempotency_key
        )

    @app.on("purchase.completed", name="analytics.conversion")
    async def count_conversion(event: legato.Event) -> None:
        purchase = event.data
        campus.analytics.record_conversion(event.id, purchase["course"], purchase["amount_cents"])

    # -- who notices: the expectation, and the workflow its violation starts -------------

    # Named: defined in a function, their qualified names would say "define.<locals>".
    @app.step(name="find_purchase")
    async def find_purchase(trigger: dict[str, Any]) -> dict[str, Any]:
        """The purchase the violated instance was opened for: its trigger event's data."""
        stored = await app.get_event(trigger["id"], trigger["source"])
        data: dict[str, Any] = stored.event.data
        return data

    @app.step(name="enroll_again", retry=ENROLLMENT_RETRY)
    async def enroll_again(purchase: dict[str, Any]) -> None:
        """Grant access once more: the service may be back (granting twice is harmless)."""
        await campus.enrollment.grant(purchase["learner"], purchase["course"])

    @app.step(name="refund")
    async def refund(purchase: dict[str, Any]) -> None:
        """Give the learner their money back (refunding twice changes nothing)."""
        await campus.payments.refund(purchase["payment_id"])

    @app.workflow(name="refund_or_enroll")
    async def refund_or_enroll(violation: legato.Event) -> dict[str, Any]:
        """Put right a paid learner with no access: enroll them if the service is back,
        else refund them. Its events carry the purchase's correlation id, so the
        subscribers react to them as to any other, and the expectation sees them."""
        purchase = await find_purchase(violation.data["trigger"])
        try:
            await enroll_again(purchase)
        except legato.errors.StepFailed as failed:
            await refund(purchase)
            await legato.publish(
                "purchase.refunded",
                {**purchase, "reason": f"{failed.error_type}: {failed.error_message}"},
                subject=purchase["id"],
            )
            return {"outcome": "refunded", "payment_id": purchase["payment_id"]}
        # The enrollment service publishes this when it reacts by itself; here the workflow
        # did its job for it, so it announces it: the email follows, the instance recovers.
        await legato.publish("enrollment.created", purchase, subject=purchase["id"])
        return {"outcome": "enrolled"}

    app.expect(
        EXPECTATION,
        after="purchase.completed",
        then="enrollment.created",
        within=within,
        unless="purchase.refunded",
        start=refund_or_enroll,
    )
    return app


async def pay(app: legato.App, campus: Campus, purchase: dict[str, Any], ref: str) -> legato.Event:
    """What the payment service does: charge the learner, then publish ``purchase.completed``.

    ``ref`` is both the charge's idempotency key and the event's id, so a payment service
    that retries charges once and publishes once. With no correlation id of its own the
    event starts a flow named by its id (``legato flows show REF``).
    """
    payment_id = await campus.payments.authorize(
        purchase["id"], purchase["amount_cents"], idempotency_key=ref
    )
    return await app.publish(
        "purchase.completed",
        {**purchase, "payment_id": payment_id},
        subject=purchase["id"],
        id=ref,
        source="/payments",
    )


# The services the handlers talk to, and the app a worker serves.
campus = Campus()
campus.enrollment.down = ENROLLMENT_DOWN
app = define(legato.App("courses_choreographed"), campus)


# -- the demo ---------------------------------------------------------------------------


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Poll ``check`` until it is true: a choreography has no end of its own to wait on."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout:.0f}s for {what}")
        await asyncio.sleep(0.05)


async def print_reactions(app: legato.App, stored: legato.StoredEvent) -> None:
    """How each subscriber's delivery of one event went, once none is pending."""

    async def settled() -> bool:
        deliveries = await app.deliveries(stored.event.id, stored.event.source)
        return all(d.status != "pending" for d in deliveries)

    await wait_for(f"the reactions to {stored.event.type}", settled, timeout=30)
    print(f"  {stored.event.type} (from {stored.event.source}):")
    for d in await app.deliveries(stored.event.id, stored.event.source):
        if d.subscription.startswith("expectation:"):
            continue  # Legato's own watch over the flow: shown apart
        tries = f"{d.attempts} attempt{'' if d.attempts == 1 else 's'}"
        error = f" ({d.error['type'].rsplit('.', 1)[-1]})" if d.error else ""
        print(f"    -> {d.subscription}: {d.status.value} after {tries}{error}")


async def print_violation(app: legato.App, inst: legato.ExpectationInstance) -> str:
    """The violation of ``inst``, the run it started and how that ended; the run's id."""
    assert inst.violation_id is not None  # a violated instance has its event
    violation = (await app.get_event(inst.violation_id)).event
    print(f"  published {violation.type}: missing {', '.join(violation.data['missing'])}")
    run_id: str = violation.data["run_id"]
    print(f"  started refund_or_enroll, once: run {run_id}")
    try:
        print(f"  -> completed: {await app.result(run_id, timeout=30)}")
    except legato.errors.RunFailed as failed:
        print(f"  -> {failed.status}: {failed.error_type}: {failed.error_message}")
    print("the reactions to what it published:")
    for stored in await app.list_events(run_id=run_id):
        await print_reactions(app, stored)
    return run_id


async def demo(database: str, enrollment_down: bool, deadline: timedelta) -> None:
    """Take one payment and print what the services, and the expectation, make of it."""
    services = Campus()
    services.enrollment.down = enrollment_down
    # Workers look for alerts every 10 s; the demo looks every second.
    courses = define(
        legato.App("courses_choreographed", database, alert_interval=timedelta(seconds=1)),
        services,
        within=deadline,
    )
    # A fresh reference per execution: the log keeps one event per source and id.
    ref = f"purchase-{PURCHASE['id']}-{uuid.uuid4().hex[:6]}"
    learner, course = PURCHASE["learner"], PURCHASE["course"]
    down = " (the enrollment service is down)" if enrollment_down else ""
    print(f"{learner} buys {course}{down}")
    run_id = None
    async with courses:
        paid = await pay(courses, services, PURCHASE, ref)
        print(f"  payments: charged {paid.data['payment_id']}, published purchase.completed")
        print(f"  flow: {paid.correlationid}")
        print("the reactions, each service on its own:")
        first = await courses.get_event(paid.id, paid.source)
        await print_reactions(courses, first)
        for stored in (await courses.list_events(correlation_id=ref))[1:]:
            await print_reactions(courses, stored)
        for dead in await courses.list_dead_letters(subscription="enrollment.grant"):
            if dead.seq == first.seq:
                error = dead.error or {}
                print(
                    f"dead letter: enrollment.grant gave up on purchase.completed after "
                    f"{dead.attempts} attempts: {error.get('message')}"
                )
        enrolled = services.enrollment.enrollments.is_enrolled(learner, course)
        emails = len(services.mailer.sent_to(learner))
        print(f"{learner} has paid, has {emails} email(s), {'can' if enrolled else 'CANNOT'} learn")

        async def instance() -> legato.ExpectationInstance:
            [found] = await courses.list_expectations(name=EXPECTATION, key=ref)
            return found

        async def closed() -> bool:
            return (await instance()).status is not legato.ExpectationStatus.OPEN

        inst = await instance()
        if inst.status is legato.ExpectationStatus.OPEN:
            left = (inst.deadline - datetime.now(UTC)).total_seconds()
            print(
                f"expectation {EXPECTATION}: open; no service knows, "
                f"Legato waits {left:.1f}s more for enrollment.created"
            )
        await wait_for("the expectation to close", closed, timeout=deadline.total_seconds() + 30)
        inst = await instance()
        print(f"expectation {EXPECTATION}: {inst.status.value}")
        if inst.status is legato.ExpectationStatus.VIOLATED:
            run_id = await print_violation(courses, inst)
            [charge] = services.payments.charges_for(PURCHASE["id"])
            enrolled = services.enrollment.enrollments.is_enrolled(learner, course)
            print(
                f"{learner}: payment {charge.payment_id} "
                f"{'refunded' if charge.refunded else 'kept'}, "
                f"{'enrolled' if enrolled else 'not enrolled'}; emails: "
                + "; ".join(e.subject for e in services.mailer.sent_to(learner))
            )

            async def alerted() -> bool:
                return any(
                    a.details.get("key") == ref
                    for a in await courses.list_alerts(kind="expectation_violated")
                )

            await wait_for("the violation's alert", alerted, timeout=30)
            for alert in await courses.list_alerts(status="raised"):
                if alert.details.get("key") == ref or alert.kind.value == "dead_letter":
                    print(f"alert raised ({alert.kind.value}): {alert.summary}")
    print_commands(database, ref, run_id)


def print_commands(database: str, ref: str, run_id: str | None) -> None:
    """The ``legato`` commands that show what the demo did."""
    option = f" --database {database}"
    print("see it with:")
    print(f"  legato flows show {ref}{option}")
    if run_id is not None:
        print(f"  legato runs show {run_id}{option}")
        print(f"  legato deadletters list{option}")
        print(f"  legato alerts list{option}")
    print(f"  legato expectations show {EXPECTATION}{option}")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the demo."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.course_purchase.choreographed",
        description="The course purchase as pure choreography, watched by an expectation.",
    )
    parser.add_argument(
        "--enrollment-down",
        action="store_true",
        default=ENROLLMENT_DOWN,
        help="the enrollment service fails every call: its delivery dead-letters",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEMO_DEADLINE.total_seconds(),
        metavar="SECONDS",
        help=f"the expectation's deadline (default: {DEMO_DEADLINE.total_seconds():g})",
    )
    args = parser.parse_args(argv)
    if args.deadline <= 0:
        parser.error("--deadline takes a positive number of seconds")
    # Legato's warnings (a dead letter, a violated expectation) are its alerts: show them
    # in line with the rest, as a log collector would get them.
    logging.basicConfig(format="  [log] %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    database = os.environ.get("LEGATO_DATABASE_URL", DATABASE)
    asyncio.run(demo(database, args.enrollment_down, timedelta(seconds=args.deadline)))


if __name__ == "__main__":
    main()
