"""A worker's observability port: ``/metrics``, ``/healthz`` and ``/readyz``.

``legato worker --metrics-port PORT`` serves them on 127.0.0.1 unless ``--metrics-host``
says otherwise, from a thread of its own (a scrape never waits on the engine's loop
longer than a few seconds):

- ``/metrics``: Prometheus text (``legato.observability.metrics``);
- ``/healthz``: 200 while the engine's loop answers and its upkeep pass keeps turning;
  503 otherwise (an orchestrator restarts the worker);
- ``/readyz``: 200 when the database answers and its schema is the one this version
  writes; 503 otherwise (an orchestrator sends it no work yet).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from legato.observability.metrics import Metrics
from legato.storage.base import SCHEMA_VERSION

if TYPE_CHECKING:
    from legato.engine.worker import Engine

_ANSWER_S = 2.0  # the loop must answer a probe this fast
_STALE_PASS_S = 60.0  # an upkeep pass older than this (beyond its backoff) is a hang

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not news


def health(engine: Engine | None) -> tuple[bool, str]:
    """Is the worker alive: its loop answers, its upkeep pass turns."""
    if engine is None or not engine.running or engine.loop is None:
        return False, "the engine is not running"
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), engine.loop).result(_ANSWER_S)
    except Exception:
        return False, f"the engine's loop did not answer within {_ANSWER_S:.0f}s"
    since = time.monotonic() - engine.last_pass_at
    if since > _STALE_PASS_S + engine.poll_interval_s:
        return False, f"the upkeep pass has not turned for {since:.0f}s"
    return True, "ok"


def readiness(engine: Engine | None) -> tuple[bool, str]:
    """Is the worker ready: its database answers, with the schema this version writes."""
    if engine is None or not engine.running or engine.loop is None:
        return False, "the engine is not running"

    async def probe() -> int:
        await engine.store.check_location()
        return await engine.store.schema_version()

    try:
        version = asyncio.run_coroutine_threadsafe(probe(), engine.loop).result(_ANSWER_S * 2)
    except Exception as exc:
        return False, f"the database does not answer: {exc}"
    if version != SCHEMA_VERSION:
        fix = "upgrade this worker" if version > SCHEMA_VERSION else "restart it to migrate"
        return False, (
            f"the database has schema version {version}, this worker writes {SCHEMA_VERSION}: {fix}"
        )
    return True, "ok"


class ObservabilityServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` of one worker, on a thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self.metrics = metrics
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._server: WSGIServer = make_server(host, port, self._app, handler_class=_Quiet)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="legato-metrics", daemon=True
        )

    def start(self) -> ObservabilityServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            check = health if path == "/healthz" else readiness
            ok, why = check(self.metrics.engine)
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{why}\n".encode()]
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: /metrics, /healthz and /readyz are served here\n"]
