"""``legato worker TARGET``: import a user's app and run its engine until stopped.

``TARGET`` is ``MODULE[:APP]`` or ``path/to/file.py[:APP]``; ``legato.cli.loading`` finds
the app, and says in one line and a hint (never a traceback) why when it cannot.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from legato.app import App
from legato.cli.errors import USAGE, fail
from legato.cli.loading import environment
from legato.cli.loading import load_app as load_app  # legato.cli.main re-exports it from here
from legato.cli.options import DatabaseOption, resolve_database
from legato.observability.logs import ContextFilter, JsonFormatter
from legato.storage import DATABASE_ENV

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class LogFormat(enum.StrEnum):
    """How ``legato worker`` writes its log."""

    TEXT = "text"
    JSON = "json"


LOG_LEVEL_ENV = "LEGATO_LOG_LEVEL"

if TYPE_CHECKING:
    from legato.observability.http import ObservabilityServer

log = logging.getLogger(__name__)


def _log_level(level: str | None) -> str:
    given, source = (level, "--log-level") if level else (os.environ.get(LOG_LEVEL_ENV), None)
    if not given:
        return "INFO"
    if given.upper() not in LOG_LEVELS:
        where = source or LOG_LEVEL_ENV
        raise fail(
            f"{where} is {given!r}; the levels are {', '.join(LOG_LEVELS)}",
            hint=f"fix {where}" + ("" if source else " or pass --log-level LEVEL"),
            exit_code=USAGE,
        )
    return given.upper()


def _concurrency(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise fail(
            f"--concurrency must be a positive integer, got {value!r}",
            hint="give the most runs this worker holds in flight at once, e.g. --concurrency 8",
            exit_code=USAGE,
        )
    return limit


def worker(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:APP",
            help="The app to serve: MODULE:APP, or path/to/file.py:APP. APP may be left "
            "out when the module holds exactly one legato.App.",
        ),
    ],
    database: DatabaseOption = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help=f"DEBUG, INFO, WARNING or ERROR. Default: ${LOG_LEVEL_ENV}, else INFO.",
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            "--concurrency",
            metavar="N",
            help="At most N runs in flight at once in this worker. Default: the app's.",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per line with run_id, workflow, step, "
            "attempt, event_id, correlation_id and trace_id where they apply.",
        ),
    ] = LogFormat.TEXT,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            min=0,
            max=65535,
            help="Serve /metrics (Prometheus), /healthz and /readyz on this port.",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            metavar="HOST",
            help="The address --metrics-port binds (0.0.0.0: every interface).",
        ),
    ] = "127.0.0.1",
    lease: Annotated[
        float | None,
        typer.Option(
            "--lease",
            metavar="SECONDS",
            min=0.5,
            help="Silent this long, this worker is presumed dead by the others and its "
            "runs taken over (it heartbeats every third of it). Default: the app's (15).",
        ),
    ] = None,
) -> None:
    """Run the engine for an app until stopped; unfinished runs are recovered at start."""
    level = _log_level(log_level)
    limit = None if concurrency is None else _concurrency(concurrency)
    url = resolve_database(database)
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())  # the app's own records in steps get the fields too
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # An App() that names no database reads LEGATO_DATABASE_URL when the module is
    # imported: with --database, it must read that instead of whatever the shell has.
    with environment(DATABASE_ENV, url if database else None):
        app = load_app(target)
    if database is not None:
        app.use_database(url)
    # The process is the worker's own: the engine may tune the garbage collector for
    # thousands of live runs (an App in someone else's process leaves it alone).
    app.tune_gc = True
    if lease is not None:
        app.set_lease(timedelta(seconds=lease))
    if limit is not None:
        app.set_max_concurrent_runs(limit)
        log.info("at most %d runs in flight at once (--concurrency)", limit)
    # Say what is served where: an operator's first question when a run stays pending.
    handlers = sorted(
        name for name, sub in app.registry.subscriptions.items() if sub.handler is not None
    )
    watched = sorted(app.registry.expectations)
    log.info(
        "worker for app %r serving %s%s%s on %s; stop with Ctrl-C or SIGTERM",
        app.name,
        ", ".join(sorted(app.registry.workflows)) or "no workflows",
        f" and subscriptions {', '.join(handlers)}" if handlers else "",
        f", watching expectations {', '.join(watched)}" if watched else "",
        app.database or "a custom store",
    )
    server = None if metrics_port is None else _serve_metrics(app, metrics_host, metrics_port)
    try:
        asyncio.run(app.run_worker())
    finally:
        if server is not None:
            server.stop()


def _serve_metrics(app: App, host: str, port: int) -> ObservabilityServer:
    """Start the observability port for ``app``'s engine (its metrics hook added)."""
    # Imported here: prometheus_client is not worth its import time in every CLI call.
    from legato.observability.http import ObservabilityServer
    from legato.observability.metrics import Metrics

    metrics = Metrics()
    app.hooks.append(metrics)
    try:
        server = ObservabilityServer(metrics, host, port).start()
    except OSError as exc:
        raise fail(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="choose a free port with --metrics-port, or stop what listens there",
            exit_code=USAGE,
        ) from None
    log.info("metrics on http://%s:%d/metrics (and /healthz, /readyz)", host, server.port)
    return server
