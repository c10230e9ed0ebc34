"""The hybrid course purchase, traced with OpenTelemetry into a file of JSON lines, for
tests/integration/test_tracing.py. ``$LEGATO_TEST_SPANS`` names the file; every process
(the starter, each worker) appends its finished spans to it.

    python -m tests.integration.otel_app start DATABASE   # starts one purchase, traced
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import legato

SPANS_ENV = "LEGATO_TEST_SPANS"
FAILED_ONCE_ENV = "LEGATO_TEST_FAILED_ONCE"  # a file: the analytics handler fails once


class FileExporter(SpanExporter):
    """Each finished span as one JSON line (appended: several processes share the file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                context = span.get_span_context()
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind.name,
                            "trace_id": f"{context.trace_id:032x}",
                            "span_id": f"{context.span_id:016x}",
                            "parent_id": None
                            if span.parent is None
                            else f"{span.parent.span_id:016x}",
                            "links": [f"{link.context.span_id:016x}" for link in span.links],
                            "attributes": dict(span.attributes or {}),
                            "pid": os.getpid(),
                        }
                    )
                    + "\n"
                )
                out.flush()
        return SpanExportResult.SUCCESS


if os.environ.get(SPANS_ENV):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ[SPANS_ENV])))
    trace.set_tracer_provider(provider)

app = legato.App("school", poll_interval=timedelta(milliseconds=50))


@app.step
async def authorize_payment(order: dict) -> str:
    return f"pay-{order['id']}"


@authorize_payment.compensate
async def refund(order: dict, payment: str) -> None:
    return None


@app.step
async def create_enrollment(order: dict) -> str:
    return f"enr-{order['id']}"


@app.step
async def grant_access(order: dict) -> str:
    return "granted"


@app.workflow(name="purchase")
async def purchase(order: dict) -> str:
    payment = await authorize_payment(order)
    await create_enrollment(order)
    await grant_access(order)
    await legato.publish("purchase.completed", order, subject=str(order["id"]))
    return payment


@app.on("purchase.completed", name="send_receipt")
async def send_receipt(event: legato.Event) -> None:
    return None


@app.on(
    "purchase.completed",
    name="record_conversion",
    retry=legato.Retry(max_attempts=3, initial_interval=timedelta(milliseconds=50)),
)
def record_conversion(event: legato.Event) -> None:
    marker = os.environ.get(FAILED_ONCE_ENV)
    if marker and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise ConnectionError("analytics down, once")


@app.on("purchase.completed", name="refresh_recommendations")
def refresh_recommendations(event: legato.Event) -> None:
    return None


if __name__ == "__main__" and sys.argv[1:2] == ["start"]:
    with legato.Client(sys.argv[2]) as client:
        handle = client.start("purchase", {"id": 7}, run_id="purchase-7")
        print(handle.run_id)
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
