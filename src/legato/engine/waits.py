"""Durable waits: timers, signals, human tasks and child runs.

Each wait records that it started (with its deadline) before it waits, and records how
it ended before the workflow moves on. While it waits the run is parked; if nothing else
goes on, it is evicted and resumed by replay when its time comes or an event wakes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from legato.errors import (
    ChildFailed,
    DefinitionError,
    RunAlreadyExists,
    RunError,
    WaitTimeout,
)
from legato.model import RunStatus, records
from legato.model.payloads import dumps, encode
from legato.model.waits import CHILD_SIGNAL_PREFIX, TASK_SIGNAL_PREFIX
from legato.observability import tracing
from legato.storage.base import CloseTasks, NewRun, NewSignal, NewTask, Write

if TYPE_CHECKING:
    from legato.engine.execution import RunExecution
    from legato.engine.registry import Workflow

MAX_WAIT = timedelta(days=365 * 100)
"""Longer than this is a mistake (a duration in ms passed as seconds, say), not a plan."""


def seconds_of(duration: timedelta, what: str) -> float:
    """Validate a wait's duration and return it in seconds."""
    if not isinstance(duration, timedelta):
        raise DefinitionError(f"{what} takes a datetime.timedelta, got {duration!r}")
    if duration < timedelta(0):
        raise DefinitionError(f"{what} cannot be negative, got {duration}")
    if duration > MAX_WAIT:
        raise DefinitionError(f"{what} of {duration} is longer than 100 years")
    return duration.total_seconds()


def timestamp_of(when: datetime, now: float) -> float:
    """Validate an absolute time (aware, within 100 years of ``now``); Unix seconds."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise DefinitionError(f"sleep_until takes an aware datetime, got {when!r}")
    if when - datetime.fromtimestamp(now, UTC) > MAX_WAIT:
        raise DefinitionError(f"sleep_until({when.isoformat()}) is more than 100 years away")
    return when.timestamp()


async def sleep_until(ex: RunExecution, when: float) -> None:
    """Wait until ``when``; the run survives restarts meanwhile."""
    ex.check_interrupt()
    key = ex.next_key()
    record = ex.replayed(key, "timer", None)
    if record is None:
        await ex.commit(ex.record(records.TimerStarted(key, when)))
    elif record.done:
        return
    else:
        assert record.wake_at is not None
        when = record.wake_at
    while ex.engine.clock.time() < when:
        await ex.park(key, when, waiting=False)
    ex.engine.journal.submit_nowait(ex.record(records.TimerFired(key)))
    ex.check_interrupt()


async def wait_for_signal(ex: RunExecution, name: str, timeout: timedelta | None) -> Any:
    """Return the payload of the next signal ``name``; ``WaitTimeout`` if none in time."""
    if not isinstance(name, str) or not name or name.startswith("__"):
        raise DefinitionError(
            f"signal names are non-empty strings not starting with '__', got {name!r}"
        )
    timeout_s = None if timeout is None else seconds_of(timeout, "wait_for_signal timeout")
    ex.check_interrupt()
    key = ex.next_key()
    record = ex.replayed(key, "signal", name)
    if record is not None and record.done:
        if record.timed_out:
            raise WaitTimeout(f"signal {name!r}", timeout_s)
        return record.payload
    if record is None:
        timeout_at = None if timeout_s is None else ex.engine.clock.time() + timeout_s
        await ex.commit(ex.record(records.WaitStarted(key, name, timeout_at)))
    else:
        timeout_at = record.wake_at
    return await await_signal(ex, key, name, name, timeout_at, timeout_s, what=f"signal {name!r}")


async def human_task(
    ex: RunExecution,
    name: str,
    data: Any,
    assignee: str | None,
    form: dict[str, Any] | None,
    timeout: timedelta | None,
) -> Any:
    """Put a task in the inbox and return the validated response; ``WaitTimeout`` if late."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"a human task needs a name, got {name!r}")
    timeout_s = None if timeout is None else seconds_of(timeout, "human_task timeout")
    ex.check_interrupt()
    key = ex.next_key()
    record = ex.replayed(key, "task", name)
    task_id = f"{ex.run_id}:{key}"
    ex.has_tasks = True
    if record is not None and record.done:
        if record.timed_out:
            raise WaitTimeout(f"human task {name!r}", timeout_s)
        return record.payload
    if record is None:
        if form is not None:
            import jsonschema  # here: it costs 0.1 s to import, and few runs need it

            try:
                jsonschema.validators.validator_for(form).check_schema(form)
            except jsonschema.SchemaError as exc:
                raise DefinitionError(
                    f"the form of task {name!r} is not a valid JSON Schema: {exc.message}"
                ) from None
        now = ex.engine.clock.time()
        timeout_at = None if timeout_s is None else now + timeout_s
        await ex.commit(
            ex.record(records.TaskCreated(key, name, task_id, timeout_at)),
            NewTask(
                ex.run_id,
                task_id,
                name,
                encode(data, f"the data of task {name!r}", ex.engine.max_payload_bytes),
                assignee,
                None if form is None else dumps(form),
                now,
                timeout_at,
            ),
        )
    else:
        timeout_at = record.wake_at
    return await await_signal(
        ex,
        key,
        name,
        TASK_SIGNAL_PREFIX + task_id,
        timeout_at,
        timeout_s,
        what=f"human task {name!r}",
        task_id=task_id,
    )


