"""Operator actions on the clients: retry a failed run from its failed step, resume the
compensation of a run in ``compensation_failed``, restart a run as a new one, and the
bulk form of every action (cancel and resume too) over a filter, with a preview first;
and claiming a human task.

Each action is written to the run's history with who did it (``by``: an API token's name,
the CLI's user) and when: ``run_retried``, ``compensation_resumed``, ``run_restarted``,
``cancel_requested``, ``run_resumed`` (docs/history.md). What each one means is decided in
``legato/lifecycle.py``; these methods check, call it and say what happened.

A bulk action first previews: how many runs the filter selects among those the action
applies to (a retry takes ``failed`` runs, say), a few of their ids, and a ``confirm``
token naming exactly that set. Applying it with the token acts on the same runs, or, if
the set changed meanwhile, does nothing and raises ``BulkChanged`` with the new preview.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from legato import lifecycle
from legato.errors import (
    BulkChanged,
    DefinitionError,
    RunError,
    RunNotFound,
    TaskClaimed,
    TaskClosed,
    TaskNotFound,
)
from legato.model import Run, RunStatus, Task, TaskStatus
from legato.model.ids import check_run_id
from legato.model.ids import new_run_id as fresh_run_id
from legato.model.payloads import encode
from legato.model.times import timestamp_of
from legato.storage.base import NewRun, RunSearch, Store

T = TypeVar("T")

BULK_ACTIONS: dict[str, tuple[RunStatus, ...]] = {
    "cancel": (*(s for s in RunStatus if not s.is_terminal), RunStatus.BLOCKED),
    "resume": (RunStatus.BLOCKED,),
    "retry": (RunStatus.FAILED,),
    "resume_compensation": (RunStatus.COMPENSATION_FAILED,),
    "restart": tuple(s for s in RunStatus if s.is_terminal and s is not RunStatus.BLOCKED),
}
"""Each bulk action, and the statuses of the runs it applies to."""

BULK_MAX = 10_000
"""The most runs one bulk action takes: narrow the filter (a time range) past that."""

SAMPLE = 20
"""How many run ids a preview lists."""


@dataclass(frozen=True, slots=True)
class BulkPreview:
    """What a bulk action would act on: ``count`` runs (the first ``SAMPLE`` ids, newest
    first, in ``run_ids``); pass ``confirm`` to apply it to exactly those."""

    action: str
    count: int
    run_ids: list[str]
    confirm: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action did: the runs it acted on, those it skipped (they moved on
    between the preview and their turn) with why, and for a restart the new run ids."""

    action: str
    done: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    restarted: dict[str, str] = field(default_factory=dict)  # old run id -> new run id


def confirm_token(action: str, run_ids: list[str]) -> str:
    """The ``confirm`` token of a bulk preview: a digest of the action and of the ids it
    takes, in any order."""
    digest = hashlib.sha256(action.encode())
    for run_id in sorted(run_ids):
        digest.update(b"\0" + run_id.encode())
    return digest.hexdigest()[:20]


def _preview(action: str, ids: list[str]) -> BulkPreview:
    return BulkPreview(action, len(ids), ids[:SAMPLE], confirm_token(action, ids))


