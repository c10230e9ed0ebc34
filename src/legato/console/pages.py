"""The web console's pages, served by ``legato server`` under ``/console``: runs (with
saved views, live status, the run page with its graph, timeline and actions), the human
tasks inbox with each task's form, the event log and a correlation id's flow diagram,
alerts, expectations and workers. The bulk actions over the run list's filter are in
``console.bulk``, the dead letters page in ``console.deadletters``.

Server-rendered (Jinja2, every value autoescaped), refreshed in place by htmx, diagrams by
Mermaid: both are files of this package (``/console/static``), so the console needs no
network. Pages read through the same ``AsyncClient`` as the API; actions go through the
same methods, recorded as done by the signed-in token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from legato.console import bulk, deadletters, forms
from legato.console.bulk import since_of
from legato.console.graphs import run_graph
from legato.console.render import ACTIONS, READ_ONLY, page, refused, to_console
from legato.console.session import (
    BadCsrf,
    SignInNeeded,
    caller,
    form_of,
    may_operate,
    sign_in,
    sign_out,
)
from legato.errors import LegatoError
from legato.flowchart import to_mermaid
from legato.model import RunStatus
from legato.operations import BULK_ACTIONS
from legato.server.security import client_of
from legato.views import history_json

STATIC = StaticFiles(directory=Path(__file__).parent / "static")

router = APIRouter(prefix="/console", include_in_schema=False)

SAVED_VIEWS = {
    "failed in the last hour": {"status": "failed", "since": "-1h"},
    "stuck": {"view": "stuck"},
    "waiting on a person": {"view": "person"},
    "compensation failed": {"status": "compensation_failed"},
    "blocked": {"status": "blocked"},
    "running": {"status": "running"},
}
"""The run list's saved views: a name and its filter (``since`` relative to now); two are
not filters of the run table: ``stuck`` (the runs a ``stuck_run`` alert is raised for)
and ``person`` (the runs with an open human task)."""

VIEW_LIMIT = 50

# -- signing in ---------------------------------------------------------------------------


@router.get("")
async def home() -> RedirectResponse:
    return to_console("/runs")


@router.get("/login")
async def login_form(request: Request) -> Response:
    return page(request, "login.html", None, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        form = await form_of(request)
    except BadCsrf:
        return page(request, "login.html", None, error="the form expired: sign in again")
    secret = form.get("token", "").strip()
    token = await request.app.state.client.authenticate(secret)
    if token is None:
        return page(request, "login.html", None, error="not a token this server knows")
    response = to_console("/runs")
    sign_in(request, response, secret)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        await form_of(request)
    except BadCsrf:
        return to_console("/runs")
    response = to_console("/login")
    sign_out(response)
    return response


# -- runs ---------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    """The run list's filters as given (``since`` may be relative: ``-1h``)."""
    return {name: request.query_params.get(name, "") for name in bulk.FILTERS}


async def _runs(request: Request) -> dict[str, Any]:
    view = request.query_params.get("view")
    if view in ("stuck", "person"):
        return await _view(request, view)
    filters = _filters(request)
    try:
        search = bulk.search_of(filters)
    except ValueError as exc:
        return {"runs": [], "next_cursor": None, "filters": filters, "error": str(exc)}
    page_ = await (await client_of(request)).search_runs(
        **search, limit=50, cursor=request.query_params.get("cursor") or None
    )
    return {"runs": page_.runs, "next_cursor": page_.next_cursor, "filters": filters}


async def _view(request: Request, view: str) -> dict[str, Any]:
    client = await client_of(request)
    if view == "stuck":
        alerts = await client.list_alerts(kind="stuck_run", status="raised", limit=VIEW_LIMIT)
        ids = [a.subject for a in alerts]
    else:
        tasks = await client.list_tasks(status="open", limit=200)
        ids = list(dict.fromkeys(t.run_id for t in tasks))[:VIEW_LIMIT]
    described = []
    for run_id in ids:
        try:
            described.append(await client.describe(run_id))
        except LegatoError:
            continue  # pruned since
    return {"runs": described, "next_cursor": None, "filters": _filters(request)}


