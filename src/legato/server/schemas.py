"""The HTTP API's request and response bodies (they are its OpenAPI schemas).

Where the model's own dataclass is the shape (``RunDescription``, ``Task``, ``Alert``,
``ExpectationInstance``) a route answers with it as it is: one typed definition.

Responses carry what ``legato.views`` makes of the clients' results, the shapes the CLI
prints with ``--json``: a run as ``RunDescription``, an event as its CloudEvents object
with where it came from, and so on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from legato.model.description import RunDescription
from legato.model.tokens import Scope


class Body(BaseModel):
    """A request body: unknown members are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details: every error's body."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:legato:problem:run-not-found"])
    title: str
    status: int
    detail: str
    instance: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 422, 503)
}
"""The error responses every route may give, for the OpenAPI document."""


# -- runs --------------------------------------------------------------------------------


class StartRun(Body):
    """Start a run of ``workflow`` by name. ``args`` are its positional arguments; or
    give ``input``, its one argument. With ``run_id`` the start is idempotent: a run of
    that id and workflow that exists already is returned, not started again."""

    workflow: str = Field(min_length=1)
    args: list[Any] | None = None
    input: Any = None
    run_id: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_way_of_arguments(self) -> StartRun:
        if self.args is not None and "input" in self.model_fields_set:
            raise ValueError("give args (a list of arguments) or input (one argument), not both")
        return self

    def arguments(self) -> list[Any]:
        if self.args is not None:
            return self.args
        return [self.input] if "input" in self.model_fields_set else []


class RunPage(BaseModel):
    """A page of runs, newest first; ``next_cursor`` fetches the next (None: last page)."""

    runs: list[RunDescription]
    next_cursor: str | None


class HistoryRecord(BaseModel):
    """One record of a run's history (its public, versioned JSON format)."""

    pos: int
    kind: str
    key: str | None
    name: str | None
    attempt: int
    data: Any
    at: datetime


class SendSignal(Body):
    """A signal for a run: kept, in order, until the run waits for it."""

    name: str = Field(min_length=1)
    payload: Any = None


class RunStatusOut(BaseModel):
    """A run's status after an action."""

    run_id: str
    status: str


# -- tasks -------------------------------------------------------------------------------


class CompleteTask(Body):
    """The answer to a task, checked against its form."""

    response: Any


# -- events ------------------------------------------------------------------------------


class PublishEvent(Body):
    """An event to publish (for a ready-made CloudEvent, send it as
    ``application/cloudevents+json``, or a batch as ``application/cloudevents-batch+json``)."""

    type: str = Field(min_length=1)
    data: Any = None
    subject: str | None = None
    key: str | None = None
    id: str | None = None
    source: str | None = None
    correlationid: str | None = None
    causationid: str | None = None


class StoredEventOut(BaseModel):
    """An event of the log: the CloudEvents object, and where it came from."""

    seq: int
    recorded_at: datetime
    routed: int
    run_id: str | None
    call_key: str | None
    reply_types: list[str] | None
    event: dict[str, Any]


class DeliveryOut(BaseModel):
    """One subscriber's delivery of an event."""

    subscription: str
    seq: int
    status: str
    attempts: int
    due_at: datetime | None
    updated_at: datetime
    error: dict[str, Any] | None
    replay: bool
    ordering_key: str | None
    owner: str | None
    run_id: str | None
    redriven_at: datetime | None = None
    redriven_by: str | None = None


class EventDetail(BaseModel):
    """An event and every subscription's delivery of it."""

    stored: StoredEventOut
    deliveries: list[DeliveryOut]


class DeadLetterOut(DeliveryOut):
    """A delivery out of attempts, and which event it was."""

    event_id: str | None
    source: str | None
    type: str | None


class Redrive(Body):
    """Deliver dead letters again, from the first attempt: one event's (``event_id``,
    with ``source`` when ids repeat across sources), or a whole subscription's, in bulk:
    without ``confirm`` the answer is the preview (nothing done), with its ``confirm``
    those dead letters are redriven."""

    event_id: str | None = None
    subscription: str | None = None
    source: str | None = None
    rate: float | None = Field(default=None, gt=0)
    confirm: str | None = None

    @model_validator(mode="after")
    def _something(self) -> Redrive:
        if self.event_id is None and self.subscription is None:
            raise ValueError("name the dead letters: event_id, subscription, or both")
        return self


class RedrivePreviewOut(BaseModel):
    """How many dead letters a subscription's redrive takes (the first event ids), and
    the ``confirm`` token that redrives exactly those."""

    subscription: str
    count: int
    event_ids: list[str]
    confirm: str


class Redriven(BaseModel):
    """How many dead letters were made pending again, or (``redriven`` null, nothing
    done) the preview of a subscription's redrive."""

    redriven: int | None
    preview: RedrivePreviewOut | None = None


class FlowOut(BaseModel):
    """A correlation id's flow: counts, the tree from its first events (events, their
    deliveries, the runs started), and the expectations it opened."""

    correlation_id: str
    events: int
    runs: int
    dead: int
    pending: int
    roots: list[dict[str, Any]]
    expectations: list[dict[str, Any]]


# -- the rest ----------------------------------------------------------------------------


class WorkerOut(BaseModel):
    worker_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    workflows: list[str] | None
    lease_s: float | None
    runs: int


class Health(BaseModel):
    status: str
    detail: str


class TokenOut(BaseModel):
    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None


class NewTokenIn(Body):
    """A token to create: who uses it, and what it may do."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    scope: Scope = Scope.READ


class NewTokenOut(TokenOut):
    """A token just created, with its secret: shown in this answer only."""

    secret: str
