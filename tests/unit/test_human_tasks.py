"""Human tasks: ``legato.human_task``, the inbox, and answering a task."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import legato
from legato.errors import InvalidTaskResponse, TaskClosed, TaskNotFound, WaitTimeout
from legato.model import EventKind, RunStatus, TaskStatus
from legato.testing import FakeClock
from tests.fixtures.engine import Harness, advance, of_kind, outcome
from tests.fixtures.waiting import BEFORE_TODAY, DAY, SECOND, at, claim_due, harness_at, status

FORM = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}


def review(timeout: timedelta | None = None, form: Any = FORM):
    """A fraud review for "bob"; on timeout the workflow returns "escalated"."""

    def define(app: legato.App) -> SimpleNamespace:
        @app.workflow(name="review")
        async def flow(order: dict[str, Any]) -> Any:
            try:
                return await legato.human_task(
                    "fraud review", {"order": order}, assignee="bob", form=form, timeout=timeout
                )
            except WaitTimeout:
                return "escalated"

        return SimpleNamespace(flow=flow)

    return define


async def started(harness: Harness, clock: FakeClock, **options: Any) -> legato.RunHandle:
    defs = await harness.start(review(**options))
    handle = await harness.running.start(defs.flow, {"id": "o-1", "total": 900})
    await clock.settle()
    return handle


def client(harness: Harness) -> legato.AsyncClient:
    """A client on the harness's store, as a web handler would have."""
    return legato.AsyncClient(harness.store)


