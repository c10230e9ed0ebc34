"""OpenTelemetry spans with the SDK's in-memory exporter, through
``legato.App(tracer_provider=...)`` (no global provider is set: other tests stay untraced)."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import legato
from legato.testing import FakeClock


def traced_app(
    clock: FakeClock, database: str = "memory://"
) -> tuple[legato.App, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return legato.App("shop", database, clock=clock, tracer_provider=provider), exporter


async def test_a_purchase_and_its_reactions_are_one_trace(clock: FakeClock) -> None:
    app, exporter = traced_app(clock)
    flaky = {"n": 0}

    @app.step(name="charge")
    def charge(order: str) -> str:  # a def step: its span is current on its thread
        return "ch-1"

    @app.workflow(name="purchase")
    async def purchase(order: str) -> str:
        await charge(order)
        await legato.publish("purchase.completed", {"order": order})
        return "ok"

    @app.on(
        "purchase.completed",
        name="analytics",
        retry=legato.Retry(max_attempts=2, initial_interval=timedelta(seconds=1), jitter=False),
    )
    async def analytics(event: legato.Event) -> None:
        flaky["n"] += 1
        if flaky["n"] == 1:
            raise ConnectionError("down once")

    @app.workflow(name="fulfil", on="purchase.completed")
    async def fulfil(event: legato.Event) -> str:
        return await charge(event.data["order"])

    async with app:
        run = await app.start(purchase, "o-1")
        assert await run.result(timeout=5) == "ok"
        await clock.advance(timedelta(seconds=2))  # the retry of analytics
        await clock.settle()
    spans = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)

    assert len({s.context.trace_id for s in spans}) == 1  # one trace, start to end
    [start] = by_name["start purchase"]
    assert start.parent is None
    [run_span, triggered] = sorted(
        by_name["run purchase"] + by_name["run fulfil"], key=lambda s: s.start_time
    )
    assert run_span.parent.span_id == start.context.span_id
    [publish] = by_name["publish purchase.completed"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent.span_id == run_span.context.span_id
    deliveries = by_name["process purchase.completed"]
    assert [d.attributes["messaging.consumer.group.name"] for d in deliveries] == [
        "analytics",
        "analytics",
    ]
    for delivery in deliveries:
        assert delivery.kind is SpanKind.CONSUMER
        assert delivery.parent.span_id == publish.context.span_id
        assert [link.context.span_id for link in delivery.links] == [publish.context.span_id]
    assert [d.status.status_code for d in deliveries] == [StatusCode.ERROR, StatusCode.UNSET]
    # The triggered run continues the event's trace; its step is its child.
    assert triggered.parent.span_id == publish.context.span_id
    steps = by_name["step charge"]
    assert {s.parent.span_id for s in steps} == {
        run_span.context.span_id,
        triggered.context.span_id,
    }


async def test_nothing_is_traced_without_a_provider(clock: FakeClock) -> None:
    app = legato.App("shop", "memory://", clock=clock)

    @app.workflow(name="hello")
    async def hello() -> str:
        await legato.publish("said.hello", {})
        return "hi"

    async with app:
        run = await app.start(hello)
        assert await run.result(timeout=5) == "hi"
        [stored] = await app.list_events()
        assert stored.event.traceparent is None
        assert (await app.get_run(run.run_id)).traceparent is None


async def test_a_violation_and_the_run_it_starts_continue_the_trigger_s_trace(
    clock: FakeClock,
) -> None:
    app, exporter = traced_app(clock)

    @app.workflow(name="refund_or_enroll")
    async def refund_or_enroll(violation: legato.Event) -> str:
        return "refunded"

    app.expect(
        "paid-learner-is-enrolled",
        after="purchase.completed",
        then="enrollment.created",
        within=timedelta(minutes=5),
        start="refund_or_enroll",
    )
    async with app:
        await app.publish("purchase.completed", {}, correlationid="p-1")
        await clock.advance(timedelta(minutes=5))
        await clock.settle()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    trigger = spans["publish purchase.completed"]
    violated = spans["publish legato.expectation.violated"]
    run = spans["run refund_or_enroll"]
    assert violated.parent.span_id == trigger.context.span_id
    assert run.parent.span_id == violated.context.span_id
    assert {trigger.context.trace_id, violated.context.trace_id, run.context.trace_id} == {
        trigger.context.trace_id
    }
