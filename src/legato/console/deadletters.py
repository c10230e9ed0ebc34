"""The console's dead letters: deliveries that ran out of attempts, with their last error,
and (for an ``operate`` token) redriving them once the handler is fixed.

A dead letter's row shows the last error's type and message, never its traceback: that
names the server's files and lines, which a reader of the console need not see (``legato
events show`` and the API have it). Redriving one event, or every dead letter of a
subscription, makes them pending again from the first attempt (``AsyncClient.redrive``),
recorded as done by the signed-in token. Redriving a whole subscription is a bulk action:
it shows how many first (``preview_redrive``) and redrives exactly those once confirmed,
or shows the new count if letters died or were redriven meanwhile.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from legato.console.render import READ_ONLY, page, refused, to_console
from legato.console.session import caller, form_of, may_operate
from legato.errors import BulkChanged, LegatoError
from legato.model.deliveries import Delivery, StoredEvent
from legato.server.security import client_of

router = APIRouter(prefix="/console", include_in_schema=False)

LIMIT = 200
"""How many dead letters the page lists, oldest event first."""


def row(dead: Delivery, stored: StoredEvent | None) -> dict[str, Any]:
    """What the page shows of a dead letter: its subscription, event (None fields once the
    event is pruned), attempts, when it died, its last error without the traceback, and
    its last redrive (it died again after it)."""
    error = dead.error or {}
    event = None if stored is None else stored.event
    return {
        "subscription": dead.subscription,
        "seq": dead.seq,
        "event_id": None if event is None else event.id,
        "type": None if event is None else event.type,
        "source": None if event is None else event.source,
        "correlation_id": None if event is None else event.correlationid,
        "attempts": dead.attempts,
        "died_at": dead.updated_at,
        "error_type": str(error.get("type") or "").rpartition(".")[2],
        "error_message": str(error.get("message") or ""),
        "redriven_at": dead.redriven_at,
        "redriven_by": dead.redriven_by,
    }


@router.get("/dead-letters")
async def dead_letters(request: Request) -> Response:
    who = await caller(request)
    client = await client_of(request)
    subscription = request.query_params.get("subscription") or None
    subscriptions = sorted(s.name for s in await client.list_subscriptions())
    error = None
    try:
        dead = await client.list_dead_letters(subscription=subscription, limit=LIMIT)
    except LegatoError as exc:  # a subscription this database does not know
        dead, error = [], str(exc)
    events = await client.events_at(d.seq for d in dead)
    return page(
        request,
        "dead_letters.html",
        who,
        rows=[row(d, events.get(d.seq)) for d in dead],
        subscription=subscription,
        subscriptions=subscriptions,
        error=error,
        message=request.query_params.get("done"),
        limit=LIMIT,
    )


@router.post("/dead-letters/redrive")
async def redrive(request: Request) -> Response:
    """Redrive one event's dead letter of a subscription (``event_id``, ``source``), or,
    without an event id, every dead letter of the subscription once ``confirmed``."""
    who = await caller(request)
    form = await form_of(request)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    client = await client_of(request)
    subscription = form.get("subscription") or None
    event_id = form.get("event_id") or None
    if subscription is None:
        return refused(request, who, "say which subscription's dead letters to redrive")
    confirm = form.get("confirm") or None
    try:
        if event_id is None and confirm is None:
            preview = await client.preview_redrive(subscription)
            return page(request, "redrive_all.html", who, preview=preview, changed=False)
        count = await client.redrive(
            event_id,
            subscription=subscription,
            source=form.get("source") or None,
            by=who.name,
            confirm=confirm if event_id is None else None,
        )
    except BulkChanged as exc:
        return page(request, "redrive_all.html", who, preview=exc.preview, changed=True)
    except LegatoError as exc:
        return refused(request, who, str(exc))
    back = {"subscription": form.get("back", subscription), "done": _redriven(count)}
    return to_console(f"/dead-letters?{urlencode({k: v for k, v in back.items() if v})}")


def _redriven(count: int) -> str:
    if count == 0:
        return "nothing redriven: it is no longer a dead letter"
    return f"redriven: {count} dead letter{'' if count == 1 else 's'} pending again"
