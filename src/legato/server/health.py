"""``/healthz`` (the server answers), ``/readyz`` (its database answers, at this
version's schema) and ``/metrics`` (Prometheus): no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from legato.server.schemas import Health
from legato.server.security import client_of
from legato.storage.base import SCHEMA_VERSION

router = APIRouter(tags=["probes"])


@router.get("/healthz", response_model=Health, summary="The server answers")
async def healthz() -> Health:
    return Health(status="ok", detail="the server answers")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="The database answers, at this version's schema",
)
async def readyz(request: Request) -> JSONResponse | Health:
    client = await client_of(request)
    try:
        await client.check_database()
        version = await (await client._open()).schema_version()
    except Exception as exc:
        return _not_ready(f"the database does not answer: {exc}")
    if version != SCHEMA_VERSION:
        fix = "upgrade this server" if version > SCHEMA_VERSION else "run legato db migrate"
        return _not_ready(
            f"the database has schema {version}, this server needs {SCHEMA_VERSION}: {fix}"
        )
    return Health(status="ok", detail=f"the database answers, at schema {version}")


def _not_ready(detail: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
