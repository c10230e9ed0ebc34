"""Who is signed in to the console, and the CSRF check on its forms.

Signing in takes an API token (``legato tokens create NAME --scope read``); the console
keeps its secret in a cookie that is ``HttpOnly`` (no script reads it), ``SameSite=Strict``
(no other site's page sends it) and ``Secure`` over HTTPS, scoped to ``/console``. Each
request checks the token again, so a revoked token signs its browser out at once.

Every form carries a CSRF token: a random value the console also sets as its own cookie
(``SameSite=Strict``); a POST whose form value is not that cookie's is refused (403). The
check needs no server state, so it holds across ``legato server --workers N``.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import Request, Response

from legato.model.tokens import Scope
from legato.server.security import ANONYMOUS, Caller, settings_of

SESSION_COOKIE = "legato_session"
CSRF_COOKIE = "legato_csrf"
PATH = "/console"


class SignInNeeded(Exception):
    """No valid session: the page redirects to the sign-in form."""


class BadCsrf(Exception):
    """A form posted without this browser's CSRF token."""


async def caller(request: Request) -> Caller:
    """The signed-in caller (anonymous admin on a server with auth off); raises
    ``SignInNeeded`` without a session whose token is still active."""
    if not settings_of(request).auth:
        return ANONYMOUS
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInNeeded
    token = await request.app.state.client.authenticate(secret)
    if token is None:
        raise SignInNeeded
    return Caller(token.name, token.scope)


def may_operate(request: Request, who: Caller) -> bool:
    """Whether action buttons are shown: an ``operate`` token, on a server that writes."""
    return who.scope.allows(Scope.OPERATE) and not settings_of(request).read_only


def csrf_of(request: Request) -> str:
    """This browser's CSRF token (a new one if it has none yet; ``remember`` sets it)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token is None or len(token) != 43:
        token = getattr(request.state, "csrf", None) or secrets.token_urlsafe(32)
        request.state.csrf = token
    return token


def remember(request: Request, response: Response) -> Response:
    """Set the CSRF cookie on ``response`` if this request made a new one."""
    made = getattr(request.state, "csrf", None)
    if made is not None:
        _set_cookie(request, response, CSRF_COOKIE, made)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """Every console cookie: only for /console, never read by scripts, never sent by
    another site, and only over https when the console is served so."""
    response.set_cookie(
        name,
        value,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def form_of(request: Request) -> dict[str, str]:
    """The posted form (``application/x-www-form-urlencoded``), once its CSRF token is
    checked; raises ``BadCsrf`` if it is missing or not this browser's."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    sent, kept = form.pop("csrf", ""), request.cookies.get(CSRF_COOKIE, "")
    if not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        raise BadCsrf
    return form


def sign_in(request: Request, response: Response, secret: str) -> None:
    _set_cookie(request, response, SESSION_COOKIE, secret)


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PATH)
