"""Prometheus metrics of a worker, fed by its hooks.

Counts come from what the engine *committed* (``after_commit``): a run started is a
``NewRun`` that landed, a retry a ``step_failed`` record with a retry time, a dead letter a
delivery settled ``dead``. So a metric never counts what a crash undid. Durations come from
the attempt hooks (a step's attempt, a handler's call); the gauges (runs by status, open
expectations, overdue timers, pending deliveries) are read from the database at each
scrape, so every worker of a database reports the same figures for them.

Metric names (all prefixed ``legato_``) are listed in ``METRICS`` and in
docs/observability.md; the alert rules and the dashboard use only these.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from legato.model.alerts import AlertKind
from legato.model.history import EventKind
from legato.model.runs import TERMINAL_STATUSES
from legato.observability.hooks import Hooks
from legato.storage.base import (
    Append,
    NewRun,
    RaiseAlert,
    SetRun,
    UpdateDelivery,
    UpdateExpectation,
    Write,
)

if TYPE_CHECKING:
    from legato.engine.worker import Engine

_TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
_STEP_FAILED = EventKind.STEP_FAILED.value
_COMPENSATED = EventKind.COMPENSATION_COMPLETED.value
_COMPENSATION_FAILED = EventKind.COMPENSATION_FAILED.value
_DURATIONS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)
_SCRAPE_TIMEOUT_S = 5.0

METRICS = {
    "legato_runs_started_total": "Runs this worker created, by workflow (a client's: none).",
    "legato_runs_ended_total": "Runs that reached a terminal status, by workflow and status.",
    "legato_step_duration_seconds": "Step attempts' durations, by workflow, step and outcome.",
    "legato_step_failures_total": "Step attempts that failed, by workflow and step.",
    "legato_step_retries_total": "Step attempts that failed and will be retried.",
    "legato_compensations_total": "Compensations that ended, by workflow, step and outcome.",
    "legato_deliveries_total": "Deliveries settled, by subscription and outcome.",
    "legato_delivery_lag_seconds": "From an event's recording to its handler's end.",
    "legato_dead_letters_total": "Deliveries that ran out of attempts, by subscription.",
    "legato_expectations_violated_total": "Expectation instances violated, by expectation.",
    "legato_alerts_raised_total": "Alerts raised, by kind.",
    "legato_runs": "Runs in the database, by status (read at the scrape).",
    "legato_expectations": "Open and violated expectation instances (read at the scrape).",
    "legato_timers_overdue": "Parked runs past their wake-up time that no worker holds.",
    "legato_deliveries": "Pending and dead deliveries, by subscription (read at the scrape).",
    "legato_alerts": "Raised alerts, by kind (read at the scrape).",
    "legato_up": "1 while this worker's engine runs.",
}


class Metrics(Hooks):
    """The metrics of one engine, in their own Prometheus registry (``registry``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.engine: Engine | None = None
        r = self.registry
        d = METRICS
        self.runs_started = Counter(
            "legato_runs_started", d["legato_runs_started_total"], ["workflow"], registry=r
        )
        self.runs_ended = Counter(
            "legato_runs_ended", d["legato_runs_ended_total"], ["workflow", "status"], registry=r
        )
        self.step_duration = Histogram(
            "legato_step_duration_seconds",
            d["legato_step_duration_seconds"],
            ["workflow", "step", "outcome"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.step_failures = Counter(
            "legato_step_failures",
            d["legato_step_failures_total"],
            ["workflow", "step"],
            registry=r,
        )
        self.step_retries = Counter(
            "legato_step_retries", d["legato_step_retries_total"], ["workflow", "step"], registry=r
        )
        self.compensations = Counter(
            "legato_compensations",
            d["legato_compensations_total"],
            ["workflow", "step", "outcome"],
            registry=r,
        )
        self.deliveries = Counter(
            "legato_deliveries",
            d["legato_deliveries_total"],
            ["subscription", "outcome"],
            registry=r,
        )
        self.delivery_lag = Histogram(
            "legato_delivery_lag_seconds",
            d["legato_delivery_lag_seconds"],
            ["subscription"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.dead_letters = Counter(
            "legato_dead_letters", d["legato_dead_letters_total"], ["subscription"], registry=r
        )
        self.violations = Counter(
            "legato_expectations_violated",
            d["legato_expectations_violated_total"],
            ["expectation"],
            registry=r,
        )
        self.alerts_raised = Counter(
            "legato_alerts_raised", d["legato_alerts_raised_total"], ["kind"], registry=r
        )
        self._attempts: dict[tuple[str, str, int], float] = {}
        r.register(_DatabaseGauges(self))

    # -- hooks ---------------------------------------------------------------------------

    def attach(self, engine: Any) -> None:
        self.engine = engine
        # Every series this worker may move starts at 0: a rate() or increase() sees the
        # first event, not a series appearing at 1.
        for name in engine.registry.workflows:
            self.runs_started.labels(name)
            for status in sorted(_TERMINAL):
                self.runs_ended.labels(name, status)
        for name in engine.registry.expectations:
            self.violations.labels(name)
        for name in engine.registry.subscriptions:
            self.dead_letters.labels(name)
            for outcome in ("done", "retry", "dead"):
                self.deliveries.labels(name, outcome)

    def _workflow(self, run_id: str) -> str:
        engine = self.engine
        live = None if engine is None else engine.live.get(run_id)
        return "unknown" if live is None else live.workflow.name

    def before_step_attempt(self, run_id: str, step: str, attempt: int) -> None:
        self._attempts[(run_id, step, attempt)] = time.perf_counter()
        return None

    def after_step_attempt(
        self, run_id: str, step: str, attempt: int, error: BaseException | None
    ) -> None:
        began = self._attempts.pop((run_id, step, attempt), None)
        workflow = self._workflow(run_id)
        if error is not None:
            self.step_failures.labels(workflow, step).inc()
        if began is not None:
            outcome = "completed" if error is None else "failed"
            self.step_duration.labels(workflow, step, outcome).observe(time.perf_counter() - began)

    def after_delivery(
        self, subscription: str, event: Any, attempt: int, error: BaseException | None
    ) -> None:
        recorded = getattr(event, "recordedtime", None)
        if recorded is not None and self.engine is not None:
            lag = self.engine.clock.time() - recorded.timestamp()
            self.delivery_lag.labels(subscription).observe(max(lag, 0.0))

    def after_commit(self, writes: Sequence[Write]) -> None:
        for op in writes:
            if isinstance(op, Append):
                self._record(op)
            elif isinstance(op, NewRun):
                self.runs_started.labels(op.workflow).inc()
            elif isinstance(op, SetRun):
                if op.status in _TERMINAL:
                    self.runs_ended.labels(self._workflow(op.run_id), op.status).inc()
            elif isinstance(op, UpdateDelivery):
                self._settled(op)
            elif isinstance(op, UpdateExpectation):
                if op.status == "violated":
                    self.violations.labels(op.expectation).inc()
            elif isinstance(op, RaiseAlert):
                self.alerts_raised.labels(op.kind).inc()

    def _record(self, op: Append) -> None:
        if op.kind == _STEP_FAILED:
            data = orjson.loads(op.data) if op.data else {}
            if isinstance(data, dict) and data.get("retry_at") is not None:
                self.step_retries.labels(self._workflow(op.run_id), op.name or "?").inc()
        elif op.kind == _COMPENSATED:
            self.compensations.labels(self._workflow(op.run_id), op.name or "?", "completed").inc()
        elif op.kind == _COMPENSATION_FAILED:
            data = orjson.loads(op.data) if op.data else {}
            if isinstance(data, dict) and data.get("final"):
                workflow = self._workflow(op.run_id)
                self.compensations.labels(workflow, op.name or "?", "failed").inc()

    def _settled(self, op: UpdateDelivery) -> None:
        if op.status == "done":
            outcome = "done"
        elif op.status == "dead":
            outcome = "dead"
            self.dead_letters.labels(op.subscription).inc()
        elif op.attempts and op.error is not None:
            outcome = "retry"
        else:
            return  # made pending again (a redrive, a release): not an outcome
        self.deliveries.labels(op.subscription, outcome).inc()


class _DatabaseGauges(Collector):
    """The gauges read from the database at each scrape (through the engine's loop)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # read at collect time only: nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine = self.metrics.engine
        up = GaugeMetricFamily("legato_up", METRICS["legato_up"])
        running = engine is not None and engine.running and engine.loop is not None
        up.add_metric([], 1.0 if running else 0.0)
        yield up
        if not running:
            return
        assert engine is not None and engine.loop is not None
        future = asyncio.run_coroutine_threadsafe(
            engine.store.counts(engine.clock.time()), engine.loop
        )
        try:
            counts = future.result(_SCRAPE_TIMEOUT_S)
        except Exception:  # the database does not answer: /readyz says so; gauges left out
            future.cancel()
            return
        runs = GaugeMetricFamily("legato_runs", METRICS["legato_runs"], labels=["status"])
        for status, n in sorted(counts.runs.items()):
            runs.add_metric([status], n)
        yield runs
        expected = GaugeMetricFamily(
            "legato_expectations", METRICS["legato_expectations"], labels=["expectation", "status"]
        )
        for (name, status), n in sorted(counts.expectations.items()):
            expected.add_metric([name, status], n)
        yield expected
        overdue = GaugeMetricFamily("legato_timers_overdue", METRICS["legato_timers_overdue"])
        overdue.add_metric([], counts.overdue_timers)
        yield overdue
        deliveries = GaugeMetricFamily(
            "legato_deliveries", METRICS["legato_deliveries"], labels=["subscription", "status"]
        )
        for (sub, status), n in sorted(counts.deliveries.items()):
            deliveries.add_metric([sub, status], n)
        yield deliveries
        raised = GaugeMetricFamily("legato_alerts", METRICS["legato_alerts"], labels=["kind"])
        for kind in sorted(AlertKind):  # every kind, 0 included: a rule compares them
            raised.add_metric([kind.value], counts.alerts.get(kind.value, 0))
        yield raised
