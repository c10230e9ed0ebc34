"""``/api/runs``: start, search, describe, history, signal, cancel and resume runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from legato.model.description import RunDescription
from legato.model.runs import RunStatus
from legato.model.times import as_utc
from legato.server.schemas import (
    PROBLEMS,
    HistoryRecord,
    RunPage,
    RunStatusOut,
    SendSignal,
    StartRun,
)
from legato.server.security import Client, Operator, Reader
from legato.views import history_json

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=PROBLEMS)


class RunStarted(RunStatusOut):
    """The run a start created (or found, for a ``run_id`` that existed already)."""

    workflow: str
    created_at: datetime


@router.post("", status_code=201, response_model=RunStarted, summary="Start a run")
async def start_run(
    body: StartRun, client: Client, caller: Operator, response: Response
) -> RunStarted:
    run_id, created = await client.create_run(body.workflow, *body.arguments(), run_id=body.run_id)
    response.headers["Location"] = f"/api/runs/{quote(run_id, safe='/')}"
    if created is not None:  # just created: nothing to read back
        at = datetime.fromtimestamp(created, UTC)
        return RunStarted(run_id=run_id, status="pending", workflow=body.workflow, created_at=at)
    run = await client.get_run(run_id)  # it existed: as it stands now
    return RunStarted(
        run_id=run.run_id, status=run.status.value, workflow=run.workflow, created_at=run.created_at
    )


@router.get("", response_model=RunPage, summary="List and search runs")
async def list_runs(
    client: Client,
    caller: Reader,
    status: Annotated[RunStatus | None, Query()] = None,
    workflow: str | None = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    correlation_id: str | None = None,
    run_id_prefix: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> RunPage:
    page = await client.search_runs(
        status=None if status is None else status.value,
        workflow=workflow,
        since=as_utc(since),
        until=as_utc(until),
        correlation_id=correlation_id,
        run_id_prefix=run_id_prefix,
        limit=limit,
        cursor=cursor,
    )
    return RunPage(runs=page.runs, next_cursor=page.next_cursor)


@router.get("/{run_id:run}/history", response_model=list[HistoryRecord], summary="A run's history")
async def history(run_id: str, client: Client, caller: Reader) -> list[HistoryRecord]:
    return [HistoryRecord(**r) for r in history_json(await client.history(run_id))]


@router.post(
    "/{run_id:run}/signals",
    status_code=202,
    response_model=RunStatusOut,
    summary="Send a signal to a run",
)
async def signal(run_id: str, body: SendSignal, client: Client, caller: Operator) -> RunStatusOut:
    await client.signal(run_id, body.name, body.payload)
    return RunStatusOut(run_id=run_id, status=(await client.get_run(run_id)).status.value)


@router.post("/{run_id:run}/cancel", response_model=RunStatusOut, summary="Cancel a run")
async def cancel(run_id: str, client: Client, caller: Operator) -> RunStatusOut:
    return RunStatusOut(run_id=run_id, status=(await client.cancel(run_id, by=caller.name)).value)


@router.post("/{run_id:run}/resume", response_model=RunStatusOut, summary="Resume a blocked run")
async def resume(run_id: str, client: Client, caller: Operator) -> RunStatusOut:
    return RunStatusOut(run_id=run_id, status=(await client.resume(run_id, by=caller.name)).value)


@router.get(
    "/{run_id:run}",
    response_model=RunDescription,
    summary="Describe a run: what step, what failed, what happens next",
)
async def describe(run_id: str, client: Client, caller: Reader) -> RunDescription:
    return await client.describe(run_id)
