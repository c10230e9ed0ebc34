"""Legato: durable business workflows for Python.

Orchestrate the critical path as a durable workflow (steps, retries, sagas, recovery);
everything else reacts to the facts it publishes.
"""

from legato import errors
from legato.app import App
from legato.bus.subscriptions import DeliveryInfo, delivery
from legato.client import AsyncClient, Client, RunHandle, SyncRunHandle
from legato.engine.context import (
    child,
    continue_as_new,
    human_task,
    now,
    publish,
    random,
    reply,
    request,
    run_id,
    sleep,
    sleep_until,
    step_key,
    uuid,
    wait_for_signal,
)
from legato.model import (
    EventKind,
    HistoryEvent,
    Retry,
    Run,
    RunStatus,
    Task,
    TaskStatus,
    records,
)
from legato.model.alerts import Alert, AlertKind, AlertStatus
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent, SubscriptionInfo
from legato.model.description import Ownership, PublishedEvent, RunDescription, StepSummary
from legato.model.events import Event
from legato.model.expectations import ExpectationInstance, ExpectationStatus
from legato.model.workers import WorkerInfo

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "AlertKind",
    "AlertStatus",
    "App",
    "AsyncClient",
    "Client",
    "Delivery",
    "DeliveryInfo",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "ExpectationInstance",
    "ExpectationStatus",
    "HistoryEvent",
    "Ownership",
    "PublishedEvent",
    "Retry",
    "Run",
    "RunDescription",
    "RunHandle",
    "RunStatus",
    "StepSummary",
    "StoredEvent",
    "SubscriptionInfo",
    "SyncRunHandle",
    "Task",
    "TaskStatus",
    "WorkerInfo",
    "child",
    "continue_as_new",
    "delivery",
    "errors",
    "human_task",
    "now",
    "publish",
    "random",
    "records",
    "reply",
    "request",
    "run_id",
    "sleep",
    "sleep_until",
    "step_key",
    "uuid",
    "wait_for_signal",
]
