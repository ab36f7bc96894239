"""OpenTelemetry traces: one trace per Investigation, exported over OTLP.

Configured by the standard variables and off when they are unset: with neither
``OTEL_EXPORTER_OTLP_ENDPOINT`` nor ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or with
``OTEL_SDK_DISABLED=true``, or ``OTEL_TRACES_EXPORTER`` other than ``otlp``) no provider is
made, and every span is the API's no-op span: no exporter, no thread, no allocation worth
counting. With one, the SDK reads the rest itself: ``OTEL_SERVICE_NAME`` (default
``aisre``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``_ARG``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``. Export is OTLP over HTTP/protobuf (port
4318; the one exporter shipped), batched, in the SDK's thread.

The provider is this module's, not the process-global one: the operator's own spans go
where the operator was configured, whatever a library in the same process set up, and a
test can start and stop it. A W3C ``traceparent`` from a webhook request carries over to
the Incident (an annotation) and from there to its Investigation, whose trace id is
written in its status (docs/tracing.md).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT_ANNOTATION = "aisre.dev/traceparent"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_propagator = TraceContextTextMapPropagator()
_provider: Any = None  # an SDK TracerProvider while tracing is on


def enabled_by(env: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces (pure)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "otlp":
        return False  # "none", or an exporter this package does not ship (console, zipkin): off
    return bool((env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip())


def configure(env: Mapping[str, str] | None = None, exporter: Any = None) -> bool:
    """Start exporting when the environment asks for it (or an ``exporter`` is given: tests);
    returns whether traces are on. Called once at the operator's start."""
    global _provider
    env = os.environ if env is None else env
    if _provider is not None or (exporter is None and not enabled_by(env)):
        return _provider is not None
    # Imported only when on: the SDK and the exporter cost nothing to a process that never traces.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "aisre"}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider = provider
    return True


def shutdown() -> None:
    """Flush what is buffered and stop (the operator's cleanup)."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def tracer() -> Tracer:
    if _provider is not None:
        return _provider.get_tracer("aisre")  # type: ignore[no-any-return]
    return trace.get_tracer("aisre")  # the global provider: the API's no-op unless someone set one


def valid_traceparent(value: str | None) -> str | None:
    """A W3C traceparent as given, if it is one (version 00's shape, ids not all zero); else None."""
    found = _TRACEPARENT.match((value or "").strip().lower())
    if found is None or found[1] == "ff" or set(found[2]) == {"0"} or set(found[3]) == {"0"}:
        return None
    return found[0]


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a span continues from, or None (a new trace)."""
    valid = valid_traceparent(traceparent)
    return _propagator.extract({"traceparent": valid}) if valid else None


@contextmanager
def span(name: str, *, parent: str | None = None, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span, current inside the block; its parent is ``parent`` (a traceparent) when given,
    else the current span. An exception leaving the block marks it as an error."""
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer().start_as_current_span(name, context=context_of(parent), attributes=attrs) as current:
        yield current


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (nothing happens when tracing is off)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


def fail(message: str) -> None:
    """Marks the current span as an error, with why."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_status(Status(StatusCode.ERROR, message[:500]))


def _exported(of: Span | None) -> SpanContext | None:
    """The span's context if this process exports it (tracing on, sampled): a trace id is
    worth recording only where the trace can be found. Off, a span still carries a caller's
    context along (the API's no-op span does), and that is no trace of ours."""
    ctx = (of or trace.get_current_span()).get_span_context()
    return ctx if _provider is not None and ctx.is_valid and ctx.trace_flags.sampled else None


def trace_id(of: Span | None = None) -> str | None:
    """The trace id (32 hex) of the span (default: the current one), if it is exported."""
    ctx = _exported(of)
    return format(ctx.trace_id, "032x") if ctx is not None else None


def traceparent(of: Span | None = None) -> str | None:
    """The W3C traceparent of the span (default: the current one), if it is exported."""
    ctx = _exported(of)
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}" if ctx is not None else None


def record_span(name: str, *, parent: str | None, start: dt.datetime | None = None, end: dt.datetime | None = None,
                attributes: Mapping[str, Any] | None = None, error: str | None = None) -> str | None:
    """A span for something already done (a decision written, an action finished), in the
    trace ``parent`` names, from ``start`` to ``end`` (default: now); returns its trace id."""
    ctx = context_of(parent)
    if ctx is None:
        return None
    now = dt.datetime.now(dt.UTC)
    begin, finish = start or end or now, end or now
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    recorded = tracer().start_span(name, context=ctx, attributes=attrs, start_time=_ns(begin))
    if error:
        recorded.set_status(Status(StatusCode.ERROR, error[:500]))
    recorded.end(end_time=_ns(max(finish, begin)))
    return trace_id(recorded)


def _ns(when: dt.datetime) -> int:
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp() * 1e9)
