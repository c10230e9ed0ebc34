"""The JSON forms of what the clients return: one shape for the CLI's ``--json`` and the
HTTP API's responses, so a script written against one reads the other.

Times stay ``datetime`` objects here (``orjson`` writes them as ISO 8601 strings); payloads
are the JSON values they were given as.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from legato.bus.flows import DeliveryNode, EventNode, Flow, RunNode, trigger_workflow
from legato.bus.subscriptions import triggered_run_id
from legato.model import HistoryEvent, Task
from legato.model.alerts import Alert
from legato.model.deliveries import Delivery, DeliveryStatus, StoredEvent, SubscriptionInfo
from legato.model.expectations import ExpectationInstance
from legato.model.tokens import ApiToken
from legato.model.workers import WorkerInfo

_Node = EventNode | DeliveryNode | RunNode


def history_json(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    """History records as JSON objects."""
    return [
        {
            "pos": e.pos,
            "kind": str(e.kind),
            "key": e.key,
            "name": e.name,
            "attempt": e.attempt,
            "data": e.data,
            "at": e.at,
        }
        for e in events
    ]


def task_json(task: Task) -> dict[str, Any]:
    """One task as JSON (``tasks list``, ``tasks show`` and ``tasks complete``)."""
    return asdict(task) | {"status": task.status.value}


def stored_event_json(stored: StoredEvent) -> dict[str, Any]:
    """An event of the log as JSON: the CloudEvents object and where it came from."""
    return {
        "seq": stored.seq,
        "recorded_at": stored.recorded_at,
        "routed": stored.routed,
        "run_id": stored.run_id,
        "call_key": stored.call_key,
        "reply_types": None if stored.reply_types is None else list(stored.reply_types),
        "event": stored.event.to_dict(),
    }


def delivery_json(delivery: Delivery, stored: StoredEvent | None = None) -> dict[str, Any]:
    """One subscriber's delivery as JSON; a trigger's names the run it starts (``run_id``)."""
    d = delivery
    workflow = trigger_workflow(d.subscription)
    run_id = (
        None if workflow is None or stored is None else triggered_run_id(workflow, stored.event)
    )
    return {
        "subscription": d.subscription,
        "seq": d.seq,
        "status": d.status.value,
        "attempts": d.attempts,
        "due_at": d.due_at,
        "updated_at": d.updated_at,
        "error": d.error,
        "replay": d.replay,
        "ordering_key": d.ordering_key,
        "owner": d.owner,
        "run_id": run_id,
        "redriven_at": d.redriven_at,
        "redriven_by": d.redriven_by,
    }


def dead_letter_json(delivery: Delivery, stored: StoredEvent | None) -> dict[str, Any]:
    """A dead letter as JSON: the delivery, and which event it was (id, source, type)."""
    event = None if stored is None else stored.event
    return delivery_json(delivery, stored) | {
        "event_id": None if event is None else event.id,
        "source": None if event is None else event.source,
        "type": None if event is None else event.type,
    }


def subscription_json(sub: SubscriptionInfo, pending: int, dead: int) -> dict[str, Any]:
    return {
        "name": sub.name,
        "kind": sub.kind.value,
        "pattern": sub.pattern,
        "ordered_by": sub.ordered_by,
        "registered_at": sub.registered_at.isoformat(),
        "pending": pending,
        "dead": dead,
    }


def instance_json(inst: ExpectationInstance) -> dict[str, Any]:
    """One instance as JSON (``expectations list`` and ``expectations show``)."""
    return {
        "expectation": inst.expectation,
        "instance": inst.instance,
        "key": inst.key,
        "status": inst.status.value,
        "missing": list(inst.missing),
        "awaited": list(inst.awaited),
        "trigger_seq": inst.trigger_seq,
        "correlation_id": inst.correlation_id,
        "opened_at": inst.opened_at,
        "deadline": inst.deadline,
        "closed_at": inst.closed_at,
        "closed_by": inst.closed_by,
        "violation_id": inst.violation_id,
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert as JSON, as ``legato.Alert`` has it."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "subject": alert.subject,
        "status": alert.status.value,
        "summary": alert.summary,
        "details": alert.details,
        "raised_at": alert.raised_at,
        "resolved_at": alert.resolved_at,
        "times": alert.times,
        "event_id": alert.event_id,
    }


def token_json(token: ApiToken) -> dict[str, Any]:
    """A token as JSON (never its secret)."""
    return {
        "name": token.name,
        "scope": token.scope.value,
        "created_at": token.created_at.isoformat(),
        "revoked_at": None if token.revoked_at is None else token.revoked_at.isoformat(),
    }


def node_json(node: _Node) -> dict[str, Any]:
    """One node of the flow and everything under it, as JSON."""
    if isinstance(node, EventNode):
        return (
            {"kind": "event"}
            | stored_event_json(node.stored)
            | {
                "deliveries": [node_json(d) for d in node.deliveries],
                "caused": [node_json(e) for e in node.caused],
                "run": None if node.run is None else node_json(node.run),
            }
        )
    if isinstance(node, DeliveryNode):
        out = delivery_json(node.delivery)
        out.pop("run_id")
        return (
            {"kind": "delivery"}
            | out
            | {
                "run": None if node.run is None else node_json(node.run),
                "published": [node_json(e) for e in node.published],
            }
        )
    return {
        "kind": "run",
        "run_id": node.run_id,
        "workflow": node.workflow,
        "status": None if node.status is None else node.status.value,
        "published": [node_json(e) for e in node.published],
    }


def flow_json(flow: Flow) -> dict[str, Any]:
    """The flow as JSON: counts, and the tree from its roots."""
    return {
        "correlation_id": flow.correlation_id,
        "events": len(flow.events),
        "runs": len(flow.runs),
        "dead": len(flow.deliveries(DeliveryStatus.DEAD)),
        "pending": len(flow.deliveries(DeliveryStatus.PENDING)),
        "roots": [node_json(n) for n in flow.roots],
        "expectations": [instance_json(i) for i in flow.expectations],
    }


def worker_json(worker: WorkerInfo, runs: int) -> dict[str, Any]:
    """A worker process as JSON, with how many unfinished runs it owns."""
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "started_at": worker.started_at,
        "heartbeat_at": worker.heartbeat_at,
        "workflows": None if worker.workflows is None else list(worker.workflows),
        "lease_s": None if worker.lease is None else worker.lease.total_seconds(),
        "runs": runs,
    }
