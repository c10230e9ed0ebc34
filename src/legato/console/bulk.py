"""The bulk form of the run actions in the console: every run the run list's filter
selects (all failed runs of workflow W since T), previewed, then confirmed.

The run list offers it to an ``operate`` token with the list's filters. Its preview page
says how many runs the action takes and shows a few of their ids; its Confirm button
carries the preview's ``confirm`` token and the same filters, with a relative ``since``
(``-1h``) already made a time, so that what is confirmed is what was previewed. If the
runs changed in between, nothing is done and the new preview is shown to confirm again
(``AsyncClient.apply_bulk``). Posting the result page again is safe for the same reason:
the runs it acted on are no longer the previewed ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from legato.console.render import ACTIONS, READ_ONLY, page, refused
from legato.console.session import caller, form_of, may_operate
from legato.errors import BulkChanged, LegatoError
from legato.model import RunStatus
from legato.operations import BULK_ACTIONS, BulkPreview
from legato.server.security import Caller, client_of

router = APIRouter(prefix="/console", include_in_schema=False)

FILTERS = ("status", "workflow", "since", "correlation_id", "prefix")
"""The run list's filters a bulk action takes, by their names in the console's query
strings and forms (``prefix`` is the client's ``run_id_prefix``)."""

LISTED = 100
"""How many run ids a result page lists of each kind (acted on, skipped, restarted)."""

_RELATIVE = re.compile(r"-(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def since_of(text: str | None) -> datetime | None:
    """A ``since`` filter as an aware time: ``-30m``, ``-1h`` or ``-7d`` before now, or an
    ISO 8601 time (UTC when it has no offset); None for none. ``ValueError`` otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        ago = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        return datetime.now(UTC) - ago
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r}; give -30m, -1h, -7d or an ISO time (2030-01-31T09:00)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def search_of(values: Mapping[str, str]) -> dict[str, Any]:
    """The client's filter keywords (``preview_bulk``, ``search_runs``) from the console's
    filter values; ``ValueError`` for a status or a time that is not one."""
    status = values.get("status") or None
    if status is not None:
        RunStatus(status)
    return {
        "status": status,
        "workflow": values.get("workflow") or None,
        "since": since_of(values.get("since")),
        "correlation_id": values.get("correlation_id") or None,
        "run_id_prefix": values.get("prefix") or None,
    }


def actions_for(status: str | None) -> dict[str, str]:
    """The bulk actions (and their words) that apply to runs in ``status`` (all of them
    for no status: each takes the runs it applies to)."""
    if status is None:
        return dict(ACTIONS)
    return {a: text for a, text in ACTIONS.items() if RunStatus(status) in BULK_ACTIONS[a]}


@router.post("/bulk")
async def preview(request: Request) -> Response:
    """How many runs the posted action and filters take: the page to confirm it."""
    who = await caller(request)
    form = await form_of(request)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    action = form.get("action", "")
    try:
        search = search_of(form)
        previewed = await (await client_of(request)).preview_bulk(action, **search)
    except (LegatoError, ValueError) as exc:
        return refused(request, who, str(exc))
    return _preview_page(request, who, previewed, search, changed=False)


@router.post("/bulk/apply")
async def apply(request: Request) -> Response:
    """Apply a previewed bulk action, as the signed-in token; the new preview if the runs
    changed since."""
    who = await caller(request)
    form = await form_of(request)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    action, confirm = form.get("action", ""), form.get("confirm", "")
    try:
        search = search_of(form)
        result = await (await client_of(request)).apply_bulk(action, confirm, **search, by=who.name)
    except BulkChanged as exc:
        return _preview_page(request, who, exc.preview, search, changed=True)
    except (LegatoError, ValueError) as exc:
        return refused(request, who, str(exc))
    return page(
        request,
        "bulk_result.html",
        who,
        result=result,
        words=ACTIONS.get(action, action),
        listed=LISTED,
    )


def _preview_page(
    request: Request,
    who: Caller,
    previewed: BulkPreview,
    search: dict[str, Any],
    *,
    changed: bool,
) -> Response:
    since = search["since"]
    filters = {
        "status": search["status"] or "",
        "workflow": search["workflow"] or "",
        # The time itself, not "-1h": confirming later must select the runs previewed.
        "since": "" if since is None else since.isoformat(),
        "correlation_id": search["correlation_id"] or "",
        "prefix": search["run_id_prefix"] or "",
    }
    return page(
        request,
        "bulk.html",
        who,
        preview=previewed,
        words=ACTIONS.get(previewed.action, previewed.action),
        filters=filters,
        changed=changed,
    )
