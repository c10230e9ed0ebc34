"""Fake payment and enrollment services that remember what they did.

Real services live elsewhere; these stand in for them so the example runs anywhere and
can *show* its effects: who was charged, with which idempotency key, what was refunded,
who was enrolled. Both keep their state in memory, so what they saw belongs to the
process that executed the steps (the worker, or ``legato demo`` / ``main.py``).
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
