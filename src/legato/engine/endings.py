"""How a run ends: failed (then maybe compensated), blocked, or continued as a new run.

The completed and cancelled ends are written by ``RunExecution.end`` and the saga; these
are the ends that decide something first (what error to record, whether to compensate,
which run continues this one).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from legato.engine import saga
from legato.errors import (
    DefinitionError,
    NonDeterminismError,
    RunCancelled,
    StepFailed,
    describe_exception,
)
from legato.model import RunStatus, records
from legato.model.ids import continued_run_id
from legato.model.payloads import dumps, encode
from legato.model.runs import CONTINUED_AS_NEW
from legato.storage.base import NewRun

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution

log = logging.getLogger("legato.engine.execution")  # the run's log lines keep one logger


async def continue_as_new(ex: RunExecution, args: tuple[Any, ...]) -> BaseException | None:
    """End this run and create the one that continues it, in one commit."""
    if ex.parent_run_id is not None:
        return DefinitionError(
            f"run {ex.run_id!r} is a child run: legato.continue_as_new() is not "
            "supported there yet (its parent waits for this run id)"
        )
    try:
        ex.workflow.check_arguments(args)
        payload = encode(
            list(args),
            f"the arguments of workflow {ex.workflow.name!r}",
            ex.engine.max_payload_bytes,
        )
    except DefinitionError as exc:
        return exc
    next_id = continued_run_id(ex.run_id)
    now = ex.engine.clock.time()
    timeout_s = ex.workflow.timeout_s
    successor = NewRun(
        next_id,
        ex.workflow.name,
        RunStatus.PENDING.value,
        payload,
        now,
        None if timeout_s is None else now + timeout_s,
        None,
        traceparent=ex.traceparent,
    )
    output = dumps({CONTINUED_AS_NEW: next_id})
    await ex.end(RunStatus.COMPLETED, records.RunContinued(next_id), output=output, first=successor)
    log.info("run %s (%s) continued as %s", ex.run_id, ex.workflow.name, next_id)
    ex.engine.poke()  # claim the successor here at once
    return None


async def block(ex: RunExecution, error: NonDeterminismError) -> None:
    described = describe_exception(error)
    record = records.RunBlocked(
        described["type"], described["message"], error.seq, error.recorded, error.requested
    )
    log.error("%s", error)
    blocked = ex.record(record)
    await ex.end(RunStatus.BLOCKED, None, error=record.data(), error_pos=blocked.pos, first=blocked)


async def fail(ex: RunExecution, failure: BaseException) -> bool:
    """Record the failure; True if completed steps must now be compensated."""
    if isinstance(failure, StepFailed):
        # The step's own error, not StepFailed: what went wrong, in which step.
        failed = records.RunFailed(
            failure.error_type, failure.error_message, failure.step_name, failure.attempts
        )
    else:
        described = describe_exception(failure)
        cancelled = isinstance(failure, RunCancelled)
        failed = records.RunFailed(described["type"], described["message"], cancelled=cancelled)
    error = failed.data()
    # A child still running would work for a parent that no longer waits for it (a
    # timeout, or a sibling branch's failure): it is cancelled and compensates itself.
    # Children that have ended are left as they are.
    await ex.engine.cancel_children(ex.index.children)
    record = ex.record(failed)
    ex.index.failure, ex.index.failure_pos = failed, record.pos
    ex.compensating = True
    if not saga.stack(ex):
        if failed.cancelled:
            await ex.end(
                RunStatus.CANCELLED,
                records.RunCancelled(),
                error=error,
                error_pos=record.pos,
                first=record,
            )
        else:
            await ex.end(RunStatus.FAILED, None, error=error, error_pos=record.pos, first=record)
        return False
    # Not awaited: the failure is already durable in the records that caused it (a
    # final step_failed, a cancel flag, a deadline), so replay reaches it again; these
    # commit with the first compensation's record.
    ex.engine.journal.submit_nowait(record)
    ex.engine.journal.submit_nowait(
        ex.set_run(RunStatus.COMPENSATING, error=error, error_pos=record.pos)
    )
    return True
