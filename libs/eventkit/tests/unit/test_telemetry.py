"""One trace follows a message from producer to consumer, and logs carry its ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from eventkit.settings import KernelSettings
from eventkit.telemetry import (
    context_from_traceparent,
    current_traceparent,
    kafka_span,
    setup_telemetry,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _telemetry() -> None:
    setup_telemetry("toy", KernelSettings(log_json=True))
    setup_telemetry("toy", KernelSettings(log_json=True))  # a second call is harmless
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(_exporter))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter


def test_traceparent_round_trip_through_kafka(exporter: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /cases") as http_span:
        stored = current_traceparent()  # what the outbox writer keeps with the row
    assert stored is not None

    # The relay runs later, outside the request, and restores the trace from the row.
    with kafka_span("produce", "intake.case.events.v1", "ev-1", stored):
        on_the_wire = current_traceparent()
    with kafka_span("consume", "intake.case.events.v1", "ev-1", on_the_wire):
        pass

    spans = {s.name: s for s in exporter.get_finished_spans()}
    produce = spans["send intake.case.events.v1"]
    consume = spans["process intake.case.events.v1"]
    trace_id = http_span.get_span_context().trace_id
    assert produce.context.trace_id == consume.context.trace_id == trace_id
    assert produce.parent is not None and consume.parent is not None
    assert produce.parent.span_id == http_span.get_span_context().span_id
    assert consume.parent.span_id == produce.context.span_id
    assert produce.kind == SpanKind.PRODUCER and consume.kind == SpanKind.CONSUMER
    assert consume.attributes == {
        "messaging.system": "kafka",
        "messaging.destination.name": "intake.case.events.v1",
        "messaging.message.id": "ev-1",
        "messaging.operation.type": "process",
    }
    # Tracing is set up once per process, by whichever app came first (a service's, when
    # the service tests ran before these): only the naming scheme is this test's to check.
    assert str(produce.resource.attributes["service.name"]).startswith("jingmin-")


def test_missing_or_garbage_traceparent_starts_a_new_trace(
    exporter: InMemorySpanExporter,
) -> None:
    assert current_traceparent() is None
    assert (
        not trace.get_current_span(context_from_traceparent("not-a-traceparent"))
        .get_span_context()
        .is_valid
    )
    with kafka_span("consume", "t", "ev-2", None):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_log_records_carry_trace_and_span_ids() -> None:
    handler = next(h for h in logging.getLogger().handlers if h.name == "jingmin")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        with trace.get_tracer("test").start_as_current_span("work") as span:
            logging.getLogger("eventkit.test").warning("案件已受理")
        logging.getLogger("eventkit.test").warning("outside")
    finally:
        handler.setStream(previous)

    inside, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    ctx = span.get_span_context()
    assert inside["trace_id"] == format_trace_id(ctx.trace_id)
    assert inside["span_id"] == format_span_id(ctx.span_id)
    assert inside["service"] == "toy"
    assert inside["message"] == "案件已受理"
    assert inside["level"] == "WARNING"
    assert outside["trace_id"] is None
