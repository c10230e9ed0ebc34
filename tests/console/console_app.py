"""What the console's browser tests need beyond the other apps: a subscriber whose handler
fails until its fix is deployed (a file, named by the event, exists), so that a dead
letter can be redriven once fixed and be delivered.

Served by ``legato worker tests.console.console_app:app`` from the repository root.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import legato

app = legato.App("console-tests", poll_interval=timedelta(milliseconds=50))


class Unfixed(RuntimeError):
    """What ``console-fragile`` raises until the event's ``fixed`` file exists."""


@app.on("console.fragile", name="console-fragile", retry=legato.Retry(max_attempts=1))
async def fragile(event: legato.Event) -> None:
    """Fail, on the first and only attempt, until the fix (the file) is deployed."""
    fixed = Path(event.data["fixed"])
    if not fixed.exists():  # noqa: ASYNC240  # a stat stands in for a deploy
        raise Unfixed(f"no fix deployed for {event.subject}")


@app.workflow
async def console_idle(note: str) -> str:
    """Never started: a worker is taken as ready once it serves a workflow
    (``Server.start_worker`` waits for that), and this app's point is its subscriber."""
    return note
