"""The FastAPI application of ``legato server``: every route a thin layer over one
``AsyncClient``, errors answered in one place (``problems``), tokens checked in one
(``security``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI

import legato
from legato import collector, console
from legato.client import AsyncClient
from legato.server import actions, events, health, ops, problems, runs, tasks
from legato.server.limits import BodyLimitMiddleware
from legato.server.metrics import MetricsMiddleware, ServerMetrics
from legato.server.paths import EncodedSlashes
from legato.server.security import ServerSettings


def create_app(client: AsyncClient, settings: ServerSettings | None = None) -> FastAPI:
    """The API over ``client`` (opened when the app starts, closed when it stops)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client._open()
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(
        title="Legato",
        version=legato.__version__,
        summary="Durable workflows and events: start, signal and inspect runs, publish "
        "events, follow flows.",
        lifespan=lifespan,
    )
    app.state.client = client
    app.state.settings = settings or ServerSettings()
    app.state.metrics = ServerMetrics()
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(EncodedSlashes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    problems.install(app)
    routers = [module.router for module in (runs, actions, tasks, events, ops, health)]
    for router in routers:
        app.include_router(router)
    app.state.allow = problems.allow_table(routers)
    console.install(app)
    return app


SERVE_ENV = "LEGATO_SERVER"
"""Where ``legato server --workers N`` hands its settings to the processes uvicorn
starts: JSON ``{"database", "auth", "read_only"}``."""


def from_environment() -> FastAPI:
    """The app ``legato server`` describes in ``$LEGATO_SERVER`` (a uvicorn factory)."""
    spec = orjson.loads(os.environ[SERVE_ENV])
    settings = ServerSettings(auth=spec["auth"], read_only=spec["read_only"])
    app = create_app(AsyncClient(spec["database"]), settings)
    collector.freeze_start_up()  # this process is the server's own
    return app