class AsyncOperationsClient:
    """The operator actions of ``AsyncClient``."""

    _time: Callable[[], float]
    max_payload_bytes: int

    async def _open(self) -> Store:
        raise NotImplementedError

    async def cancel(self, run_id: str, *, by: str | None = None) -> RunStatus:
        raise NotImplementedError

    async def resume(self, run_id: str, *, by: str | None = None) -> RunStatus:
        raise NotImplementedError

    async def retry(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Retry a ``failed`` run from its failed step: its recorded steps are kept (not
        run again), the step that gave up runs again from its first attempt, and the run
        goes on from there. ``by``: who did it, for its history. Returns its status
        (``running``). Raises ``RunNotFound``, or ``RunError`` if it has not failed or is
        a child run (its failure went to its parent: retry the parent)."""
        store = await self._open()
        run = await store.get_run(run_id)
        if run is not None and run.parent_run_id is not None:
            raise RunError(
                f"run {run_id!r} is a child of run {run.parent_run_id!r}, which has its "
                "failure already: retry or restart the parent",
                run_id=run_id,
            )
        run = await lifecycle.retry_failed(store, run_id, self._time(), by)
        return _moved(run, run_id, RunStatus.RUNNING, "retried", "failed")

    async def resume_compensation(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Compensate a run in ``compensation_failed`` again: the compensations that gave
        up start again from their first attempt (deploy the fix first), then the rest go
        on, newest first. Returns its status (``compensating``). Raises ``RunNotFound``,
        or ``RunError`` if it is not in ``compensation_failed``."""
        store = await self._open()
        run = await lifecycle.resume_compensation(store, run_id, self._time(), by)
        return _moved(
            run, run_id, RunStatus.COMPENSATING, "compensated again", "compensation_failed"
        )

    async def restart(
        self, run_id: str, *, new_run_id: str | None = None, by: str | None = None
    ) -> str:
        """Start a new run of an ended run's workflow with the same input, in the same
        flow (its correlation id), and record ``run_restarted`` (naming it) in the old
        run's history. Returns the new run's id (``new_run_id``, else a new one). Raises
        ``RunNotFound``, ``RunError`` if the run has not ended (cancel it first) or
        ``RunAlreadyExists`` if ``new_run_id`` is taken."""
        store = await self._open()
        run = await store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status not in BULK_ACTIONS["restart"]:
            raise RunError(
                f"run {run_id!r} is {run.status.value}: only a run that has ended can be "
                "restarted (cancel it first)",
                run_id=run_id,
            )
        fresh = fresh_run_id() if new_run_id is None else check_run_id(new_run_id)
        new = NewRun(
            fresh,
            run.workflow,
            RunStatus.PENDING.value,
            encode(run.input, f"the input of run {run_id!r}", self.max_payload_bytes),
            self._time(),
            None,
            None,
            correlation_id=run.correlation,
        )
        conflicts = await lifecycle.restart(store, run, new, self._time(), by)
        if fresh in conflicts:
            raise RunError(f"run id {fresh!r} is taken: choose another", run_id=fresh)
        return fresh

    async def claim_task(self, task_id: str, assignee: str) -> Task:
        """Take an open human task: ``assignee`` (who claims it) becomes its assignee.
        Claiming one's own task again changes nothing. Raises ``TaskNotFound``,
        ``TaskClosed`` if it is not open, ``TaskClaimed`` if someone else has it."""
        if not isinstance(assignee, str) or not assignee.strip():
            raise DefinitionError(f"assignee must be a non-empty name, got {assignee!r}")
        store = await self._open()
        claimed = await store.claim_task(task_id, assignee)
        task = await store.get_task(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if not claimed:
            if task.status is not TaskStatus.OPEN:
                raise TaskClosed(task_id, task.status.value)
            raise TaskClaimed(task_id, task.assignee or "")
        return task

    # -- bulk ------------------------------------------------------------------------------

    async def preview_bulk(
        self,
        action: str,
        *,
        status: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        correlation_id: str | None = None,
        run_id_prefix: str | None = None,
    ) -> BulkPreview:
        """How many runs ``action`` (``cancel``, ``resume``, ``retry``,
        ``resume_compensation`` or ``restart``) would take: those the filter selects
        among the runs it applies to. Raises ``DefinitionError`` for an unknown action, a
        status it does not apply to, or over ``BULK_MAX`` runs."""
        runs = await self._selected(
            action, status, workflow, since, until, correlation_id, run_id_prefix
        )
        return _preview(action, [r.run_id for r in runs])

    async def apply_bulk(
        self,
        action: str,
        confirm: str,
        *,
        status: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        correlation_id: str | None = None,
        run_id_prefix: str | None = None,
        by: str | None = None,
    ) -> BulkResult:
        """Apply ``action`` to the runs the same filter selects, if they are still the
        ones ``confirm`` (a preview's) names; else raise ``BulkChanged`` (nothing done)
        with the new preview. Each run is recorded as acted on ``by``; one that moved on
        in the meantime is skipped, with why."""
        runs = await self._selected(
            action, status, workflow, since, until, correlation_id, run_id_prefix
        )
        ids: list[str] = [r.run_id for r in runs]
        now = _preview(action, ids)
        if now.confirm != confirm:
            raise BulkChanged(action, now)
        result = BulkResult(action, [])
        for run_id in ids:
            try:
                if action == "restart":
                    result.restarted[run_id] = await self.restart(run_id, by=by)
                else:
                    await self.act(action, run_id, by=by)
            except RunError as exc:
                result.skipped[run_id] = str(exc)
            else:
                result.done.append(run_id)
        return result

    async def act(self, action: str, run_id: str, *, by: str | None = None) -> RunStatus:
        """One operator action on one run, by name: ``cancel``, ``resume``, ``retry`` or
        ``resume_compensation`` (``restart`` makes a new run: call ``restart``). Returns
        the run's status afterwards; ``DefinitionError`` for another name."""
        acts: dict[str, Callable[..., Awaitable[RunStatus]]] = {
            "cancel": self.cancel,
            "resume": self.resume,
            "retry": self.retry,
            "resume_compensation": self.resume_compensation,
        }
        if action not in acts:
            raise DefinitionError(
                f"unknown action {action!r}: one of {', '.join(acts)} (or call restart)"
            )
        return await acts[action](run_id, by=by)

    async def _selected(
        self,
        action: str,
        status: str | None,
        workflow: str | None,
        since: datetime | None,
        until: datetime | None,
        correlation_id: str | None,
        run_id_prefix: str | None,
    ) -> list[Run]:
        if action not in BULK_ACTIONS:
            raise DefinitionError(
                f"unknown bulk action {action!r}: one of {', '.join(BULK_ACTIONS)}"
            )
        statuses = BULK_ACTIONS[action]
        if status is not None:
            wanted = RunStatus(status)
            if wanted not in statuses:
                raise DefinitionError(
                    f"a bulk {action} takes runs that are "
                    f"{', '.join(s.value for s in statuses)}; not {status}"
                )
            statuses = (wanted,)
        search = RunSearch(
            created_after=timestamp_of(since, "since"),
            created_before=timestamp_of(until, "until"),
            correlation_id=correlation_id,
            run_id_prefix=run_id_prefix,
        )
        store = await self._open()
        runs: list[Run] = []
        for each in statuses:
            runs += await store.list_runs(
                status=each.value,
                workflow=workflow,
                limit=BULK_MAX + 1,
                payloads=False,
                search=search,
            )
        if len(runs) > BULK_MAX:
            raise DefinitionError(
                f"over {BULK_MAX:,} runs match this bulk {action}: narrow the filter "
                "(a workflow, a time range)"
            )
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return runs


def _moved(run: Run | None, run_id: str, expected: RunStatus, done: str, needed: str) -> RunStatus:
    if run is None:
        raise RunNotFound(run_id)
    if run.status is not expected:
        raise RunError(
            f"run {run_id!r} is {run.status.value}, not {needed}: it cannot be {done}",
            run_id=run_id,
        )
    return run.status


class OperationsClient:
    """The blocking twins of ``AsyncOperationsClient``'s methods, for ``Client``."""

    _async: AsyncOperationsClient

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    def retry(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Retry a failed run from its failed step (see ``AsyncClient.retry``)."""
        return self._call(self._async.retry, run_id, by=by)

    def resume_compensation(self, run_id: str, *, by: str | None = None) -> RunStatus:
        """Compensate a run in ``compensation_failed`` again."""
        return self._call(self._async.resume_compensation, run_id, by=by)

    def restart(self, run_id: str, *, new_run_id: str | None = None, by: str | None = None) -> str:
        """Start an ended run again as a new run; returns its id."""
        return self._call(self._async.restart, run_id, new_run_id=new_run_id, by=by)

    def act(self, action: str, run_id: str, *, by: str | None = None) -> RunStatus:
        """One operator action on one run, by name (see ``AsyncClient.act``)."""
        return self._call(self._async.act, action, run_id, by=by)

    def claim_task(self, task_id: str, assignee: str) -> Task:
        """Take an open human task (see ``AsyncClient.claim_task``)."""
        return self._call(self._async.claim_task, task_id, assignee)

    def preview_bulk(self, action: str, **filters: Any) -> BulkPreview:
        """How many runs a bulk action would take (see ``AsyncClient.preview_bulk``)."""
        return self._call(self._async.preview_bulk, action, **filters)

    def apply_bulk(self, action: str, confirm: str, **filters: Any) -> BulkResult:
        """Apply a previewed bulk action (see ``AsyncClient.apply_bulk``)."""
        return self._call(self._async.apply_bulk, action, confirm, **filters)
