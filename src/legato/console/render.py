"""How every console page is rendered: the Jinja2 templates (autoescaped), what each page
shows (who is signed in, the CSRF token, whether action buttons are shown), redirects
within the console and the refusal page. ``pages``, ``bulk`` and ``deadletters`` share it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from legato.console.session import csrf_of, may_operate, remember
from legato.server.security import Caller, settings_of

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates.filters["json"] = lambda value: orjson.dumps(
    value, option=orjson.OPT_INDENT_2, default=str
).decode()
templates.filters["url"] = lambda value: quote(str(value), safe="")

ACTIONS = {
    "retry": "Retry from the failed step",
    "resume_compensation": "Compensate again",
    "resume": "Resume",
    "cancel": "Cancel",
    "restart": "Restart as a new run",
}
"""The operator actions on runs, in the words of their buttons (one run's or a bulk's)."""

READ_ONLY = "your token may only read"


def page(request: Request, template: str, who: Caller | None, **values: Any) -> Response:
    """Render ``template`` with what every page shows (who, the CSRF token)."""
    html = templates.get_template(template).render(
        request=request,
        who=who,
        csrf=csrf_of(request),
        operate=who is not None and may_operate(request, who),
        auth=settings_of(request).auth,
        **values,
    )
    return remember(request, HTMLResponse(html))


def to_console(path: str) -> RedirectResponse:
    return RedirectResponse(f"/console{path}", status_code=303)


def refused(request: Request, who: Caller, why: str) -> Response:
    """The page saying an action was not done and why: 403 for a reader's token, 409 for
    an action the state or the input does not allow."""
    response = page(request, "refused.html", who, why=why)
    response.status_code = 403 if why == READ_ONLY else 409
    return response
