"""What a cancel, a resume, a signal and a task answer *mean*: decided here, once.

The engine and the clients (``Client``, ``AsyncClient``, the CLI, later the HTTP API) call
these functions; the store only applies the primitive writes they choose. Each operation
reads the row, decides, and writes one batch guarded by what it read (status, owner),
so a worker that claims or releases the run in between makes the batch conflict and
write nothing; then the operation reads again and decides again.

The wake rules live here too: a signal makes a run parked waiting for an event due at
once, and an owner that lets go of a run (``after_release``) makes it due at once when a
cancel or a signal arrived while it was deciding to park, so no run is left asleep with
work waiting for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from legato.errors import ConcurrencyConflict
from legato.model import EventKind, HistoryEvent, Run, RunStatus, Task, TaskStatus, records
from legato.model.waits import TASK_SIGNAL_PREFIX
from legato.storage.base import (
    Append,
    NewRun,
    NewSignal,
    Store,
    UpdateRun,
    UpdateTask,
    Write,
)

T = TypeVar("T")

UNFINISHED = tuple(s.value for s in RunStatus if not s.is_terminal)
"""Statuses of a run that has not ended (``blocked`` counts as ended)."""

_ATTEMPTS = 50
"""Reads-and-decides per operation before giving up (each conflict means the run moved)."""


def signal_ops(run_id: str, name: str, payload: bytes | None, at: float) -> list[Write]:
    """Store a signal, and make the run due at once if it is parked waiting for an event.

    A run held by a worker is not touched: its owner sees the signal (it polls, or its
    ``after_release`` writes wake it if it parks meanwhile).
    """
    return [
        NewSignal(run_id, name, payload, at),
        UpdateRun(
            run_id,
            if_status=(RunStatus.WAITING.value,),
            if_unowned=True,
            if_wake_after=at,  # never postpone a run due earlier
            wake_at=at,
            required=False,
        ),
    ]


def after_release(run_id: str, at: float, signal_watermark: int | None) -> list[Write]:
    """The writes that follow an owner's release of a run, in the same batch.

    A cancel requested while the owner was letting go makes the run due at once, to be
    cancelled; so does, for a run that parks waiting for an event (``signal_watermark``
    set: the last signal it has seen), a signal newer than the watermark.
    """
    ops: list[Write] = [
        UpdateRun(
            run_id,
            if_status=UNFINISHED,
            if_unowned=True,
            if_cancel_requested=True,
            wake_at=at,
            required=False,
        )
    ]
    if signal_watermark is not None:
        ops.append(
            UpdateRun(
                run_id,
                if_status=UNFINISHED,
                if_unowned=True,
                if_signal_after=signal_watermark,
                wake_at=at,
                required=False,
            )
        )
    return ops


async def _retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    for _ in range(_ATTEMPTS - 1):
        try:
            return await attempt()
        except ConcurrencyConflict:
            continue  # the run moved between our read and our write: read it again
    return await attempt()


async def request_cancel(store: Store, run_id: str, at: float, by: str | None = None) -> Run | None:
    """Ask for the run to be cancelled; returns the run as it is afterwards (None: unknown).

    A run still ``pending`` and unowned has done nothing, so it becomes ``cancelled`` at
    once (with ``cancel_requested`` and ``run_cancelled`` records). An owned run only gets
    the flag: its owner records and carries out the cancellation. An unowned run that
    waits is made due, so a worker picks it up and cancels it; so is a ``blocked`` run,
    which becomes ``running`` again (cancelling compensates it from its history, without
    replay). A run that ended is left as it is.

    ``by`` (who asked) goes into the ``cancel_requested`` record, which is written here
    for every run no worker holds (guarded by "unowned"); a run a worker holds gets the
    flag and ``cancel_by``, and its worker writes the record with that.
    """

    async def attempt() -> Run | None:
        run = await store.get_run(run_id)
        if run is None:
            return None
        status = run.status
        if status.is_terminal and status is not RunStatus.BLOCKED:
            return run
        ops: list[Write]
        requested = records.CancelRequested(by=by).stored()
        if status is RunStatus.BLOCKED:
            ops = [
                UpdateRun(
                    run_id,
                    if_status=(status.value,),
                    if_unowned=True,
                    status=RunStatus.RUNNING.value,
                    cancel_requested=True,
                    cancel_by=by,
                    wake_at=at,
                    updated_at=at,
                ),
                Append(run_id, await store.last_pos(run_id) + 1, *requested, at),
            ]
        elif run.owner is not None:
            ops = [
                UpdateRun(
                    run_id,
                    if_status=UNFINISHED,
                    if_owner=run.owner,
                    cancel_requested=True,
                    cancel_by=by,
                    updated_at=at,
                )
            ]
        elif status is RunStatus.PENDING:
            # Nobody executes the run, so nobody else appends to its history.
            pos = await store.last_pos(run_id)
            ops = [
                UpdateRun(
                    run_id,
                    if_status=(status.value,),
                    if_unowned=True,
                    status=RunStatus.CANCELLED.value,
                    cancel_requested=True,
                    cancel_by=by,
                    wake_at=None,
                    updated_at=at,
                ),
                Append(run_id, pos + 1, *requested, at),
                Append(run_id, pos + 2, *records.RunCancelled().stored(), at),
            ]
        else:  # parked: wake it, so that a worker claims it and cancels it
            ops = [
                UpdateRun(
                    run_id,
                    if_status=(status.value,),
                    if_unowned=True,
                    cancel_requested=True,
                    cancel_by=by,
                    wake_at=at,
                    updated_at=at,
                ),
                Append(run_id, await store.last_pos(run_id) + 1, *requested, at),
            ]
        await store.write(ops)
        return await store.get_run(run_id)

    return await _retrying(attempt)


async def resume_blocked(store: Store, run_id: str, at: float, by: str | None = None) -> Run | None:
    """Make a ``blocked`` run due again, recording ``run_resumed`` (with ``by``, who did
    it); None if unknown.

    Returns the run as it is afterwards; a run that was not blocked is left as it is.
    """

    async def attempt() -> Run | None:
        run = await store.get_run(run_id)
        if run is None or run.status is not RunStatus.BLOCKED:
            return run
        pos = await store.last_pos(run_id)
        resumed = records.RunResumed(by=by)
        return await _reopen(store, run, RunStatus.RUNNING, resumed, pos, at, unowned=False)

    return await _retrying(attempt)


async def retry_failed(store: Store, run_id: str, at: float, by: str | None) -> Run | None:
    """Make a ``failed`` run due again from its failed step, recording ``run_retried``
    (with ``by``); None if unknown. Returns the run as it is afterwards: ``running`` once
    retried, or as it was if it had not failed.

    Its recorded steps are kept: replay returns their results. The failure that ended it
    counts for nothing from here, nor do the failed attempts of the step that gave up (the
    last final ``step_failed`` of the step ``run_failed`` names), which runs again from its
    first attempt. A failure the workflow's own code raised is replayed up to, and runs
    again from there: retry after deploying the fix.
    """

    async def attempt() -> Run | None:
        run = await store.get_run(run_id)
        if run is None or run.status is not RunStatus.FAILED:
            return run
        history = await store.history(run_id)
        failure = next(
            (e.record for e in reversed(history) if e.kind == EventKind.RUN_FAILED), None
        )
        step = failure.step if isinstance(failure, records.RunFailed) else None
        key = next(
            (
                e.key
                for e in reversed(history)
                if e.kind == EventKind.STEP_FAILED and e.name == step and _final(e)
            ),
            None,
        )
        retried = records.RunRetried(key, run.error or {}, step if key else None, by)
        return await _reopen(store, run, RunStatus.RUNNING, retried, _last(history), at)

    return await _retrying(attempt)


async def resume_compensation(store: Store, run_id: str, at: float, by: str | None) -> Run | None:
    """Make a run in ``compensation_failed`` compensate again, recording
    ``compensation_resumed`` (with ``by``); None if unknown. The compensations that gave up
    start again from their first attempt, then the rest go on, newest first; the run ends
    ``compensated`` (or ``cancelled``), or ``compensation_failed`` again. Returns the run
    as it is afterwards: ``compensating``, or as it was if it was not
    ``compensation_failed``."""

    async def attempt() -> Run | None:
        run = await store.get_run(run_id)
        if run is None or run.status is not RunStatus.COMPENSATION_FAILED:
            return run
        pos = await store.last_pos(run_id)
        resumed = records.CompensationResumed(run.error or {}, by)
        return await _reopen(store, run, RunStatus.COMPENSATING, resumed, pos, at)

    return await _retrying(attempt)


async def _reopen(
    store: Store,
    run: Run,
    to: RunStatus,
    record: records.Record,
    pos: int,
    at: float,
    *,
    unowned: bool = True,
) -> Run | None:
    """Make ``run`` (as read: its status guards the write, and, ``unowned``, no worker may
    hold it) ``to`` and due at once, its error cleared, with ``record`` after ``pos``; the
    run as it is afterwards. What resume, retry and resume compensation write."""
    await store.write(
        [
            UpdateRun(
                run.run_id,
                if_status=(run.status.value,),
                if_unowned=unowned,
                status=to.value,
                clear_error=True,
                wake_at=at,
                updated_at=at,
            ),
            Append(run.run_id, pos + 1, *record.stored(), at),
        ]
    )
    return await store.get_run(run.run_id)


async def restart(store: Store, run: Run, new: NewRun, at: float, by: str | None) -> dict[str, str]:
    """Create ``new`` (the same workflow and input as ``run``, which has ended) and record
    ``run_restarted`` in ``run``'s history, in one batch guarded by ``run``'s status; the
    store's conflicts (``new``'s id taken: ``{id: its workflow}``) are returned, and then
    nothing is written."""

    async def attempt() -> dict[str, str]:
        taken = await store.get_run(new.run_id)
        if taken is not None:
            return {new.run_id: taken.workflow}
        pos = await store.last_pos(run.run_id)
        restarted = records.RunRestarted(new.run_id, by)
        return await store.write(
            [
                UpdateRun(run.run_id, if_status=(run.status.value,), if_unowned=True),
                new,
                Append(run.run_id, pos + 1, *restarted.stored(), at),
            ]
        )

    return await _retrying(attempt)


def _final(event: HistoryEvent) -> bool:
    return isinstance(event.data, dict) and bool(event.data.get("final"))


def _last(history: list[HistoryEvent]) -> int:
    return history[-1].pos if history else 0


async def send_signal(
    store: Store, run_id: str, name: str, payload: bytes | None, at: float
) -> tuple[Run | None, bool]:
    """Send a signal unless the run is unknown or ended.

    Returns ``(None, True)`` once sent, else ``(the run as read, False)`` (None: unknown).
    One write when the run is there to receive it: the batch is guarded by "not ended",
    and only a refused batch costs a read, to say why.
    """

    async def attempt() -> tuple[Run | None, bool]:
        guard = UpdateRun(run_id, if_status=UNFINISHED)  # the run has not ended
        try:
            await store.write([guard, *signal_ops(run_id, name, payload, at)])
        except ConcurrencyConflict:
            run = await store.get_run(run_id)
            if run is None or run.status.is_terminal:
                return run, False
            raise  # it moved between the two: try again
        return None, True

    return await _retrying(attempt)


def task_signal(task_id: str) -> str:
    """The name of the signal that carries a task's response to its run."""
    return TASK_SIGNAL_PREFIX + task_id


async def complete_task(
    store: Store, task_id: str, response: bytes, at: float, by: str | None = None
) -> tuple[Task | None, bool]:
    """Complete an open task: store the response (and ``by``, who answered) and signal
    its run, atomically.

    Returns the task as it is afterwards and whether this call completed it (False if it
    was not open, so a task is completed at most once).
    """

    async def attempt() -> tuple[Task | None, bool]:
        task = await store.get_task(task_id)
        if task is None or task.status is not TaskStatus.OPEN:
            return task, False
        await store.write(
            [
                # Wait for a worker parking the run at this moment (a lock on its row, as
                # send_signal's guard takes): else neither would see the other's change,
                # and the run would wait forever for the answer given.
                UpdateRun(task.run_id, if_status=UNFINISHED, required=False),
                UpdateTask(
                    task.run_id,
                    task_id,
                    TaskStatus.OPEN.value,
                    TaskStatus.COMPLETED.value,
                    response,
                    at,
                    by,
                ),
                *signal_ops(task.run_id, task_signal(task_id), response, at),
            ]
        )
        return await store.get_task(task_id), True

    return await _retrying(attempt)
