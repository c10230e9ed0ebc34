"""An app with an expectation whose deadline passes in a second of real time, for the
crash tests of tests/integration/test_expectation_crash.py."""

from __future__ import annotations

from datetime import timedelta

import legato

app = legato.App("school", poll_interval=timedelta(milliseconds=50))


@app.workflow(name="refund_or_enroll")
async def refund_or_enroll(violation: legato.Event) -> str:
    return f"refunded {violation.data['key']}"


app.expect(
    "paid-learner-is-enrolled",
    after="purchase.completed",
    then="enrollment.created",
    within=timedelta(seconds=1),
    start="refund_or_enroll",
)
