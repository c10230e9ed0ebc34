"""``RunDescription``: one answer to *what step are we on, what failed, what happens next*."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from legato.model.deliveries import StoredEvent
from legato.model.history import HistoryEvent
from legato.model.index import HistoryIndex
from legato.model.runs import Run, RunStatus, continued_as
from legato.model.workers import DEFAULT_LEASE, WorkerInfo


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One step call as history tells it."""

    key: str
    name: str
    status: str  # running | retrying | completed | failed | interrupted
    attempts: int
    compensable: bool = False
    compensation: str | None = None  # None | running | retrying | completed | failed
    error: dict[str, Any] | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An event the run published (``legato.publish``) or a request it made
    (``legato.request``: ``awaiting`` the reply types, ``replied`` once one came).

    ``key`` is the call that published it: the workflow's own call, or (``step`` names
    it) the step call whose code published it.
    """

    key: str
    type: str
    event_id: str
    awaiting: list[str] | None = None
    replied: bool = False
    timed_out: bool = False
    step: str | None = None


@dataclass(frozen=True, slots=True)
class Ownership:
    """Which worker holds a run, and whether it is still there to carry it on."""

    worker_id: str
    host: str | None
    pid: int | None
    heartbeat_at: datetime | None
    presumed_dead: bool
    note: str


@dataclass(frozen=True, slots=True)
class RunDescription:
    """Where a run stands, derived from its row and its history."""

    run_id: str
    workflow: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    current_step: str | None
    attempt: int | None
    last_error: dict[str, Any] | None
    completed_steps: list[str]
    compensations_done: list[str]
    compensations_pending: list[str]
    next: str
    cancel_requested: bool = False
    owner: Ownership | None = None
    steps: list[StepSummary] = field(default_factory=list)
    output: Any = None
    input: Any = None
    published: list[PublishedEvent] = field(default_factory=list)
    correlation_id: str | None = None  # the business transaction (flow) it belongs to

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (datetimes as ISO strings)."""

        def clean(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        data = clean(asdict(self))
        data["status"] = self.status.value
        return data  # type: ignore[no-any-return]  # clean() of a dict is a dict


def _step_publishes(
    index: HistoryIndex, events: Sequence[StoredEvent], seen: set[str]
) -> list[PublishedEvent]:
    """What the run's steps published (``events``: the log's events of this run)."""
    out = []
    for stored in events:
        if stored.event.id in seen or stored.call_key is None:
            continue
        call = index.calls.get(stored.call_key.removesuffix(":compensate"))
        out.append(
            PublishedEvent(
                stored.call_key,
                stored.event.type,
                stored.event.id,
                step=None if call is None else call.name,
            )
        )
    return out


def describe_run(
    run: Run,
    history: list[HistoryEvent],
    *,
    workers: Sequence[WorkerInfo] | None = None,
    workflows: Sequence[str] | None = None,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
    events: Sequence[StoredEvent] = (),
) -> RunDescription:
    """Derive a ``RunDescription`` from a run and its history (pure).

    With ``workers`` (every registered worker) and ``workflows`` (every registered
    workflow name), the description also says who owns the run and whether that worker
    is alive, and for a pending run whether anything serves its workflow.
    """
    now = now or datetime.now(UTC)
    owner = _ownership(run, workers, now, lease)
    index = HistoryIndex.build(history)
    steps: dict[str, dict[str, Any]] = {}
    for key, call in index.calls.items():
        if call.kind != "step":
            continue
        comp = index.compensations.get(key)
        steps[key] = {
            "key": key,
            "name": call.name,
            "status": call.state,
            "attempts": call.executions,
            "compensable": call.args is not None,
            "compensation": None if comp is None else comp.state,
            "error": call.error,
            "retry_at": datetime.fromtimestamp(call.retry_at, UTC)
            if call.state == "retrying" and call.retry_at is not None
            else None,
        }
    last_error = index.last_error or run.error
    if run.error is not None and run.status.is_terminal:
        # The outcome's own error (the divergence, the failure that ended the run, the
        # compensation that gave up) outranks whatever a retried step said last.
        last_error = run.error
    published = [
        PublishedEvent(
            key,
            call.name or "",
            call.target or "",
            None if call.kind == "publish" else list(call.published.reply or ()),
            call.kind == "request" and call.done and not call.timed_out,
            call.timed_out,
        )
        for key, call in index.calls.items()
        if call.kind in ("publish", "request") and call.published is not None
    ]
    published += _step_publishes(index, events, {p.event_id for p in published})
    in_log = {stored.event.id: stored.seq for stored in events}
    published.sort(key=lambda p: in_log.get(p.event_id, 0))  # in the order they were published
    waits = [
        {
            "kind": call.kind,
            "name": call.name,
            "until": call.wake_at,
            "target": call.target,
            "reply": None if call.published is None else call.published.reply,
        }
        for call in index.open_waits()
    ]
    if run.status.is_terminal and run.status is not RunStatus.BLOCKED:
        # A start with no end in a finished run: the attempt was cut short (cancelled,
        # timed out) and never completed.
        for step in steps.values():
            if step["status"] == "running":
                step["status"] = "interrupted"
    summaries = [StepSummary(**s) for s in steps.values()]
    completed = [s.name for s in summaries if s.status == "completed"]
    done = [s.name for s in summaries if s.compensation == "completed"]
    compensating = run.status in (RunStatus.COMPENSATING, RunStatus.COMPENSATION_FAILED)
    # Compensations run newest first; list what is left in that order.
    pending = [
        s.name
        for s in reversed(summaries)
        if s.compensable
        and s.status == "completed"
        and s.compensation != "completed"
        and (compensating or run.status is RunStatus.CANCELLED)
    ]
    active = [s for s in summaries if s.status in ("running", "retrying")]
    current = active[-1] if active else None
    if compensating:
        in_comp = [s for s in summaries if s.compensation in ("running", "retrying", "failed")]
        if in_comp:
            current = in_comp[-1]
    return RunDescription(
        run_id=run.run_id,
        workflow=run.workflow,
        status=run.status,
        created_at=run.created_at,
        updated_at=run.updated_at,
        current_step=None
        if current is None or (run.status.is_terminal and not compensating)
        else current.name,
        attempt=None if current is None else current.attempts,
        last_error=last_error,
        completed_steps=completed,
        compensations_done=done,
        compensations_pending=pending,
        next=_next(
            run,
            current,
            pending,
            done,
            last_error,
            waits,
            owner,
            workers,
            workflows,
            now,
            lease,
        ),
        cancel_requested=run.cancel_requested,
        owner=owner,
        steps=summaries,
        output=run.output,
        input=run.input,
        published=published,
        correlation_id=run.correlation,
    )


def _next(
    run: Run,
    current: StepSummary | None,
    pending: list[str],
    done: list[str],
    last_error: dict[str, Any] | None,
    waits: list[dict[str, Any]],
    owner: Ownership | None = None,
    workers: Sequence[WorkerInfo] | None = None,
    workflows: Sequence[str] | None = None,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> str:
    status = run.status
    error = run.error or last_error or {}
    cause = f"{error.get('type')}: {error.get('message')}" if error.get("type") else "unknown"
    if status is RunStatus.PENDING and run.owner is None:
        return _waiting_for_a_worker(
            run.workflow, workers, workflows, now or datetime.now(UTC), lease
        )
    if owner is not None and owner.presumed_dead and not status.is_terminal:
        return f"{owner.note}; then {_next(run, current, pending, done, last_error, waits)}"
    if status is RunStatus.COMPLETED:
        successor = continued_as(run.output)
        if successor is not None:
            return (
                f"nothing here: the run continued as new run {successor} "
                f"(legato runs show {successor})"
            )
        return "nothing: the run completed"
    if status is RunStatus.FAILED:
        return (
            f"nothing: the run failed ({cause}); no step needed compensating. Once fixed, "
            f"retry it from its failed step (legato runs retry {run.run_id})"
        )
    if status is RunStatus.COMPENSATED:
        return f"nothing: the run failed ({cause}) and every completed step was compensated"
    if status is RunStatus.CANCELLED:
        return "nothing: the run was cancelled" + (f"; compensated {_rest(done)}" if done else "")
    if run.cancel_requested and status in (
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.SLEEPING,
        RunStatus.WAITING,
    ):
        return (
            "cancel: interrupt the step in flight (it is not compensated, having never "
            "completed), then compensate the completed steps"
        )
    if status is RunStatus.BLOCKED:
        return (
            f"operator action: replay diverged from history ({error.get('message')}). "
            "Deploy code that makes the recorded calls and resume it (legato runs resume "
            f"{run.run_id}), or cancel it (legato cancel {run.run_id}) to compensate its steps"
        )
    if status is RunStatus.COMPENSATION_FAILED:
        return (
            f"operator action: compensating {error.get('step')!r} failed ({cause}); "
            f"still to compensate: {', '.join(pending) or 'nothing'}. Once fixed, "
            f"compensate again (legato runs resume-compensation {run.run_id})"
        )
    if status is RunStatus.COMPENSATING:
        if current is not None and current.compensation == "retrying":
            return f"retry compensating {current.name!r}, then {_rest(pending[1:])}"
        return f"compensate {_rest(pending)} (newest first), then end compensated"
    if waits and status in (RunStatus.SLEEPING, RunStatus.WAITING, RunStatus.RUNNING):
        return "; and ".join(_waiting_for(w) for w in waits)
    if current is None:
        return "run the workflow's next call"
    if current.status == "retrying" and current.retry_at is not None:
        return (
            f"retry step {current.name!r} (attempt {current.attempts + 1}) at "
            f"{current.retry_at.isoformat(timespec='seconds')}"
        )
    return f"finish step {current.name!r} (attempt {current.attempts}), then continue the workflow"


def _waiting_for(wait: dict[str, Any]) -> str:
    until = wait["until"]
    when = (
        ""
        if until is None
        else f" until {datetime.fromtimestamp(until, UTC).isoformat(timespec='seconds')}"
    )
    kind = wait["kind"]
    if kind == "timer":
        return f"sleep{when}, then continue"
    if kind == "signal":
        after = ", then raise WaitTimeout in the workflow" if until is not None else ""
        return f"wait for signal {wait['name']!r}{when}{after}"
    if kind == "task":
        return (
            f"wait for a person to complete task {wait['target']} ({wait['name']!r}){when}"
            " — legato tasks complete ID --data JSON"
        )
    if kind == "request":
        after = ", then raise WaitTimeout in the workflow" if until is not None else ""
        replies = " or ".join(wait["reply"] or ())
        return (
            f"wait for a reply ({replies}) to request {wait['target']!r} "
            f"({wait['name']}){when}{after}"
        )
    return f"wait for child run {wait['target']!r} ({wait['name']}) to end"


def _rest(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "nothing more"


def _ownership(
    run: Run, workers: Sequence[WorkerInfo] | None, now: datetime, lease: timedelta
) -> Ownership | None:
    if run.owner is None or workers is None:
        return None
    worker = next((w for w in workers if w.worker_id == run.owner), None)
    if worker is None:
        return Ownership(
            run.owner,
            None,
            None,
            None,
            True,
            f"its worker {run.owner} is gone (presumed dead, its row removed): another worker "
            "releases the run at its next recovery pass and resumes it by replay",
        )
    ago = (now - worker.heartbeat_at).total_seconds()
    if worker.is_presumed_dead(now, lease):
        note = (
            f"its worker {worker.worker_id} on {worker.host} (pid {worker.pid}) last "
            f"heartbeat {ago:.0f}s ago, past its {worker.lease_or(lease).total_seconds():.0f}s "
            "lease: presumed "
            "dead, so another worker takes the run over at its next poll"
        )
        return Ownership(worker.worker_id, worker.host, worker.pid, worker.heartbeat_at, True, note)
    note = (
        f"held by worker {worker.worker_id} on {worker.host} (pid {worker.pid}), last "
        f"heartbeat {max(ago, 0.0):.0f}s ago"
    )
    return Ownership(worker.worker_id, worker.host, worker.pid, worker.heartbeat_at, False, note)


def _waiting_for_a_worker(
    workflow: str,
    workers: Sequence[WorkerInfo] | None,
    workflows: Sequence[str] | None,
    now: datetime,
    lease: timedelta,
) -> str:
    if workflows is not None and workflow not in workflows:
        return (
            f"waiting for a worker: no worker has registered workflow {workflow!r} on this "
            "database yet; the run starts when one serving it runs (legato worker MODULE:APP)"
        )
    if workers is None:
        return "waiting for a worker to pick the run up (is `legato worker` running?)"
    live = [w for w in workers if not w.is_presumed_dead(now, lease)]
    if not live:
        return (
            f"waiting for a worker: no live worker serves workflow {workflow!r} (none is "
            "running on this database); start one with legato worker MODULE:APP"
        )
    if all(w.workflows is not None and workflow not in w.workflows for w in live):
        served = sorted({name for w in live for name in w.workflows or ()})
        return (
            f"waiting for a worker: no live worker serves workflow {workflow!r} (the "
            f"{len(live)} running serve {', '.join(served) or 'nothing'}); start one whose "
            "app registers it with legato worker MODULE:APP"
        )
    return "waiting for a worker to pick the run up: a live worker serves its workflow"
