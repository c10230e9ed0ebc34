"""``legato worker TARGET``: import a user's app and run its engine until stopped.

``TARGET`` is ``MODULE[:APP]`` (the current directory is on the import path) or
``path/to/file.py[:APP]``. Whatever goes wrong while finding the app (no such module or
file, the module raises while it is imported, no such attribute, not an ``App``) is one
line and a hint, never a traceback: the traceback belongs to ``python path/to/file.py``.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from legato.app import App
from legato.cli.errors import USAGE, fail
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


def _is_path(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _where(exc: BaseException) -> str:
    """``(file, line N)`` of the frame that raised, preferring the user's own files."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}, line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    cwd = os.getcwd()
    own = [f for f in frames if f.filename.startswith(cwd) and "site-packages" not in f.filename]
    if not frames:
        return ""
    frame = (own or frames)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


def _import_failed(label: str, exc: Exception, rerun: str) -> typer.Exit:
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    message = text.splitlines()[0] if text else ""
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return fail(
        f"importing {label} raised {what}{_where(exc)}",
        hint=f"fix the module; `{rerun}` shows the whole traceback",
    )


def _package_root(path: Path) -> tuple[Path, str]:
    """The directory to put on the import path for ``path``, and its dotted module name.

    A file inside a package (directories with ``__init__.py``) is imported as part of it,
    so its relative imports work.
    """
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    return directory, ".".join(parts)


def _import_file(text: str) -> tuple[ModuleType, str]:
    path = Path(text)
    if not path.is_file():
        raise fail(
            f"cannot import {text!r}: there is no such file",
            hint="give the path of a .py file (relative to the current directory), "
            "or a module name: `legato worker courses:app`",
            exit_code=USAGE,
        )
    if path.suffix != ".py":
        raise fail(
            f"cannot import {text!r}: not a .py file", hint="give a Python file", exit_code=USAGE
        )
    path = path.resolve()
    root, name = _package_root(path)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise _import_failed(repr(text), exc, f"python {text}") from None
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != path:
        raise fail(
            f"cannot import {text!r} as module {name!r}: another module of that name is "
            f"loaded already ({loaded or 'built in'})",
            hint="rename the file, or give it as MODULE:APP",
            exit_code=USAGE,
        )
    return module, name


def _import_module(name: str) -> ModuleType:
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise fail(
                f"cannot import {name!r}: no module of that name in {os.getcwd()} or on "
                "the import path",
                hint="run from the directory that holds it, or give its file: "
                "`legato worker path/to/courses.py:app`",
                exit_code=USAGE,
            ) from None
        raise _import_failed(repr(name), exc, f"python -c 'import {name}'") from None
    except Exception as exc:
        raise _import_failed(repr(name), exc, f"python -c 'import {name}'") from None


def _apps_in(module: ModuleType) -> list[str]:
    return sorted(name for name, value in vars(module).items() if isinstance(value, App))


def load_app(target: str) -> App:
    """The ``legato.App`` that ``target`` (``MODULE[:APP]`` or ``file.py[:APP]``) names.

    Raises ``typer.Exit`` after printing one line and a hint when it cannot.
    """
    module_part, _, attr = target.partition(":")
    if not module_part:
        raise fail(
            f"expected MODULE:APP or path/to/file.py:APP, got {target!r}",
            hint="for example `legato worker courses:app`",
            exit_code=USAGE,
        )
    if _is_path(module_part):
        module, name = _import_file(module_part)
    else:
        module, name = _import_module(module_part), module_part
    apps = _apps_in(module)
    found = ", ".join(apps) or "none"
    if not attr:
        if len(apps) == 1:
            return getattr(module, apps[0])  # type: ignore[no-any-return]  # checked above
        raise fail(
            f"module {name!r} holds several legato.App objects ({found}); name one"
            if apps
            else f"module {name!r} holds no legato.App",
            hint=f"name one: `legato worker {module_part}:{apps[0]}`"
            if apps
            else "create one in the module (app = legato.App(...)) and write MODULE:APP",
            exit_code=USAGE,
        )
    if not hasattr(module, attr):
        raise fail(
            f"module {name!r} has no attribute {attr!r}; its legato.App objects: {found}",
            hint=f"write `legato worker {module_part}:{apps[0]}`"
            if apps
            else "write MODULE:APP, where APP is the legato.App the module creates",
            exit_code=USAGE,
        )
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise fail(
            f"{target!r} is not a legato.App: it is a {type(app).__name__}",
            hint=f"write `legato worker {module_part}:{apps[0]}`"
            if apps
            else "point at the object made by legato.App(...)",
            exit_code=USAGE,
        )
    return app


@contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Set ``$name`` to ``value`` (when given) for the duration, then restore it."""
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


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
    with _environment(DATABASE_ENV, url if database else None):
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
