"""examples/course_purchase/choreographed.py: the purchase with no orchestrator, watched by
an expectation.

In-process tests build the app with ``define(app, campus)`` on fresh fake services, a
real SQLite file and a ``FakeClock``: the five-minute deadline passes without sleeping.
The last test runs the demo as a user does (one process, a deadline of a second or so)
and reads its database back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from examples.course_purchase import choreographed
from examples.course_purchase.choreographed import DEADLINE, EXPECTATION, PURCHASE, Campus

import legato
from legato.bus.expectations import RECOVERED, VIOLATED
from legato.testing import FakeClock
from tests.acceptance.cli_driver import REPO_ROOT, sqlite_url
from tests.fixtures.db import fresh_database

pytestmark = pytest.mark.timeout(10)

REF = "purchase-p-2001-test"
"""The purchase event's id, hence the flow's correlation id."""
SUBSCRIBERS = {"enrollment.grant", "email.send", "analytics.conversion"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def campus() -> Campus:
    """Fresh fake payment, enrollment, mail and analytics services."""
    return Campus()


@pytest.fixture
async def courses(tmp_path: Path, clock: FakeClock, campus: Campus) -> AsyncIterator[legato.App]:
    """The choreography on a SQLite file (a PostgreSQL schema in the PostgreSQL pass), its
    engine running in the test's loop."""
    app = legato.App("courses", fresh_database(tmp_path), clock=clock)
    async with choreographed.define(app, campus) as app:
        yield app


async def types_of(app: legato.App) -> list[str]:
    """The types of the flow's events, in log order."""
    return [s.event.type for s in await app.list_events(correlation_id=REF)]


async def the_instance(app: legato.App) -> legato.ExpectationInstance:
    [instance] = await app.list_expectations(name=EXPECTATION)
    return instance


async def test_paid_learner_is_enrolled_every_service_reacts_and_nothing_is_violated(
    courses: legato.App, clock: FakeClock, campus: Campus
) -> None:
    paid = await choreographed.pay(courses, campus, PURCHASE, REF)
    await clock.settle()

    assert paid.correlationid == REF
    assert await types_of(courses) == ["purchase.completed", "enrollment.created"]
    deliveries = await courses.deliveries(paid.id, paid.source)
    assert {d.subscription: d.status.value for d in deliveries} == {
        **dict.fromkeys(SUBSCRIBERS, "done"),
        f"expectation:{EXPECTATION}": "done",
    }
    assert campus.enrollment.enrollments.is_enrolled("ada", "python-101")
    assert [e.subject for e in campus.mailer.sent_to("ada")] == [
        "Your receipt for python-101",
        "python-101 is open: start learning",
    ]
    assert campus.analytics.conversions == {"python-101": 1}
    assert (await the_instance(courses)).status is legato.ExpectationStatus.FULFILLED

    await clock.advance(DEADLINE * 2)

    assert (await the_instance(courses)).status is legato.ExpectationStatus.FULFILLED
    assert await courses.list_events(type=VIOLATED) == []
    assert await courses.list_runs() == []  # nothing owns the purchase: there is no run