@router.get("/runs")
async def runs(request: Request) -> Response:
    who = await caller(request)
    listed = await _runs(request)
    query = urlencode({k: v for k, v in request.query_params.items() if v})
    statuses = [s.value for s in RunStatus]
    views = {name: urlencode(view) for name, view in SAVED_VIEWS.items()}
    status = listed["filters"]["status"]
    # A bulk action takes the list's filters; the two views that are not filters have none.
    in_bulk = (
        {}
        if request.query_params.get("view") or status not in ("", *statuses)
        else bulk.actions_for(status or None)
    )
    return page(
        request,
        "runs.html",
        who,
        **listed,
        query=query,
        statuses=statuses,
        views=views,
        bulk_actions=in_bulk,
    )


@router.get("/runs/table")
async def runs_table(request: Request) -> Response:
    """The run list's rows, for htmx to swap in every few seconds (live status)."""
    who = await caller(request)
    return page(request, "runs_table.html", who, **await _runs(request))


@router.get("/runs/{run_id:run}")
async def run(request: Request, run_id: str) -> Response:
    who = await caller(request)
    client = await client_of(request)
    described = await client.describe(run_id)
    history = history_json(await client.history(run_id))
    actions = {
        action: text
        for action, text in ACTIONS.items()
        if described.status in BULK_ACTIONS[action]
        and not (action == "retry" and described.status is not RunStatus.FAILED)
    }
    return page(
        request,
        "run.html",
        who,
        run=described,
        graph=run_graph(described),
        history=history,
        timeline=_timeline(history),
        actions=actions,
        message=request.query_params.get("done"),
        live=not described.status.is_terminal,  # refreshed in place until it ends
    )


@router.post("/runs/{run_id:run}/act")
async def act(request: Request, run_id: str) -> Response:
    who = await caller(request)
    form = await form_of(request)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    client = await client_of(request)
    action = form.get("action", "")
    try:
        if action == "restart":
            fresh = await client.restart(run_id, by=who.name)
            return to_console(f"/runs/{quote(fresh, safe='')}?done=restarted+from+{run_id}")
        await client.act(action, run_id, by=who.name)
    except LegatoError as exc:
        return refused(request, who, str(exc))
    return to_console(f"/runs/{quote(run_id, safe='')}?done={quote(action)}")