async def child(
    ex: RunExecution, workflow: Workflow[..., Any], args: tuple[Any, ...], run_id: str | None
) -> Any:
    """Start a child run and return its result; ``ChildFailed`` if it does not complete."""
    workflow.check_arguments(args)
    ex.check_interrupt()
    key = ex.next_key()
    record = ex.replayed(key, "child", workflow.name)
    if record is not None and record.done:
        return _child_result(record.target or "", record.payload)
    if record is None:
        payload = encode(
            list(args),
            f"the arguments of child workflow {workflow.name!r}",
            ex.engine.max_payload_bytes,
        )
        child_id = run_id or f"{ex.run_id}/{key}"
        now = ex.engine.clock.time()
        ops: list[Write] = [ex.record(records.ChildStarted(key, workflow.name, child_id))]
        existing = await ex.engine.store.get_run(child_id)
        if existing is None:
            deadline = None if workflow.timeout_s is None else now + workflow.timeout_s
            ops.append(
                NewRun(
                    child_id,
                    workflow.name,
                    RunStatus.PENDING.value,
                    payload,
                    now,
                    deadline,
                    None,
                    parent_run_id=ex.run_id,
                    correlation_id=ex.correlation_id,
                    traceparent=tracing.current() or ex.traceparent,
                )
            )
        elif existing.workflow != workflow.name:
            raise RunAlreadyExists(child_id, existing.workflow, workflow.name)
        elif existing.status.is_terminal:
            # Already ended (started earlier by someone else): its outcome is ours at once.
            ops.append(
                NewSignal(
                    ex.run_id,
                    CHILD_SIGNAL_PREFIX + child_id,
                    dumps(
                        {
                            "status": existing.status.value,
                            "error": existing.error,
                            "output": existing.output,
                        }
                    ),
                    now,
                )
            )
        elif existing.parent_run_id != ex.run_id:
            raise RunError(
                f"run {child_id!r} is already running, not as a child of "
                f"{ex.run_id!r}; it would never report back. Choose another "
                "run id.",
                run_id=child_id,
            )
        ex.index.children.append(child_id)
        await ex.commit(*ops)
        ex.engine.poke()  # claim the child now, not at the next poll
    else:
        child_id = record.target or ""
    outcome = await await_signal(
        ex,
        key,
        workflow.name,
        CHILD_SIGNAL_PREFIX + child_id,
        None,
        None,
        what=f"child run {child_id!r}",
    )
    return _child_result(child_id, outcome)


def _child_result(child_id: str, outcome: dict[str, Any]) -> Any:
    if outcome["status"] == RunStatus.COMPLETED.value:
        return outcome["output"]
    error = outcome.get("error") or {}
    raise ChildFailed(child_id, outcome["status"], error.get("type"), error.get("message"))


async def await_signal(
    ex: RunExecution,
    key: str,
    name: str,
    signal: str,
    timeout_at: float | None,
    timeout_s: float | None,
    *,
    what: str,
    task_id: str | None = None,
) -> Any:
    """Consume the oldest unconsumed signal named ``signal``, waiting for it if need be."""
    engine = ex.engine
    while True:
        arrived = await engine.store.signals(ex.run_id, 0)
        if arrived:
            ex.signal_watermark = max(ex.signal_watermark, arrived[-1].id)
        for sig in arrived:
            if sig.name == signal and sig.id not in ex.index.consumed_signals:
                ex.index.consumed_signals.add(sig.id)
                await ex.commit(ex.record(records.SignalReceived(key, name, sig.id, sig.payload)))
                ex.check_interrupt()
                return sig.payload
        if timeout_at is not None and engine.clock.time() >= timeout_at:
            ops: list[Any] = [ex.record(records.WaitTimedOut(key, name))]
            if task_id is not None:
                ops.append(CloseTasks(ex.run_id, task_id, "expired", engine.clock.time()))
            await ex.commit(*ops)
            ex.check_interrupt()
            raise WaitTimeout(what, timeout_s)
        await ex.park(key, timeout_at, waiting=True)
