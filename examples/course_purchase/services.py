"""Fake services that remember what they did: payments, enrollments, and the observers.

Real services live elsewhere; these stand in for them so the example runs anywhere and
can *show* its effects: who was charged, with which idempotency key, what was refunded,
who was enrolled, who got a receipt, what was counted, whose recommendations were
refreshed. All keep their state in memory, so what they saw belongs to the process that
executed the steps and handlers (the worker, or ``legato demo`` / ``main.py``).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


class GatewayTimeout(Exception):
    """The payment gateway took the request but its answer was lost (retry with the key)."""


class CourseFull(Exception):
    """The course has no seat left: retrying will not help."""


@dataclass
class Payment:
    """One authorization as the payment service recorded it."""

    payment_id: str
    purchase_id: str
    amount_cents: int
    idempotency_key: str
    refunded: bool = False


@dataclass
class Payments:
    """A payment gateway that charges once per idempotency key.

    ``lose_next_responses(n)`` makes the next ``n`` authorizations charge the card but
    lose the answer (``GatewayTimeout``), as a flaky network does: the step retries with
    the same ``legato.step_key()``, and the gateway returns the payment it already made.
    """

    payments: dict[str, Payment] = field(default_factory=dict)  # by idempotency key
    authorize_calls: int = 0
    _lost_responses: int = 0

    def lose_next_responses(self, count: int) -> None:
        """Let the next ``count`` authorizations succeed but answer with a timeout."""
        self._lost_responses = count

    async def authorize(self, purchase_id: str, amount_cents: int, *, idempotency_key: str) -> str:
        """Charge ``amount_cents`` once per ``idempotency_key``; return the payment id."""
        await asyncio.sleep(0)  # a real gateway is a network call
        self.authorize_calls += 1
        payment = self.payments.get(idempotency_key)
        if payment is None:
            payment = Payment(
                f"pay-{len(self.payments) + 1:04d}", purchase_id, amount_cents, idempotency_key
            )
            self.payments[idempotency_key] = payment
        if self._lost_responses > 0:
            self._lost_responses -= 1
            raise GatewayTimeout(f"no answer from the gateway for purchase {purchase_id}")
        return payment.payment_id

    async def refund(self, payment_id: str) -> None:
        """Refund a payment; refunding it again changes nothing."""
        await asyncio.sleep(0)
        for payment in self.payments.values():
            if payment.payment_id == payment_id:
                payment.refunded = True
                return
        raise LookupError(f"no payment {payment_id}")

    def charges_for(self, purchase_id: str) -> list[Payment]:
        """Every payment taken for a purchase (one, however often it was authorized)."""
        return [p for p in self.payments.values() if p.purchase_id == purchase_id]


class Enrollments:
    """Course enrollments with a seat count per course; a course with no seat is full.

    ``create`` is plain blocking code: Legato runs sync steps in a worker thread, hence
    the lock.
    """

    def __init__(self, seats: dict[str, int]) -> None:
        self.seats = dict(seats)
        self.enrolled: list[tuple[str, str]] = []  # (learner, course)
        self._lock = threading.Lock()

    def create(self, learner: str, course: str) -> None:
        """Enroll ``learner`` in ``course``; raise ``CourseFull`` when no seat is left."""
        with self._lock:
            if (learner, course) in self.enrolled:
                return  # already enrolled: a retried step must not take a second seat
            if self.seats.get(course, 0) <= 0:
                raise CourseFull(f"course {course} is full")
            self.seats[course] -= 1
            self.enrolled.append((learner, course))

    def is_enrolled(self, learner: str, course: str) -> bool:
        """True when ``learner`` holds a seat in ``course``."""
        with self._lock:
            return (learner, course) in self.enrolled


# -- The observers: they react to ``purchase.completed`` and never block the purchase ------
#
# Delivery is at least once: a handler may run again for an event it already handled (its
# answer was lost, the worker crashed before the delivery was settled). Each fake shows one
# way to live with that: the mailer sends once per idempotency key, analytics counts each
# event once, and a recommendations refresh is harmless to repeat.


class RecommendationsUnavailable(Exception):
    """The recommendations service did not answer (the subscription retries)."""


@dataclass
class Email:
    """One email as the mailer sent it."""

    to: str
    subject: str
    idempotency_key: str


@dataclass
class Mailer:
    """A mail service that sends at most one email per idempotency key."""

    sent: list[Email] = field(default_factory=list)
    send_calls: int = 0

    async def send(self, to: str, subject: str, *, idempotency_key: str) -> None:
        """Send ``subject`` to ``to``, unless an email with this key went already."""
        await asyncio.sleep(0)  # a real mailer is a network call
        self.send_calls += 1
        if any(email.idempotency_key == idempotency_key for email in self.sent):
            return
        self.sent.append(Email(to, subject, idempotency_key))

    def sent_to(self, learner: str) -> list[Email]:
        """The emails ``learner`` received."""
        return [email for email in self.sent if email.to == learner]


class Analytics:
    """Counts conversions per course, each event once (by its id).

    ``record_conversion`` is plain blocking code, as an analytics SDK often is: Legato runs
    a ``def`` handler in a worker thread, hence the lock.
    """

    def __init__(self) -> None:
        self.conversions: dict[str, int] = {}  # by course
        self.revenue_cents = 0
        self._counted: set[str] = set()  # event ids already counted
        self._lock = threading.Lock()

    def record_conversion(self, event_id: str, course: str, amount_cents: int) -> None:
        """Count one sale of ``course``; the same event counted again changes nothing."""
        with self._lock:
            if event_id in self._counted:
                return
            self._counted.add(event_id)
            self.conversions[course] = self.conversions.get(course, 0) + 1
            self.revenue_cents += amount_cents

    def has_counted(self, event_id: str) -> bool:
        """True when the conversion announced by ``event_id`` was counted."""
        with self._lock:
            return event_id in self._counted


@dataclass
class Recommendations:
    """Recomputes a learner's course recommendations; doing it twice is harmless.

    ``fail_next_calls(n)`` makes the next ``n`` refreshes raise
    ``RecommendationsUnavailable``, as a service that is briefly down does: the
    subscription retries, long after the purchase completed.
    """

    refreshed: list[str] = field(default_factory=list)  # learners, one entry per refresh
    failures: list[str] = field(default_factory=list)  # why each failed call failed
    refresh_calls: int = 0
    _failures: int = 0

    def fail_next_calls(self, count: int) -> None:
        """Let the next ``count`` refreshes fail."""
        self._failures = count

    async def refresh(self, learner: str, bought: str) -> None:
        """Recompute ``learner``'s recommendations now that they bought ``bought``."""
        await asyncio.sleep(0)
        self.refresh_calls += 1
        if self._failures > 0:
            self._failures -= 1
            self.failures.append(f"unavailable while refreshing {learner} after {bought}")
            raise RecommendationsUnavailable(self.failures[-1])
        self.refreshed.append(learner)


# -- The enrollment service as choreographed.py sees it: another team's, over the network --


class EnrollmentServiceDown(Exception):
    """The enrollment service did not answer: it is down, and retrying soon will not help."""


class EnrollmentService:
    """The enrollment service reached over the network: it grants access (a seat in
    ``enrollments``) and can be down.

    While ``down`` is true every call raises ``EnrollmentServiceDown``: an outage, not a
    blip, so a subscriber's retries run out and its delivery goes to the dead letters.
    """

    def __init__(self, enrollments: Enrollments) -> None:
        self.enrollments = enrollments
        self.down = False
        self.calls = 0
        self.failures: list[str] = []  # why each failed call failed

    async def grant(self, learner: str, course: str) -> None:
        """Enroll ``learner`` in ``course``; granting it again changes nothing."""
        await asyncio.sleep(0)  # a real service is a network call
        self.calls += 1
        if self.down:
            self.failures.append(f"no answer while enrolling {learner} in {course}")
            raise EnrollmentServiceDown(self.failures[-1])
        self.enrollments.create(learner, course)
