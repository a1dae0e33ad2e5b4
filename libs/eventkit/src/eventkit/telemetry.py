"""Traces, logs and metrics for every service: one setup call, Kafka propagation, kernel metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

from eventkit.settings import KernelSettings

__all__ = [
    "CONSUMER_LAG",
    "CONSUMER_PROCESSED",
    "HTTP_REQUEST_SECONDS",
    "OUTBOX_FAILURES",
    "OUTBOX_OLDEST_PENDING_SECONDS",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
    "TraceContextFilter",
    "context_from_traceparent",
    "current_traceparent",
    "kafka_span",
    "setup_telemetry",
]

# Metrics are module globals because prometheus-client registers each name once per process.
HTTP_REQUEST_SECONDS = Histogram(
    "jingmin_http_request_duration_seconds",
    "HTTP request latency by route template and status.",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_PENDING = Gauge(
    "jingmin_outbox_pending_messages", "Outbox rows not yet published to Kafka.", ["service"]
)
OUTBOX_OLDEST_PENDING_SECONDS = Gauge(
    "jingmin_outbox_oldest_pending_seconds",
    "Age of the oldest unpublished outbox row (0 when none).",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "jingmin_outbox_published", "Outbox rows published to Kafka.", ["service"]
)
OUTBOX_FAILURES = Counter(
    "jingmin_outbox_failures", "Relay publish attempts that failed.", ["service"]
)
CONSUMER_PROCESSED = Counter(
    "jingmin_consumer_processed",
    "Messages handled by a consumer, by outcome (applied, duplicate, dead_lettered).",
    ["service", "consumer", "outcome"],
)
CONSUMER_LAG = Gauge(
    "jingmin_consumer_lag_messages",
    "Messages behind the partition high-water mark, summed over partitions.",
    ["service", "consumer"],
)

_HANDLER_NAME = "jingmin"
_TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()
_tracing_configured = False


class TraceContextFilter(logging.Filter):
    """Stamps each record with the current span's ids so logs join their trace."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format_trace_id(ctx.trace_id) if ctx.is_valid else None
        record.span_id = format_span_id(ctx.span_id) if ctx.is_valid else None
        record.service = self.service
        return True


def setup_telemetry(service_name: str, settings: KernelSettings) -> None:
    """Configure tracing (once per process) and root logging (replaced on every call)."""
    _setup_tracing(service_name, settings)
    _setup_logging(service_name, settings)


def _setup_tracing(service_name: str, settings: KernelSettings) -> None:
    global _tracing_configured
    # OpenTelemetry refuses to replace a global provider, so the first caller's settings win.
    if _tracing_configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"jingmin-{service_name}"}))
    if settings.otel_exporter_otlp_endpoint:
        # The setting mirrors OTEL_EXPORTER_OTLP_ENDPOINT, a base URL; the exporter wants the path.
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    if settings.otel_exporter_otlp_endpoint:
        # A span per SQL statement costs real CPU on every write; only worth it when exported.
        AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _tracing_configured = True


def _setup_logging(service_name: str, settings: KernelSettings) -> None:
    root = logging.getLogger()
    # Only our own handler is replaced: others (pytest's capture, a host's) stay attached.
    for old in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.name = _HANDLER_NAME
    handler.addFilter(TraceContextFilter(service_name))
    if settings.log_json:
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(service)s trace=%(trace_id)s] %(message)s"
            )
        )
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside any sampled-or-not span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(_TRACEPARENT)


def context_from_traceparent(tp: str | None) -> Context:
    """A context parented on the span `tp` names; empty (a new trace) if absent or invalid."""
    if not tp:
        return Context()
    return _propagator.extract({_TRACEPARENT: tp})


@contextmanager
def kafka_span(
    kind: Literal["produce", "consume"], topic: str, envelope_id: str, traceparent: str | None
) -> Iterator[Span]:
    """A current PRODUCER or CONSUMER span for one message, parented on its traceparent.

    Without a traceparent the span nests under whatever is current, so a direct publish
    inside a request still joins that request's trace.
    """
    parent = context_from_traceparent(traceparent) if traceparent else otel_context.get_current()
    operation = "send" if kind == "produce" else "process"
    tracer = trace.get_tracer("eventkit.kafka")
    with tracer.start_as_current_span(
        f"{operation} {topic}",
        context=parent,
        kind=SpanKind.PRODUCER if kind == "produce" else SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.message.id": envelope_id,
            "messaging.operation.type": operation,
        },
    ) as span:
        yield span