async def test_human_task_puts_an_open_task_in_the_assignees_inbox(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    inbox = await client(harness).list_tasks(assignee="bob")
    assert [(t.run_id, t.name, t.status) for t in inbox] == [
        (handle.run_id, "fraud review", TaskStatus.OPEN)
    ]
    assert await client(harness).list_tasks(assignee="carol") == []


async def test_get_task_shows_the_tasks_data_and_form(harness: Harness, clock: FakeClock) -> None:
    handle = await started(harness, clock)
    (listed,) = await client(harness).list_tasks(assignee="bob")
    task = await client(harness).get_task(listed.task_id)
    assert task.data == {"order": {"id": "o-1", "total": 900}}
    assert task.form == FORM
    assert (task.assignee, task.response, task.completed_at) == ("bob", None, None)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING


async def test_describe_of_a_run_waiting_on_a_task_names_the_task(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    description = await handle.describe()
    assert description.status is RunStatus.WAITING
    assert task.task_id in description.next


async def test_task_due_time_is_its_creation_plus_the_timeout(
    harness: Harness, clock: FakeClock
) -> None:
    due = at(clock, 2 * DAY)
    await started(harness, clock, timeout=2 * DAY)
    (task,) = await client(harness).list_tasks(assignee="bob")
    assert task.due_at == due


async def test_response_that_does_not_match_the_form_is_refused_and_the_task_stays_open(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    with pytest.raises(InvalidTaskResponse, match="'yes' is not of type 'boolean'"):
        await harness.running.complete_task(task.task_id, {"approved": "yes"})
    await claim_due(clock)
    assert (await client(harness).get_task(task.task_id)).status is TaskStatus.OPEN
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING


async def test_response_missing_a_required_field_is_refused_naming_it(
    harness: Harness, clock: FakeClock
) -> None:
    await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    with pytest.raises(InvalidTaskResponse, match="'approved' is a required property"):
        await harness.running.complete_task(task.task_id, {"note": "looks fine"})


async def test_valid_response_resumes_the_run_and_is_returned_by_human_task(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    done = await harness.running.complete_task(task.task_id, {"approved": True, "note": "ok"})
    assert (done.status, done.response) == (TaskStatus.COMPLETED, {"approved": True, "note": "ok"})
    await claim_due(clock)
    assert await outcome(handle) == {"approved": True, "note": "ok"}


async def test_completing_a_task_twice_raises_task_closed(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    await harness.running.complete_task(task.task_id, {"approved": True})
    await claim_due(clock)
    with pytest.raises(TaskClosed, match="completed"):
        await harness.running.complete_task(task.task_id, {"approved": False})
    assert await outcome(handle) == {"approved": True}
    assert (await client(harness).get_task(task.task_id)).response == {"approved": True}


async def test_task_timeout_raises_wait_timeout_in_the_workflow(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock, timeout=DAY)
    await advance(clock, DAY - SECOND)
    assert await status(harness.store, handle.run_id) is RunStatus.WAITING
    await advance(clock, SECOND)
    assert await outcome(handle) == "escalated"


async def test_timed_out_task_is_expired_and_cannot_be_completed(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock, timeout=DAY)
    (task,) = await client(harness).list_tasks(assignee="bob")
    await advance(clock, DAY)
    assert await outcome(handle) == "escalated"
    assert (await client(harness).get_task(task.task_id)).status is TaskStatus.EXPIRED
    assert await client(harness).list_tasks(assignee="bob") == []
    with pytest.raises(TaskClosed, match="expired"):
        await harness.running.complete_task(task.task_id, {"approved": True})


async def test_form_that_is_not_a_json_schema_fails_the_run_with_definition_error(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock, form={"type": "no-such-type"})
    failed = await outcome(handle)
    assert (failed.status, failed.error_type) == ("failed", "legato.errors.DefinitionError")
    assert "not a valid JSON Schema" in failed.error_message
    assert await client(harness).list_tasks(status=None) == []


async def test_cancelling_the_run_cancels_its_open_task(harness: Harness, clock: FakeClock) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    await harness.running.cancel(handle.run_id)
    await claim_due(clock)
    assert (await outcome(handle)).status == "cancelled"
    assert (await client(harness).get_task(task.task_id)).status is TaskStatus.CANCELLED


async def test_app_complete_task_resumes_the_evicted_run_without_waiting_for_a_poll(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    (task,) = await client(harness).list_tasks(assignee="bob")
    await harness.running.complete_task(task.task_id, {"approved": True})
    await clock.settle()
    assert await status(harness.store, handle.run_id) is RunStatus.COMPLETED


async def test_unknown_task_raises_task_not_found(harness: Harness, clock: FakeClock) -> None:
    await started(harness, clock)
    with pytest.raises(TaskNotFound):
        await client(harness).get_task("no-such-task")
    with pytest.raises(TaskNotFound):
        await harness.running.complete_task("no-such-task", {"approved": True})


async def test_task_completed_from_outside_wakes_the_evicted_run(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock)
    outside = client(harness)
    (task,) = await outside.list_tasks(assignee="bob")
    await outside.complete_task(task.task_id, {"approved": False})
    await claim_due(clock)
    assert await outcome(handle) == {"approved": False}


async def test_restart_while_a_task_is_open_does_not_create_a_second_task(
    harness: Harness, clock: FakeClock
) -> None:
    handle = await started(harness, clock, timeout=2 * DAY)
    await advance(clock, DAY)
    await harness.restart(review(timeout=2 * DAY))
    await clock.settle()
    tasks = await client(harness).list_tasks(run_id=handle.run_id, status=None)
    assert len(tasks) == 1
    await harness.running.complete_task(tasks[0].task_id, {"approved": True})
    await claim_due(clock)
    assert await outcome(harness.running.handle(handle.run_id)) == {"approved": True}
    history = await harness.running.history(handle.run_id)
    assert len(of_kind(history, EventKind.TASK_CREATED)) == 1


async def test_task_without_a_form_accepts_any_response(harness: Harness, clock: FakeClock) -> None:
    handle = await started(harness, clock, form=None)
    (task,) = await client(harness).list_tasks(assignee="bob")
    await harness.running.complete_task(task.task_id, ["anything", 1])
    await claim_due(clock)
    assert await outcome(handle) == ["anything", 1]


async def test_app_complete_task_wakes_the_run_when_the_clock_is_set_before_today() -> None:
    async with harness_at(BEFORE_TODAY) as harness:
        handle = await started(harness, harness.clock)
        (task,) = await client(harness).list_tasks(assignee="bob")
        await harness.running.complete_task(task.task_id, {"approved": True})
        await advance(harness.clock, SECOND)
        assert await status(harness.store, handle.run_id) is RunStatus.COMPLETED
