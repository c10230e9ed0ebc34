"""Errors as HTTP answers, in one place: which status each error is, and its body, an
RFC 9457 problem details object (``application/problem+json``).

``type`` is ``urn:legato:problem:<kind>`` (``run-not-found``, ``invalid-task-response``,
...), ``title`` its short name, ``detail`` the error's own message, ``instance`` the
request's path; ids the error carries (``run_id``, ``task_id``, ...) come along as
members of their own, so a caller can act on them without parsing the message.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from legato import errors

log = logging.getLogger("legato.server")

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first matching row wins.
_STATUSES: list[tuple[type[BaseException], int]] = [
    (errors.NotAuthorized, 401),
    (errors.NotPermitted, 403),
    (errors.RunNotFound, 404),
    (errors.TaskNotFound, 404),
    (errors.EventNotFound, 404),
    (errors.TokenNotFound, 404),
    (errors.UnknownSubscription, 404),
    (errors.RunAlreadyExists, 409),
    (errors.TokenExists, 409),
    (errors.RunFinished, 409),
    (errors.TaskClosed, 409),
    (errors.TaskClaimed, 409),
    (errors.AmbiguousEvent, 409),
    (errors.ConcurrencyConflict, 409),
    (errors.BulkChanged, 409),
    (errors.InvalidTaskResponse, 422),
    (errors.UnknownWorkflow, 422),
    (errors.DefinitionError, 422),
    (errors.BusError, 422),
    (errors.ConfigurationError, 422),
    (errors.StorageError, 503),
    (errors.RunError, 409),
    (errors.LegatoError, 400),
    (ValueError, 422),  # a status or a kind that does not exist, say
]

_CARRIED = ("run_id", "task_id", "event_id", "workflow", "name")


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (500 for anything that is not a caller's error)."""
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def _kind(exc: BaseException) -> str:
    """``RunNotFound`` -> ``run-not-found``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()


def problem(
    status: int,
    title: str,
    detail: str,
    instance: str,
    kind: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem details response."""
    body = {
        "type": f"urn:legato:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    } | {k: v for k, v in extra.items() if v is not None}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every error with a problem details body."""

    async def caller_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            return await server_error(request, exc)
        carried = {name: getattr(exc, name, None) for name in _CARRIED}
        carried = {k: v for k, v in carried.items() if isinstance(v, str)}
        if isinstance(exc, errors.BulkChanged):  # the new preview, to confirm again
            carried["preview"] = dataclasses.asdict(exc.preview)
        title = type(exc).__name__ if isinstance(exc, errors.LegatoError) else "Invalid value"
        return problem(status, title, str(exc), request.url.path, _kind(exc), **carried)

    # The caller's errors are answered inside the middleware (so they are counted); a
    # bug (any other exception) by the outermost handler.
    app.add_exception_handler(errors.LegatoError, caller_error)
    app.add_exception_handler(ValueError, caller_error)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(
            500,
            "Internal Server Error",
            "the server failed; its log says why",
            request.url.path,
            "internal-error",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = issues[0] if issues else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(
            422,
            "Invalid request",
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            request.url.path,
            "invalid-request",
            errors=issues,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        title = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
            exc.status_code, "Error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(
            exc.status_code,
            title,
            str(exc.detail),
            request.url.path,
            title.lower().replace(" ", "-"),
            headers=headers,
        )


AllowTable = list[tuple[re.Pattern[str], frozenset[str]]]


def allow_table(routers: list[APIRouter]) -> AllowTable:
    """Each API route's path pattern and methods, for ``allowed_methods``."""
    return [
        (route.path_regex, frozenset(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at the request's path: a 405's ``Allow``
    (Starlette names the first route's only, where routes share a path)."""
    table: AllowTable = request.app.state.allow
    path = request.url.path
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})
