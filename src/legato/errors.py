"""Errors raised by Legato.

Every error Legato raises on purpose derives from :class:`LegatoError`::

    LegatoError
    ├── DefinitionError (ValueError)      a workflow or step is declared or called wrongly
    │   ├── UnknownWorkflow (LookupError) no workflow of that name is registered
    │   └── PayloadError (TypeError)      arguments or results that do not serialize to JSON
    ├── ConfigurationError (ValueError)   a bad database URL or option
    ├── OutsideWorkflow (RuntimeError)    a workflow-only call made from a step or no run
    ├── NotRunning (RuntimeError)         the App's engine is not running (or already is)
    ├── RunError                          something about one run
    │   ├── RunNotFound (LookupError)
    │   ├── RunAlreadyExists              the run id belongs to another workflow
    │   ├── RunFailed                     result() of a run that did not complete
    │   ├── StepFailed                    a step gave up (seen inside the workflow)
    │   ├── StepTimeout (TimeoutError)    one attempt of a step took too long
    │   ├── WorkflowTimeout (TimeoutError)
    │   ├── NonDeterminismError           replay met a different call than history holds
    │   ├── CompensationFailed            a compensation gave up
    │   ├── RunCancelled                  the failure recorded when a run is cancelled
    │   ├── RunFinished                   a signal or cancel for a run that has ended
    │   ├── WaitTimeout (TimeoutError)    a signal or human task did not come in time
    │   ├── HistoryTooLong                the run's history passed its limit
    │   └── ChildFailed                   a child run did not complete (seen by the parent)
    ├── TaskError                         about one human task
    │   ├── TaskNotFound (LookupError)
    │   ├── TaskClosed                    completed twice, or after it expired
    │   ├── TaskClaimed                   claimed by someone else already
    │   └── InvalidTaskResponse (ValueError)  the response does not match the task's form
    ├── StorageError                      the database failed or is not usable
    │   ├── ConcurrencyConflict           another writer changed the row first
    │   ├── MigrationRequired             the schema is older than this code
    │   ├── SchemaTooNew                  the schema is newer than this code
    │   ├── DatabaseMoved                 the database file was deleted or replaced
    │   └── NotALegatoDatabase            the file is not a Legato database
    ├── BulkChanged                       a bulk action's runs changed since its preview
    └── BusError                          about events and subscriptions
        ├── InvalidEvent (ValueError)     not a valid CloudEvents 1.0 event
        ├── InvalidPattern (ValueError)   a subscription pattern that does not parse
        ├── EventNotFound (LookupError)   no event of that id in the log
        └── UnknownSubscription (LookupError)  no subscription of that name is registered

Errors carry data (``run_id``, ``step_name``, ``attempt``) and their message says what
happened and what to do next. Engine control flow (suspending or cancelling a workflow)
uses private ``BaseException`` subclasses outside this tree, so a workflow's
``except Exception`` never swallows a suspension.
"""

from __future__ import annotations

from typing import Any


class LegatoError(Exception):
    """Root of every error Legato raises on purpose."""


class DefinitionError(LegatoError, ValueError):
    """A workflow or step is declared, registered or called the wrong way."""


class UnknownWorkflow(DefinitionError, LookupError):
    """No workflow of this name is registered."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = sorted(known or [])
        hint = (
            f" Known workflows: {', '.join(self.known)}."
            if self.known
            else (
                " No workflows are registered yet: start a worker for your app"
                " (legato worker MODULE:APP) so it records its workflows."
            )
        )
        super().__init__(f"unknown workflow {name!r}.{hint}")


class PayloadError(DefinitionError, TypeError):
    """Arguments or a result cannot be stored as JSON."""


class ConfigurationError(LegatoError, ValueError):
    """A database URL or option is not valid."""


class OutsideWorkflow(LegatoError, RuntimeError):
    """A workflow-only function was called outside a workflow (or inside a step)."""


class NotRunning(LegatoError, RuntimeError):
    """The app's engine is not running in this process (or is running already)."""


class RunError(LegatoError):
    """An error about one workflow run."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunNotFound(RunError, LookupError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}", run_id=run_id)


class RunAlreadyExists(RunError):
    """A run with this id exists and belongs to a different workflow."""

    def __init__(self, run_id: str, existing_workflow: str, requested_workflow: str) -> None:
        super().__init__(
            f"run id {run_id!r} already belongs to workflow {existing_workflow!r}; "
            f"cannot start it as {requested_workflow!r}. Choose another run id.",
            run_id=run_id,
        )
        self.existing_workflow = existing_workflow
        self.requested_workflow = requested_workflow


class RunFailed(RunError):
    """The run ended without a result: failed, compensated, cancelled or blocked."""

    def __init__(
        self,
        run_id: str,
        status: str,
        error_type: str | None,
        message: str | None,
        step_name: str | None = None,
    ) -> None:
        where = f" in step {step_name!r}" if step_name else ""
        what = f": {error_type}: {message}" if error_type else ""
        super().__init__(f"run {run_id!r} ended {status}{where}{what}", run_id=run_id)
        self.status = status
        self.error_type = error_type
        self.error_message = message
        self.step_name = step_name


class StepFailed(RunError):
    """A step gave up after its retries; the workflow may catch this and take another path.

    ``error_type`` is the qualified name of the exception the step raised, so code that
    branches on the cause reads the same live and on replay:
    ``if err.error_type.endswith("OutOfStock"): ...``.
    """

    def __init__(
        self,
        step_name: str,
        error_type: str,
        message: str,
        attempts: int,
        *,
        run_id: str | None = None,
    ) -> None:
        super().__init__(
            f"step {step_name!r} failed after {attempts} attempt(s): {error_type}: {message}",
            run_id=run_id,
        )
        self.step_name = step_name
        self.error_type = error_type
        self.error_message = message
        self.attempts = attempts


class StepTimeout(RunError, TimeoutError):
    """One attempt of a step ran longer than the step's timeout."""

    def __init__(self, step_name: str, timeout_s: float, attempt: int) -> None:
        super().__init__(f"step {step_name!r} attempt {attempt} timed out after {timeout_s:g}s")
        self.step_name = step_name
        self.attempt = attempt