async def test_enrollment_down_dead_letters_then_the_deadline_refunds_the_learner_once(
    courses: legato.App, clock: FakeClock, campus: Campus
) -> None:
    # Given the enrollment service is down for good
    campus.enrollment.down = True
    paid_at = clock.now()
    await choreographed.pay(courses, campus, PURCHASE, REF)
    await clock.advance(timedelta(seconds=5))  # every attempt of the enrollment's delivery

    # Then its delivery is a dead letter, and only the expectation still waits
    [dead] = await courses.list_dead_letters()
    assert (dead.subscription, dead.attempts) == ("enrollment.grant", 3)
    assert dead.error is not None and dead.error["type"].endswith("EnrollmentServiceDown")
    assert not campus.enrollment.enrollments.is_enrolled("ada", "python-101")
    assert [e.subject for e in campus.mailer.sent_to("ada")] == ["Your receipt for python-101"]
    instance = await the_instance(courses)
    assert instance.status is legato.ExpectationStatus.OPEN
    assert instance.deadline == paid_at + DEADLINE

    # When the clock reaches one second before the deadline: nothing yet
    await clock.advance(instance.deadline - clock.now() - timedelta(seconds=1))
    assert (await the_instance(courses)).status is legato.ExpectationStatus.OPEN
    assert await courses.list_events(type=VIOLATED) == []
    assert await courses.list_runs() == []

    # When it reaches the deadline: one violation, one refund_or_enroll run
    await clock.advance(timedelta(seconds=1))
    [violation] = await courses.list_events(type=VIOLATED)
    assert violation.event.correlationid == REF
    assert violation.event.data["missing"] == ["type enrollment.created"]
    [run] = await courses.list_runs(workflow="refund_or_enroll")
    assert run.run_id == violation.event.data["run_id"]

    # Then the run tries the enrollment again (down still), and refunds
    await clock.advance(timedelta(seconds=5))  # the retries of enroll_again
    assert await courses.result(run.run_id, timeout=1) == {
        "outcome": "refunded",
        "payment_id": "pay-0001",
    }
    assert [c.refunded for c in campus.payments.charges_for("p-2001")] == [True]
    assert [e.subject for e in campus.mailer.sent_to("ada")] == [
        "Your receipt for python-101",
        "Refunded: we could not open python-101 for you",
    ]
    assert await types_of(courses) == ["purchase.completed", VIOLATED, "purchase.refunded"]
    # The refund came after the violation: the instance stays violated, nothing is cancelled.
    assert (await the_instance(courses)).status is legato.ExpectationStatus.VIOLATED

    # And much later, still exactly one of each
    await clock.advance(DEADLINE * 2)
    assert (await the_instance(courses)).status is legato.ExpectationStatus.VIOLATED
    assert len(await courses.list_events(type=VIOLATED)) == 1
    assert len(await courses.list_events(type="purchase.refunded")) == 1
    assert len(await courses.list_runs(workflow="refund_or_enroll")) == 1
    assert [c.refunded for c in campus.payments.charges_for("p-2001")] == [True]


async def test_enrollment_back_by_the_deadline_is_enrolled_late_and_not_refunded(
    courses: legato.App, clock: FakeClock, campus: Campus
) -> None:
    campus.enrollment.down = True
    await choreographed.pay(courses, campus, PURCHASE, REF)
    await clock.advance(timedelta(seconds=5))
    campus.enrollment.down = False  # back, but nobody redrives the dead letter

    await clock.advance(DEADLINE)

    [run] = await courses.list_runs(workflow="refund_or_enroll")
    assert await courses.result(run.run_id, timeout=1) == {"outcome": "enrolled"}
    assert campus.enrollment.enrollments.is_enrolled("ada", "python-101")
    assert [c.refunded for c in campus.payments.charges_for("p-2001")] == [False]
    assert await types_of(courses) == [
        "purchase.completed",
        VIOLATED,
        "enrollment.created",
        RECOVERED,
    ]
    assert (await the_instance(courses)).status is legato.ExpectationStatus.LATE_FULFILLED


@pytest.mark.slow
@pytest.mark.sqlite_only  # the commands it prints name its SQLite file (on PostgreSQL:
# tests/acceptance/test_postgres_examples.py)
def test_demo_with_enrollment_down_prints_the_dead_letter_violation_and_refund(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEGATO_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    module = "examples.course_purchase.choreographed"

    done = subprocess.run(
        [sys.executable, "-m", module, "--enrollment-down", "--deadline", "1.5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=8,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    shown = [
        "ada buys python-101 (the enrollment service is down)",
        "-> enrollment.grant: dead after 3 attempts (EnrollmentServiceDown)",
        "dead letter: enrollment.grant gave up on purchase.completed after 3 attempts",
        "expectation paid-learner-is-enrolled: violated",
        "published legato.expectation.violated: missing type enrollment.created",
        "-> completed: {'outcome': 'refunded', 'payment_id': 'pay-0001'}",
        "ada: payment pay-0001 refunded, not enrolled",
        "legato deadletters list --database sqlite:///course_purchase_choreographed.db",
    ]
    positions = [out.find(line) for line in shown]
    assert -1 not in positions, out
    assert positions == sorted(positions), out
    [flow_command] = [line for line in out.splitlines() if "legato flows show" in line]
    ref = flow_command.split()[3]

    # What the printed commands would read: the same database, from another process.
    client = legato.Client(sqlite_url(tmp_path / "course_purchase_choreographed.db"))
    try:
        [instance] = client.list_expectations(correlation_id=ref)
        assert instance.status is legato.ExpectationStatus.VIOLATED
        [run] = client.list_runs(workflow="refund_or_enroll")
        assert run.status is legato.RunStatus.COMPLETED
        assert f"legato runs show {run.run_id} --database" in out
        assert [d.subscription for d in client.list_dead_letters()] == ["enrollment.grant"]
    finally:
        client.close()
