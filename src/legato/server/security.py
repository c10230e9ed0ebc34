"""Who is calling, and may they: bearer tokens with scopes, and the read-only switch.

Every route names the scope it needs (``needs(Scope.OPERATE)``); the dependency finds the
caller's token (``Authorization: Bearer lgt_...``, or the console's session cookie) and
refuses, with a problem details body, a request without a token the database knows
(401), with a revoked one (401), or with a scope too small (403). A server started with
``--read-only`` refuses every write (403) whatever the token; one started with auth off
(``--no-auth``, loopback only) treats every caller as ``anonymous`` with every scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from legato.client import AsyncClient
from legato.errors import NotAuthorized, NotPermitted
from legato.model.tokens import Scope

_bearer = HTTPBearer(auto_error=False, description="A token from `legato tokens create`.")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How a server guards itself."""

    auth: bool = True
    """Require a token on every route but the probes (off: loopback only)."""
    read_only: bool = False
    """Refuse every write, whatever the token."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's name (what operator actions record) and scope."""

    name: str
    scope: Scope


ANONYMOUS = Caller("anonymous", Scope.ADMIN)


async def client_of(request: Request) -> AsyncClient:
    """The server's client (opened when the server started). Async, as every dependency
    here: FastAPI runs a plain function on a thread, a hop per request for nothing."""
    client: AsyncClient = request.app.state.client
    return client


def settings_of(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def caller_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller, from its bearer token; 401 without one the database knows as active."""
    # A SQLite file deleted or replaced under the server: 503 (DatabaseMoved), rather
    # than answers read from, and writes lost in, the file it still holds open.
    await request.app.state.client.check_database()
    if not settings_of(request).auth:
        return ANONYMOUS
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthorized(
            "this server needs a token: send Authorization: Bearer <token> "
            "(create one with `legato tokens create NAME --scope read`)"
        )
    token = await request.app.state.client.authenticate(credentials.credentials)
    if token is None:
        raise NotAuthorized("the token is not one this server knows, or it was revoked")
    return Caller(token.name, token.scope)


READS = frozenset({"GET", "HEAD"})
"""The methods that change nothing: all a read-only server answers."""


def needs(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its token's scope allows ``scope``; a write (any
    method but GET and HEAD, whatever scope it needs: listing tokens is a read that needs
    ``admin``) is refused on a read-only server."""

    async def check(request: Request, caller: Annotated[Caller, Depends(caller_of)]) -> Caller:
        if request.method not in READS and settings_of(request).read_only:
            raise NotPermitted("this server is read-only (--read-only): it changes nothing")
        if not caller.scope.allows(scope):
            raise NotPermitted(
                f"token {caller.name!r} has scope {caller.scope.value}; this needs {scope.value}"
            )
        return caller

    return check


Reader = Annotated[Caller, Depends(needs(Scope.READ))]
Operator = Annotated[Caller, Depends(needs(Scope.OPERATE))]
Admin = Annotated[Caller, Depends(needs(Scope.ADMIN))]
Client = Annotated[AsyncClient, Depends(client_of)]
