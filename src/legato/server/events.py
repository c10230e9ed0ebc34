"""``/api/events``, ``/api/flows`` and ``/api/deadletters``: publish (JSON, or CloudEvents
structured and batch), the log, one event with its deliveries, a correlation id's flow,
dead letters and their redrive."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from legato.errors import InvalidEvent
from legato.model.events import Event
from legato.model.times import as_utc
from legato.model.tokens import Scope
from legato.server.schemas import (
    PROBLEMS,
    DeadLetterOut,
    DeliveryOut,
    EventDetail,
    FlowOut,
    PublishEvent,
    Redrive,
    Redriven,
    RedrivePreviewOut,
    StoredEventOut,
)
from legato.server.security import Caller, Client, Operator, Reader
from legato.views import dead_letter_json, delivery_json, flow_json, stored_event_json

router = APIRouter(tags=["events"], responses=PROBLEMS)

MAX_SEQ = 2**63 - 1  # a seq is a 64-bit integer in every store
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


class Published(BaseModel):
    """The events as stored (an earlier one, for a repeated ``source`` and ``id``)."""

    events: list[dict[str, Any]]


_PUBLISH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PublishEvent.model_json_schema()},
            CLOUDEVENT: {"schema": {"type": "object", "description": "a structured CloudEvent"}},
            CLOUDEVENTS_BATCH: {
                "schema": {"type": "array", "items": {"type": "object"}},
            },
        },
    }
}


def shown(caller: Caller, value: Any) -> Any:
    """``value`` as ``caller`` may see it: a ``read`` token gets a failed delivery's error
    without its traceback, which names the server's files and code (a dashboard needs the
    type and message; whoever may redrive it sees the rest)."""
    if caller.scope is not Scope.READ:
        return value
    if isinstance(value, list):
        return [shown(caller, v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: shown(caller, v) for k, v in value.items()}
    error = out.get("error")
    if isinstance(error, dict) and "traceback" in error:
        out["error"] = {k: v for k, v in error.items() if k != "traceback"}
    return out


@router.post(
    "/api/events",
    status_code=201,
    response_model=Published,
    summary="Publish an event, a CloudEvent or a batch of them",
    openapi_extra=_PUBLISH_BODY,
)
async def publish(request: Request, client: Client, caller: Operator) -> Published:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    raw = await request.body()
    if kind == CLOUDEVENT:
        events = [Event.from_json(raw)]
    elif kind == CLOUDEVENTS_BATCH:
        events = Event.from_json_batch(raw)
        if not events:
            raise InvalidEvent("the batch holds no event")
    elif kind in ("application/json", ""):
        try:
            body = PublishEvent.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        fields = body.model_dump()
        event = await client.publish(fields.pop("type"), fields.pop("data"), **fields)
        return Published(events=[event.to_dict()])
    else:
        raise InvalidEvent(
            f"content type {kind!r}: send application/json, {CLOUDEVENT} or {CLOUDEVENTS_BATCH}"
        )
    stored = [await client.publish_event(e) for e in events]
    return Published(events=[e.to_dict() for e in stored])


@router.get("/api/events", response_model=list[StoredEventOut], summary="The event log")
async def list_events(
    client: Client,
    caller: Reader,
    type: str | None = None,
    correlation_id: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    unrouted: bool = False,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[StoredEventOut]:
    events = await client.list_events(
        type=type,
        correlation_id=correlation_id,
        run_id=run_id,
        since=as_utc(since),
        until=as_utc(until),
        unrouted=unrouted,
        after_seq=after_seq,
        limit=limit,
    )
    return [StoredEventOut(**stored_event_json(s)) for s in events]


@router.get(
    "/api/events/{event_id:id}",
    response_model=EventDetail,
    summary="An event and every subscription's delivery of it",
)
async def get_event(
    event_id: str, client: Client, caller: Reader, source: str | None = None
) -> EventDetail:
    stored = await client.get_event(event_id, source)
    deliveries = await client.deliveries(event_id, stored.event.source)
    return EventDetail(
        stored=StoredEventOut(**stored_event_json(stored)),
        deliveries=[DeliveryOut(**shown(caller, delivery_json(d, stored))) for d in deliveries],
    )


@router.get(
    "/api/flows/{correlation_id:run}",
    response_model=FlowOut,
    summary="What happened for a correlation id",
)
async def flow(correlation_id: str, client: Client, caller: Reader) -> FlowOut:
    return FlowOut(**shown(caller, flow_json(await client.flow(correlation_id))))


@router.get("/api/deadletters", response_model=list[DeadLetterOut], summary="Dead letters")
async def dead_letters(
    client: Client,
    caller: Reader,
    subscription: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterOut]:
    dead = await client.list_dead_letters(subscription=subscription, limit=limit)
    events = await client.events_at(d.seq for d in dead)
    return [DeadLetterOut(**shown(caller, dead_letter_json(d, events.get(d.seq)))) for d in dead]


@router.post(
    "/api/deadletters/redrive", response_model=Redriven, summary="Deliver dead letters again"
)
async def redrive(body: Redrive, client: Client, caller: Operator) -> Redriven:
    if body.event_id is None and body.confirm is None:  # a subscription's: preview first
        assert body.subscription is not None
        preview = await client.preview_redrive(body.subscription)
        return Redriven(redriven=None, preview=RedrivePreviewOut(**asdict(preview)))
    count = await client.redrive(
        body.event_id,
        subscription=body.subscription,
        source=body.source,
        rate=body.rate,
        by=caller.name,
        confirm=body.confirm,
    )
    return Redriven(redriven=count)
