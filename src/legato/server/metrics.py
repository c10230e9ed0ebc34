"""The server's own metrics: requests by route, method and status, and their durations,
in a registry of its own (``/metrics``).

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which costs a task and
a stream per request): it notes the status as the response starts and the route the
router chose (``scope["route"]``) once it is done.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServerMetrics:
    """Counters and histograms of one server's requests."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "legato_http_requests_total",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "legato_http_request_seconds",
            "Time to answer an HTTP request, by route and method.",
            ["route", "method"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request into ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            route = _route_of(scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.seconds.labels(route, method).observe(time.perf_counter() - began)


def _route_of(scope: Scope) -> str:
    """The route's template (``/api/runs/{run_id}``, as the OpenAPI document names it), not
    the path: ids are not labels."""
    route = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))
