"""``/api/tasks``: the human-task inbox: list, show, claim, complete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from legato.model import TaskStatus
from legato.model.waits import Task
from legato.server.schemas import PROBLEMS, CompleteTask
from legato.server.security import Client, Operator, Reader

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=PROBLEMS)


@router.get("", response_model=list[Task], summary="List human tasks")
async def list_tasks(
    client: Client,
    caller: Reader,
    status: Annotated[TaskStatus, Query()] = TaskStatus.OPEN,
    run_id: str | None = None,
    assignee: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Task]:
    tasks = await client.list_tasks(
        status=status.value, run_id=run_id, assignee=assignee, limit=limit
    )
    return tasks


@router.get("/{task_id:id}", response_model=Task, summary="Show a task and its form")
async def get_task(task_id: str, client: Client, caller: Reader) -> Task:
    return await client.get_task(task_id)


@router.post("/{task_id:id}/claim", response_model=Task, summary="Take an open task")
async def claim_task(task_id: str, client: Client, caller: Operator) -> Task:
    return await client.claim_task(task_id, caller.name)


@router.post(
    "/{task_id:id}/complete", response_model=Task, summary="Answer a task (checked by its form)"
)
async def complete_task(task_id: str, body: CompleteTask, client: Client, caller: Operator) -> Task:
    return await client.complete_task(task_id, body.response, by=caller.name)
