"""The server's own metrics: requests by route, method and status, and their durations,
in a registry of its own (``/metrics``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram


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

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        self.requests.labels(route, request.method, str(response.status_code)).inc()
        self.seconds.labels(route, request.method).observe(time.perf_counter() - began)
        return response


def _route_of(request: Request) -> str:
    """The route's template (``/api/runs/{run_id:path}``), not the path: ids are not labels."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))
