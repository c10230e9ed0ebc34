"""Operator actions over HTTP: retry a failed run from its failed step, resume a failed
compensation, restart a run as a new one (``/api/runs/{run_id}/...``), and every action
in bulk over a filter (``/api/bulk/{action}``: a preview, then the same body with its
``confirm`` token). Each is recorded in the run's history with the token's name as who
did it (docs/operations.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Response
from pydantic import Field

from legato.operations import BulkPreview, BulkResult
from legato.server.schemas import PROBLEMS, Body, RunStatusOut
from legato.server.security import Client, Operator

router = APIRouter(tags=["operator actions"], responses=PROBLEMS)


@router.post(
    "/api/runs/{run_id:run}/retry",
    response_model=RunStatusOut,
    summary="Retry a failed run from its failed step",
)
async def retry(run_id: str, client: Client, caller: Operator) -> RunStatusOut:
    return RunStatusOut(run_id=run_id, status=(await client.retry(run_id, by=caller.name)).value)


@router.post(
    "/api/runs/{run_id:run}/resume-compensation",
    response_model=RunStatusOut,
    summary="Compensate a run in compensation_failed again",
)
async def resume_compensation(run_id: str, client: Client, caller: Operator) -> RunStatusOut:
    status = await client.resume_compensation(run_id, by=caller.name)
    return RunStatusOut(run_id=run_id, status=status.value)


class Restart(Body):
    """The new run's id (a new one if absent)."""

    run_id: str | None = Field(default=None, min_length=1, max_length=1000)


class Restarted(Body):
    """The run restarted, and the new run that carries on in its place."""

    run_id: str
    new_run_id: str


@router.post(
    "/api/runs/{run_id:run}/restart",
    status_code=201,
    response_model=Restarted,
    summary="Start an ended run again as a new run, same input, same flow",
)
async def restart(
    run_id: str, client: Client, caller: Operator, response: Response, body: Restart | None = None
) -> Restarted:
    wanted = body.run_id if body is not None else None
    fresh = await client.restart(run_id, new_run_id=wanted, by=caller.name)
    response.headers["Location"] = f"/api/runs/{quote(fresh, safe='/')}"
    return Restarted(run_id=run_id, new_run_id=fresh)


Action = Literal["cancel", "resume", "retry", "resume_compensation", "restart"]


class BulkRequest(Body):
    """Which runs (among those the action applies to), and, to act, the ``confirm``
    token of their preview. Without ``confirm`` nothing is done: the answer is the
    preview."""

    status: str | None = None
    workflow: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    correlation_id: str | None = None
    run_id_prefix: str | None = None
    confirm: str | None = None

    def filters(self) -> dict[str, Any]:
        return self.model_dump(exclude={"confirm"})


class BulkAnswer(Body):
    """A preview (``done`` is null: nothing was done), or what was done."""

    preview: BulkPreview | None = None
    done: BulkResult | None = None


@router.post(
    "/api/bulk/{action}",
    response_model=BulkAnswer,
    summary="Preview an operator action over many runs, or apply a preview",
)
async def bulk(action: Action, body: BulkRequest, client: Client, caller: Operator) -> BulkAnswer:
    if body.confirm is None:
        return BulkAnswer(preview=await client.preview_bulk(action, **body.filters()))
    done = await client.apply_bulk(action, body.confirm, **body.filters(), by=caller.name)
    return BulkAnswer(done=done)
