"""Run the course purchase twice in this process: once it completes, once it is refunded.

Then show how the observers reacted to the one ``purchase.completed`` event: the receipt,
the conversion, and the recommendations refresh that failed once and was retried after
the purchase had completed.

    python examples/course_purchase/main.py        # from the repository root

Runs go to ./course_purchase.db (or $LEGATO_DATABASE_URL); inspect them afterwards with
``legato runs list --database sqlite:///course_purchase.db``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

if not __package__:
    # Run as a file: make `examples.course_purchase` importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.course_purchase.app import (
    COURSE_FULL_PURCHASE,
    HAPPY_PURCHASE,
    analytics,
    app,
    enrollments,
    mailer,
    payments,
    purchase_course,
    recommendations,
)

import legato
from legato import Delivery, StoredEvent


async def reactions(run_id: str, timeout: float = 10.0) -> list[tuple[StoredEvent, list[Delivery]]]:
    """The events ``run_id`` published, each with its deliveries once none is pending.

    Deliveries go on after the run ended (a retry is due later): wait for them to settle.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [
            (stored, await app.deliveries(stored.event.id, stored.event.source))
            for stored in await app.list_events(run_id=run_id)
        ]
        settled = all(d.status != "pending" for _, deliveries in found for d in deliveries)
        if settled or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


def attempts(count: int) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{count} attempt{'' if count == 1 else 's'}"


async def main() -> None:
    """Run the happy path and the enrollment-failure path, then print what happened."""
    app.use_database(os.environ.get("LEGATO_DATABASE_URL", "sqlite:///course_purchase.db"))
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = uuid.uuid4().hex[:6]
    # The gateway charges but loses its first answer: the retry reuses the step key.
    payments.lose_next_responses(1)
    # The recommendations service is down for one call: its handler retries, on its own.
    recommendations.fail_next_calls(1)
    run_ids = []
    async with app:
        for purchase in (HAPPY_PURCHASE, COURSE_FULL_PURCHASE):
            run = await app.start(
                purchase_course, purchase, run_id=f"purchase-{purchase['id']}-{suffix}"
            )
            run_ids.append(run.run_id)
            try:
                print(f"{run.run_id}: completed -> {await run.result(timeout=30)}")
            except legato.errors.RunFailed as failed:
                print(
                    f"{run.run_id}: {failed.status} ({failed.error_type}: {failed.error_message})"
                )
            description = await run.describe()
            print(f"  completed steps: {description.completed_steps}")
            print(f"  compensated:     {description.compensations_done}")
            print(f"  next:            {description.next}")
            published = ", ".join(p.type for p in description.published) or "nothing"
            print(f"  published:       {published}")
            charges = payments.charges_for(purchase["id"])
            print(
                f"  payments taken:  {[(c.payment_id, c.refunded) for c in charges]}"
                f" (payment id, refunded)"
            )
            print(
                f"  enrolled:        "
                f"{enrollments.is_enrolled(purchase['learner'], purchase['course'])}"
            )
        # The observers, choreographed: what each did with each event a run published.
        for run_id in run_ids:
            found = await reactions(run_id)
            if not found:
                print(f"{run_id} published nothing: no receipt, no conversion, no refresh")
            for stored, deliveries in found:
                print(f"{run_id} published {stored.event.type} (subject {stored.event.subject}):")
                for d in deliveries:
                    after = (d.updated_at - stored.recorded_at).total_seconds()
                    print(
                        f"  -> {d.subscription}: {d.status.value} after {attempts(d.attempts)}, "
                        f"{after:.2f}s after it was published"
                    )
    print(
        f"receipts sent: {len(mailer.sent)} (to {', '.join(e.to for e in mailer.sent)}), "
        f"conversions: {analytics.conversions}, "
        f"recommendations refreshed for: {recommendations.refreshed} "
        f"({recommendations.refresh_calls} calls; failed: {recommendations.failures})"
    )
    print(f"gateway calls: {payments.authorize_calls}, payments taken: {len(payments.payments)}")


if __name__ == "__main__":
    asyncio.run(main())
