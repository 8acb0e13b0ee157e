"""OpenTelemetry tracing across every hop: HTTP in and out, and messages through the queues.

Off unless ``STOCKDAY_OTLP_ENDPOINT`` is set: then a page view pays nothing for it. On, each
process exports its spans over OTLP/HTTP in batches; FastAPI's native telemetry makes the spans
of requests in, httpx's instrumentation those of calls out, and the trace context crosses a
queue as the W3C ``traceparent`` message attribute, so one trace runs from the form submit
through stock-symbol, logo-resizer and queue-worker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stockday.runtime.settings import Settings

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from starlette.types import Scope

log = logging.getLogger("stockday.runtime.tracing")

# Probes and scrapes would be most of the spans and tell nothing.
UNTRACED_PATHS = frozenset({"/api/ping", "/api/ready", "/metrics"})

_enabled = False


def configure_tracing(settings: Settings, service: str) -> None:
    """Install an OTLP-exporting tracer provider and the HTTP instrumentations, once a process.

    Call before the FastAPI app is created (the instrumentation wraps the FastAPI class).
    """
    global _enabled
    if _enabled or not settings.otlp_endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    _enabled = True
    log.info("tracing on: %s exports spans to %s", service, settings.otlp_endpoint)


def fastapi_telemetry(traced: bool) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry settings: its request spans when ``traced``, probes left out.

    Untraced, not even its check of the global providers on every request, which would cost
    4 % of a page view for nothing. Its metrics and logs stay off: the metrics are Prometheus's
    (stockday.runtime.web.observability), the logs our own.
    """
    return {"tracing": traced, "metrics": False, "logs": False, "exclude": _untraced}


def _untraced(scope: Scope) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def shutdown_tracing() -> None:
    """Flush the spans still buffered (a consumer calls this on its way out)."""
    if not _enabled:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    with contextlib.suppress(Exception):
        provider.shutdown()


def message_attributes(message_type: str) -> dict[str, str]:
    """Attributes for a message about to be sent: its type and the current trace context."""
    attributes = {"type": message_type}
    if _enabled:
        from opentelemetry import propagate

        propagate.inject(attributes)
    return attributes


@contextlib.contextmanager
def consuming(queue: str, attributes: Mapping[str, str], message_id: str) -> Iterator[None]:
    """A consumer span for handling one message, child of the span that sent it."""
    if not _enabled:
        yield
        return
    from opentelemetry import propagate, trace

    parent = propagate.extract(dict(attributes))
    tracer = trace.get_tracer("stockday.consumers")
    with tracer.start_as_current_span(
        f"process {queue}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "stockday",
            "messaging.destination.name": queue,
            "messaging.message.id": message_id,
            "messaging.operation.type": "process",
        },
    ):
        yield


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, for log lines; None when tracing is off."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