class WorkflowTimeout(RunError, TimeoutError):
    """The run did not finish before its workflow timeout."""

    def __init__(self, run_id: str, timeout_s: float) -> None:
        super().__init__(
            f"run {run_id!r} exceeded its workflow timeout of {timeout_s:g}s", run_id=run_id
        )


class NonDeterminismError(RunError):
    """Replay met a different call than the run's history recorded.

    The run is left ``blocked`` (never failed or compensated): deploy code that makes the
    same calls as the recorded history, or cancel the run.
    """

    def __init__(self, run_id: str, seq: str, recorded: str, requested: str) -> None:
        super().__init__(
            f"run {run_id!r} is not deterministic at call #{seq}: history recorded "
            f"{recorded}, but the code asked for {requested}. The run is blocked: deploy "
            f"code that makes the same calls and resume it (legato runs resume {run_id}), or "
            "cancel it (its completed steps are compensated).",
            run_id=run_id,
        )
        self.seq = seq
        self.recorded = recorded
        self.requested = requested


class CompensationFailed(RunError):
    """A compensation gave up; the run needs an operator."""

    def __init__(self, step_name: str, error_type: str, message: str, attempts: int) -> None:
        super().__init__(
            f"compensation of step {step_name!r} failed after {attempts} attempt(s): "
            f"{error_type}: {message}"
        )
        self.step_name = step_name
        self.error_type = error_type
        self.error_message = message
        self.attempts = attempts


class RunCancelled(RunError):
    """The run was cancelled; recorded as its failure, so its completed steps compensate."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} was cancelled", run_id=run_id)


class RunFinished(RunError):
    """The run has ended, so it takes no more signals (or cancellation)."""

    def __init__(self, run_id: str, status: str, what: str) -> None:
        super().__init__(f"run {run_id!r} has ended ({status}); it takes no {what}", run_id=run_id)
        self.status = status


class WaitTimeout(RunError, TimeoutError):
    """A signal or human task did not arrive in time; catch it to escalate."""

    def __init__(self, what: str, timeout_s: float | None) -> None:
        after = f" within {timeout_s:g}s" if timeout_s is not None else ""
        super().__init__(f"{what} did not arrive{after}")
        self.what = what
        self.timeout_s = timeout_s


class HistoryTooLong(RunError):
    """A run's history passed the app's limit (``App(max_history=...)``).

    Raised at the workflow's next call: a workflow that loops for ever must continue as a
    fresh run (``legato.continue_as_new``) instead of growing one history without end.
    """

    def __init__(self, run_id: str, records: int, limit: int) -> None:
        super().__init__(
            f"run {run_id!r} has {records} history records, past the limit of {limit}: a "
            "workflow that loops should call legato.continue_as_new(...) to go on in a fresh "
            "run with an empty history (or raise App(max_history=...))",
            run_id=run_id,
        )
        self.records = records
        self.limit = limit


class ChildFailed(RunError):
    """A child run ended without a result; raised in the parent where it awaits the child."""

    def __init__(
        self, child_run_id: str, status: str, error_type: str | None, message: str | None
    ) -> None:
        what = f": {error_type}: {message}" if error_type else ""
        super().__init__(f"child run {child_run_id!r} ended {status}{what}", run_id=child_run_id)
        self.child_run_id = child_run_id
        self.status = status
        self.error_type = error_type
        self.error_message = message


class TaskError(LegatoError):
    """An error about one human task."""

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskNotFound(TaskError, LookupError):
    """No human task has this id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}", task_id=task_id)


class TaskClosed(TaskError):
    """The task is no longer open (completed already, expired, or its run ended)."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"task {task_id!r} is {status}; it takes no response", task_id=task_id)
        self.status = status


class TaskClaimed(TaskError):
    """The task is assigned to someone else: ``claim_task`` takes only an unassigned
    task (or one assigned to the claimer already)."""

    def __init__(self, task_id: str, assignee: str) -> None:
        super().__init__(f"task {task_id!r} is assigned to {assignee!r} already", task_id=task_id)
        self.assignee = assignee


class InvalidTaskResponse(TaskError, ValueError):
    """The response does not match the task's form (JSON Schema); the task stays open."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(
            f"response to task {task_id!r} does not match its form: {reason}", task_id=task_id
        )
        self.reason = reason


