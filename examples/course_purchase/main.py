"""Run the course purchase twice in this process: once it completes, once it is refunded.

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
    app,
    enrollments,
    payments,
    purchase_course,
)

import legato


async def main() -> None:
    """Run the happy path and the enrollment-failure path, then print what happened."""
    app.use_database(os.environ.get("LEGATO_DATABASE_URL", "sqlite:///course_purchase.db"))
    # A fresh suffix per execution: starting an existing run id returns the old run.
    suffix = uuid.uuid4().hex[:6]
    # The gateway charges but loses its first answer: the retry reuses the step key.
    payments.lose_next_responses(1)
    async with app:
        for purchase in (HAPPY_PURCHASE, COURSE_FULL_PURCHASE):
            run = await app.start(
                purchase_course, purchase, run_id=f"purchase-{purchase['id']}-{suffix}"
            )
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
            charges = payments.charges_for(purchase["id"])
            print(
                f"  payments taken:  {[(c.payment_id, c.refunded) for c in charges]}"
                f" (payment id, refunded)"
            )
            print(
                f"  enrolled:        "
                f"{enrollments.is_enrolled(purchase['learner'], purchase['course'])}"
            )
    print(f"gateway calls: {payments.authorize_calls}, payments taken: {len(payments.payments)}")


if __name__ == "__main__":
    asyncio.run(main())
