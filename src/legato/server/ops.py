"""``/api/workers``, ``/api/expectations``, ``/api/alerts`` and ``/api/workflows``: what
an operator watches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.server.schemas import (
    PROBLEMS,
    NewTokenIn,
    NewTokenOut,
    TokenOut,
    WorkerOut,
)
from legato.server.security import Admin, Client, Reader
from legato.views import token_json, worker_json

router = APIRouter(tags=["operations"], responses=PROBLEMS)


@router.get("/api/workers", response_model=list[WorkerOut], summary="Registered workers")
async def workers(client: Client, caller: Reader) -> list[WorkerOut]:
    listed = await client.list_workers()
    owned, _ = await client.runs_owned()
    return [WorkerOut(**worker_json(w, owned[w.worker_id])) for w in listed]


@router.get("/api/workflows", response_model=list[str], summary="Registered workflow names")
async def workflows(client: Client, caller: Reader) -> list[str]:
    return await client.list_workflows()


@router.get(
    "/api/expectations", response_model=list[ExpectationInstance], summary="Expectation instances"
)
async def expectations(
    client: Client,
    caller: Reader,
    name: str | None = None,
    status: ExpectationStatus | None = None,
    key: str | None = None,
    correlation_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExpectationInstance]:
    found = await client.list_expectations(
        name=name, status=status, key=key, correlation_id=correlation_id, limit=limit
    )
    return found


@router.get("/api/alerts", response_model=list[Alert], summary="Alerts, latest first")
async def alerts(
    client: Client,
    caller: Reader,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    found = await client.list_alerts(status=status, kind=kind, limit=limit)
    return found


@router.get("/api/tokens", response_model=list[TokenOut], summary="API tokens (never secrets)")
async def tokens(client: Client, caller: Admin) -> list[TokenOut]:
    return [TokenOut(**token_json(t)) for t in await client.list_tokens()]


@router.post(
    "/api/tokens",
    status_code=201,
    response_model=NewTokenOut,
    summary="Create a token: its secret is in this answer only",
)
async def create_token(body: NewTokenIn, client: Client, caller: Admin) -> NewTokenOut:
    new = await client.create_token(body.name, body.scope.value)
    return NewTokenOut(**token_json(new.token), secret=new.secret)


@router.delete("/api/tokens/{name}", response_model=TokenOut, summary="Revoke a token")
async def revoke_token(name: str, client: Client, caller: Admin) -> TokenOut:
    return TokenOut(**token_json(await client.revoke_token(name)))