class StorageError(LegatoError):
    """The database failed or cannot be used."""


class ConcurrencyConflict(StorageError):
    """Another writer changed the same row first."""


class MigrationRequired(StorageError):
    """The database schema is older than this code and migrations are disabled."""


class SchemaTooNew(StorageError):
    """The database was written by a newer Legato than this one."""

    def __init__(self, found: int, supported: int, where: str) -> None:
        super().__init__(
            f"{where} has schema version {found}, but this Legato supports up to "
            f"{supported}. Upgrade legato, or point it at another database."
        )
        self.found = found
        self.supported = supported


class DatabaseMoved(StorageError):
    """The database file was deleted or replaced while a process had it open.

    The process's writes since went to a file nobody will open again; a worker stops
    rather than go on losing work.
    """


class NotALegatoDatabase(StorageError):
    """The file exists but is not a Legato database (or is corrupt)."""


class BusError(LegatoError):
    """About events and subscriptions."""


class InvalidEvent(BusError, ValueError):
    """Not a valid CloudEvents 1.0 event: a required attribute missing or empty, a bad
    attribute name or value, a ``time`` that is not RFC 3339, data that is not JSON."""


class InvalidPattern(BusError, ValueError):
    """A subscription pattern that does not parse (the message says where)."""


class EventNotFound(BusError, LookupError):
    """No event with this id (and source, if given) is in the log."""

    def __init__(self, event_id: str, source: str | None = None) -> None:
        where = "" if source is None else f" from source {source!r}"
        super().__init__(
            f"no event {event_id!r}{where} in the log (legato events list shows what is there)"
        )
        self.event_id = event_id
        self.source = source


class AmbiguousEvent(BusError, LookupError):
    """An event id that several sources published (an id is unique per source): say which
    with ``source=``."""

    def __init__(self, event_id: str, sources: list[str]) -> None:
        super().__init__(
            f"event id {event_id!r} was published by several sources ({', '.join(sources)}): "
            "say which (source=...)"
        )
        self.event_id = event_id
        self.sources = sources


class UnknownSubscription(BusError, LookupError):
    """No subscription of this name is registered on the database."""

    def __init__(self, name: str, known: list[str]) -> None:
        shown = ", ".join(known) if known else "none yet: start a worker that defines @app.on"
        super().__init__(f"no subscription named {name!r} is registered (registered: {shown})")
        self.name = name
        self.known = known


class TokenError(LegatoError):
    """An error about an API token (``legato tokens``, the HTTP API)."""


class TokenExists(TokenError):
    """A token of this name exists already (names stay taken after a revoke, so what an
    old token did is never ascribed to a new one)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a token named {name!r} exists already (revoked or not): choose another name"
        )
        self.name = name


class TokenNotFound(TokenError, LookupError):
    """No active token has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no active token named {name!r}")
        self.name = name


class NotAuthorized(TokenError):
    """The request carries no token the server knows, or one that was revoked (HTTP 401)."""


class NotPermitted(TokenError):
    """The token's scope does not allow this, or the server is read-only (HTTP 403)."""


MAX_ERROR_MESSAGE = 16 * 1024
"""Characters of an exception's message that history keeps (the rest is cut, and said)."""


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Return the JSON-able summary of ``exc`` stored in history: type and message.

    Never raises: an exception whose ``__str__`` (and ``__repr__``) raises, or returns
    something that is not a string, is recorded by its type with a placeholder message,
    so the retry policy and the workflow's ``except StepFailed`` still apply to it. A
    message longer than ``MAX_ERROR_MESSAGE`` characters is cut there: every attempt
    records its error, and history keeps them all.
    """
    cls = type(exc)
    module = getattr(cls, "__module__", None) or "builtins"
    name = getattr(cls, "__qualname__", None) or cls.__name__
    qualified = name if module in ("builtins", "__main__") else f"{module}.{name}"
    message = _message_of(exc, qualified)
    if len(message) > MAX_ERROR_MESSAGE:
        cut = len(message) - MAX_ERROR_MESSAGE
        message = f"{message[:MAX_ERROR_MESSAGE]}… [{cut} more characters not recorded]"
    return {"type": qualified, "message": message}


def _message_of(exc: BaseException, qualified: str) -> str:
    for render in (str, repr):
        try:
            message = render(exc)
        except Exception:
            continue
        if type(message) is str:
            return message
    return f"<{qualified}: its message could not be read (str() and repr() raised)>"


class BulkChanged(LegatoError):
    """The runs a bulk action's filter selects changed since its preview: nothing was
    done. ``preview`` is the new one (its count and its ``confirm`` token)."""

    def __init__(self, action: str, preview: Any) -> None:
        what = "dead letters" if action == "redrive" else "runs"
        super().__init__(
            f"the {what} this bulk {action} selects changed since its preview: nothing was "
            f"done. They are {preview.count} now; confirm again with {preview.confirm!r}"
        )
        self.action = action
        self.preview = preview
