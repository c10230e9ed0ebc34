"""How SQL rows become models: the column lists every SQL adapter selects, and converters.

Shared by ``sqlbase`` (the reads) and each dialect's named queries (the column lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from legato.model import HistoryEvent, Run, RunStatus, Task, TaskStatus
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent
from legato.model.events import Event
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.model.history import kind_of
from legato.model.ids import RunId
from legato.model.workers import WorkerInfo
from legato.storage.base import to_datetime

RUN_COLUMNS = (
    "run_id, workflow, status, input, output, "
    # The error inline, or the data of the history record error_pos names.
    "COALESCE(error, (SELECT h.data FROM history h WHERE h.run_id = runs.run_id "
    "AND h.pos = runs.error_pos)), "
    "created_at, updated_at, deadline_at, wake_at, owner, cancel_requested, parent_run_id, "
    "correlation_id, traceparent, cancel_by"
)
RUN_COLUMNS_NO_PAYLOADS = RUN_COLUMNS.replace("input, output,", "NULL, NULL,", 1)
"""The same columns, with NULL for the two that may be large."""
TASK_COLUMNS = (
    "task_id, run_id, name, data, assignee, form, status, response, created_at, due_at, "
    "completed_at, completed_by"
)
HISTORY_COLUMNS = "run_id, pos, kind, key, name, attempt, data, at"
EVENT_COLUMNS = "seq, event, recorded_at, routed, run_id, call_key, reply_types"
DELIVERY_COLUMNS = (
    "subscription, seq, status, attempts, due_at, updated_at, error, owner, ordering_key, replay, "
    "redriven_at, redriven_by"
)

EXPECTATION_COLUMNS = (
    "expectation, instance, key, status, missing, trigger_seq, correlation_id, opened_at, "
    "deadline_at, closed_at, closed_by, violation_id, awaited"
)

ALERT_COLUMNS = (
    "alert_id, kind, subject, status, summary, details, raised_at, resolved_at, times, event_id"
)


def loads(data: bytes | None) -> Any:
    """A JSON column's value (None stays None)."""
    return None if data is None else orjson.loads(data)


def run_from_row(row: Sequence[Any]) -> Run:
    """A ``Run`` from a row of ``RUN_COLUMNS``."""
    return Run(
        run_id=RunId(row[0]),
        workflow=row[1],
        status=RunStatus(row[2]),
        input=loads(row[3]),
        output=loads(row[4]),
        error=loads(row[5]),
        created_at=to_datetime(row[6]),  # type: ignore[arg-type]  # NOT NULL column
        updated_at=to_datetime(row[7]),  # type: ignore[arg-type]  # NOT NULL column
        deadline_at=to_datetime(row[8]),
        wake_at=to_datetime(row[9]),
        owner=row[10],
        cancel_requested=bool(row[11]),
        parent_run_id=row[12],
        correlation_id=row[13],
        traceparent=row[14],
        cancel_by=row[15],
    )


def task_from_row(row: Sequence[Any]) -> Task:
    """A ``Task`` from a row of ``TASK_COLUMNS``."""
    return Task(
        task_id=row[0],
        run_id=row[1],
        name=row[2],
        data=loads(row[3]),
        assignee=row[4],
        form=loads(row[5]),
        status=TaskStatus(row[6]),
        response=loads(row[7]),
        created_at=to_datetime(row[8]),  # type: ignore[arg-type]  # NOT NULL column
        due_at=to_datetime(row[9]),
        completed_at=to_datetime(row[10]),
        completed_by=row[11],
    )


def event_from_row(row: Sequence[Any]) -> HistoryEvent:
    """A ``HistoryEvent`` from a row of ``HISTORY_COLUMNS``."""
    return HistoryEvent(
        run_id=row[0],
        pos=row[1],
        kind=kind_of(row[2]),
        key=row[3],
        name=row[4],
        attempt=row[5],
        data=loads(row[6]),
        at=to_datetime(row[7]),  # type: ignore[arg-type]  # NOT NULL column
    )


def worker_from_row(row: Sequence[Any]) -> WorkerInfo:
    """A ``WorkerInfo`` from ``worker_id, host, pid, started_at, heartbeat_at, workflows,
    lease_s``."""
    workflows = loads(row[5])
    return WorkerInfo(
        row[0],
        row[1],
        row[2],
        at_time(row[3]),
        at_time(row[4]),
        None if workflows is None else tuple(workflows),
        None if row[6] is None else timedelta(seconds=row[6]),
    )


def at_time(ts: float) -> datetime:
    """A NOT NULL time column as an aware datetime."""
    return datetime.fromtimestamp(ts, UTC)


def stored_event_from_row(row: Sequence[Any]) -> StoredEvent:
    """A ``StoredEvent`` from a row of ``EVENT_COLUMNS``."""
    replies = loads(row[6])
    return StoredEvent(
        seq=row[0],
        event=Event.from_stored(row[1]),
        recorded_at=at_time(row[2]),
        routed=row[3],
        run_id=row[4],
        call_key=row[5],
        reply_types=None if replies is None else tuple(replies),
    )


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A ``Delivery`` from a row of ``DELIVERY_COLUMNS``."""
    return Delivery(
        subscription=row[0],
        seq=row[1],
        status=DeliveryStatus(row[2]),
        attempts=row[3],
        due_at=to_datetime(row[4]),
        updated_at=at_time(row[5]),
        error=loads(row[6]),
        owner=row[7],
        ordering_key=row[8],
        replay=bool(row[9]),
        redriven_at=to_datetime(row[10]),
        redriven_by=row[11],
    )


def expectation_from_row(row: Sequence[Any]) -> ExpectationInstance:
    """An ``ExpectationInstance`` from a row of ``EXPECTATION_COLUMNS``."""
    return ExpectationInstance(
        expectation=row[0],
        instance=row[1],
        key=row[2],
        status=ExpectationStatus(row[3]),
        missing=tuple(orjson.loads(row[4])),
        trigger_seq=row[5],
        correlation_id=row[6],
        opened_at=at_time(row[7]),
        deadline=at_time(row[8]),
        closed_at=to_datetime(row[9]),
        closed_by=row[10],
        violation_id=row[11],
        awaited=tuple(orjson.loads(row[12])),
    )


def alert_from_row(row: Sequence[Any]) -> Alert:
    """An ``Alert`` from a row of ``ALERT_COLUMNS``."""
    return Alert(
        alert_id=row[0],
        kind=AlertKind(row[1]),
        subject=row[2],
        status=AlertStatus(row[3]),
        summary=row[4],
        details=orjson.loads(row[5]),
        raised_at=at_time(row[6]),
        resolved_at=to_datetime(row[7]),
        times=row[8],
        event_id=row[9],
    )