def _timeline(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each attempt of each step or compensation, with its duration and error."""
    rows: list[dict[str, Any]] = []
    started: dict[tuple[str | None, str, int], datetime] = {}
    for record in history:
        kind, data = record["kind"], record["data"] if isinstance(record["data"], dict) else {}
        key = (
            record["key"],
            "undo" if kind.startswith("compensation") else "do",
            record["attempt"],
        )
        if kind in ("step_started", "compensation_started"):
            started[key] = record["at"]
            continue
        if kind in (
            "step_completed",
            "step_failed",
            "compensation_completed",
            "compensation_failed",
        ):
            began = started.get(key)
            if began is None and isinstance(data.get("started_at"), float):
                began = datetime.fromtimestamp(data["started_at"], UTC)
            took = None if began is None else (record["at"] - began).total_seconds()
            rows.append(
                {
                    "at": record["at"],
                    "what": ("undo " if key[1] == "undo" else "") + str(record["name"]),
                    "attempt": record["attempt"],
                    "outcome": "completed" if kind.endswith("completed") else "failed",
                    "took": took,
                    "error": None if kind.endswith("completed") else data.get("message"),
                }
            )
        elif kind in (
            "run_retried",
            "compensation_resumed",
            "run_resumed",
            "run_restarted",
            "cancel_requested",
        ):
            rows.append(
                {
                    "at": record["at"],
                    "what": kind.replace("_", " "),
                    "attempt": None,
                    "outcome": "operator",
                    "took": None,
                    "error": f"by {data['by']}" if data.get("by") else None,
                }
            )
    return rows


# -- tasks --------------------------------------------------------------------------------


@router.get("/tasks")
async def tasks(request: Request) -> Response:
    who = await caller(request)
    listed = await (await client_of(request)).list_tasks(status="open", limit=200)
    return page(request, "tasks.html", who, tasks=listed)


@router.get("/tasks/{task_id:id}")
async def task(request: Request, task_id: str) -> Response:
    who = await caller(request)
    found = await (await client_of(request)).get_task(task_id)
    return page(request, "task.html", who, task=found, fields=forms.fields(found.form), error=None)


@router.post("/tasks/{task_id:id}/claim")
async def claim(request: Request, task_id: str) -> Response:
    who = await caller(request)
    await form_of(request)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    try:
        await (await client_of(request)).claim_task(task_id, who.name)
    except LegatoError as exc:
        return refused(request, who, str(exc))
    return to_console(f"/tasks/{quote(task_id, safe='')}")


@router.post("/tasks/{task_id:id}")
async def complete(request: Request, task_id: str) -> Response:
    who = await caller(request)
    form = await form_of(request)
    client = await client_of(request)
    found = await client.get_task(task_id)
    if not may_operate(request, who):
        return refused(request, who, READ_ONLY)
    fields = forms.fields(found.form)
    try:
        answer = forms.response(fields, form)
        await client.complete_task(task_id, answer, by=who.name)
    except (LegatoError, ValueError) as exc:
        response = page(request, "task.html", who, task=found, fields=fields, error=str(exc))
        response.status_code = 422
        return response
    return to_console(f"/runs/{quote(found.run_id, safe='')}?done=task+completed")


# -- events, flows and the rest -----------------------------------------------------------


@router.get("/events")
async def events(request: Request) -> Response:
    """The event log in log order, filtered (type, correlation id, since, unrouted), a
    page of ``EVENTS_PAGE`` at a time: the next page goes on after the last one shown."""
    who = await caller(request)
    query = request.query_params
    filters = {k: query.get(k, "") for k in ("type", "correlation_id", "since", "unrouted")}
    try:
        since = since_of(filters["since"])
        after = int(query.get("after") or 0)
    except ValueError as exc:
        return page(request, "events.html", who, events=[], filters=filters, error=str(exc))
    listed = await (await client_of(request)).list_events(
        type=filters["type"] or None,
        correlation_id=filters["correlation_id"] or None,
        since=since,
        unrouted=bool(filters["unrouted"]),
        after_seq=max(0, after),
        limit=EVENTS_PAGE,
    )
    more = None
    if len(listed) == EVENTS_PAGE:
        more = urlencode({**{k: v for k, v in filters.items() if v}, "after": listed[-1].seq})
    return page(request, "events.html", who, events=listed, filters=filters, more=more, error=None)


EVENTS_PAGE = 200


@router.get("/flows/{correlation_id:run}")
async def flow(request: Request, correlation_id: str) -> Response:
    who = await caller(request)
    found = await (await client_of(request)).flow(correlation_id)
    return page(request, "flow.html", who, flow=found, graph=to_mermaid(found))


@router.get("/alerts")
async def alerts(request: Request) -> Response:
    who = await caller(request)
    listed = await (await client_of(request)).list_alerts(limit=200)
    return page(request, "alerts.html", who, alerts=listed)


@router.get("/expectations")
async def expectations(request: Request) -> Response:
    who = await caller(request)
    listed = await (await client_of(request)).list_expectations(limit=200)
    return page(request, "expectations.html", who, instances=listed)


@router.get("/workers")
async def workers(request: Request) -> Response:
    who = await caller(request)
    listed = await (await client_of(request)).list_workers()
    return page(request, "workers.html", who, workers=listed)


def install(app: FastAPI) -> None:
    """Serve the console on ``app``: its pages, its static files, sign-in redirects."""
    for pages in (router, bulk.router, deadletters.router):
        app.include_router(pages)
    app.mount("/console/static", STATIC, name="console-static")

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        return to_console("/login")

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, exc: BadCsrf) -> Response:
        return HTMLResponse("the form expired or came from another site: reload the page", 403)
