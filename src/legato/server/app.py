"""The FastAPI application of ``legato server``: every route a thin layer over one
``AsyncClient``, errors answered in one place (``problems``), tokens checked in one
(``security``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import legato
from legato.client import AsyncClient
from legato.server import events, health, ops, problems, runs, tasks
from legato.server.metrics import ServerMetrics
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
    app.middleware("http")(app.state.metrics.middleware)
    problems.install(app)
    for module in (runs, tasks, events, ops, health):
        app.include_router(module.router)
    return app
