"""Compensation: undo completed steps, newest first, each as a durable retried call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from legato.engine.calls import Attempt, GaveUp, attempts
from legato.model import RunStatus, records
from legato.model.index import CompensationRecord

if TYPE_CHECKING:
    from legato.engine.execution import Completed, RunExecution


def stack(ex: RunExecution) -> list[Completed]:
    """Completed compensable steps, newest completion first."""
    from legato.engine.execution import Completed

    if ex.completed:
        return sorted(ex.completed, key=lambda c: c.pos, reverse=True)
    # Resumed without replaying the workflow (crash while compensating, or cancelled
    # before it ran again): rebuild the stack from history.
    entries = []
    for key in ex.index.completed_order:
        call = ex.index.calls[key]
        if call.args is not None:
            assert call.completed_pos is not None and call.name is not None
            entries.append(
                Completed(
                    call.completed_pos, key, call.name, call.args, call.kwargs or {}, call.result
                )
            )
    return sorted(entries, key=lambda c: c.pos, reverse=True)


async def compensate(ex: RunExecution) -> None:
    """Run every pending compensation; end compensated, cancelled or compensation_failed."""
    failure = ex.index.failure
    assert failure is not None
    for entry in stack(ex):
        record = ex.index.compensations.get(entry.key) or CompensationRecord()
        if record.completed:
            continue
        error = await _compensate_one(ex, entry, record)
        if error is not None:
            details = {
                "type": error.type,
                "message": error.message,
                "step": entry.name,
                "compensation": True,
                "attempts": error.attempts,
                "cause": failure.data(),
            }
            await ex.end(RunStatus.COMPENSATION_FAILED, None, error=details)
            return
    # The run's error stays its run_failed record (by reference, when its position is known).
    status, last = (
        (RunStatus.CANCELLED, records.RunCancelled())
        if failure.cancelled
        else (RunStatus.COMPENSATED, records.RunCompensated())
    )
    await ex.end(status, last, error=failure.data(), error_pos=ex.index.failure_pos)


async def _compensate_one(
    ex: RunExecution, entry: Completed, record: CompensationRecord
) -> records.AttemptFailed | None:
    """Run one compensation with its retries; return its final failure, or None."""
    step = ex.engine.registry.steps.get(entry.name)
    compensation = step.compensation if step is not None else None
    if compensation is None:
        missing = records.CompensationFailed(
            entry.key,
            entry.name,
            0,
            "legato.errors.DefinitionError",
            f"step {entry.name!r} has no compensation registered in this app any more; "
            "deploy it, then retry the compensation",
            0,
            final=True,
        )
        await ex.commit(ex.record(missing))
        return missing
    step_key = f"{ex.run_id}:{entry.key}:compensate"
    failed = record.failed_attempts

    plan = Attempt(
        compensation.fn,
        compensation.is_async,
        (*entry.args, entry.result),
        entry.kwargs,
        step_key,
        compensation.name,
        compensation.timeout_s,
        None,
    )

    try:
        done, data = await attempts(
            ex,
            key=entry.key,
            name=entry.name,
            policy=compensation.retry,
            failures=failed,
            retry_at=record.retry_at,
            started=records.CompensationStarted,
            failed=records.CompensationFailed,
            plan=plan,
            interruptible=False,
        )
    except GaveUp as gave_up:
        return gave_up.failure
    await ex.commit(ex.record(done, data))
    return None
