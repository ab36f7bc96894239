"""The audit trail: every decision aisre makes, as a record with a stable schema.

What is decided — the plan of an Investigation, the root cause chosen, each policy decision
on an action with its reason, an approval counted with its identity, an action executed,
verified, reverted — is one record: ``schema`` (``aisre.audit/v1``), ``id``, ``time``,
``actor`` (the operator instance, or the person whose approval counted), ``object`` (the
Incident or Investigation it is about: kind, namespace, name, uid), ``decision`` (CamelCase),
``reason`` (one line, redacted), ``detail`` (structured, redacted) and ``traceId`` (the W3C trace
of the work, when there is one: given, or the current span's). Records go out as JSON lines on the ``aisre.audit`` logger,
beside the Kubernetes Events the same decisions post (docs/security.md, "Audit").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from aisre.redact import redact, redact_text
from aisre.tracing import trace_id as current_trace_id

SCHEMA = "aisre.audit/v1"
log = structlog.get_logger("aisre.audit")
Sink = Callable[[dict[str, Any]], None]
# Further destinations of the records (the fleet's audit topic), by the event loop of the
# operator that added them: two operators in one process (tests) each get their own records.
_sinks: dict[Sink, asyncio.AbstractEventLoop | None] = {}


def record(decision: str, *, actor: str, obj: dict[str, Any], reason: str, detail: dict[str, Any] | None = None,
           trace_id: str | None = None, time: dt.datetime | None = None) -> dict[str, Any]:
    """One audit record (pure). ``obj``: kind, namespace, name and uid of what it is about."""
    return {"schema": SCHEMA, "id": str(uuid.uuid4()),
            "time": (time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": actor, "object": {k: obj.get(k) for k in ("kind", "namespace", "name", "uid") if obj.get(k)},
            "decision": decision, "reason": redact_text(reason)[:1000], "detail": redact(detail or {}),
            "traceId": trace_id or current_trace_id()}


def emit(decision: str, **fields: Any) -> dict[str, Any]:
    """Write one record to the audit log; returns it."""
    entry = record(decision, **fields)
    log.info("audit", audit=entry)
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # a worker thread: every sink
        here = None
    for sink, loop in list(_sinks.items()):
        if here is None or loop is None or loop is here:
            try:
                sink(entry)
            except Exception as error:  # a sink never costs the decision its record
                log.warning("audit sink failed", error=f"{type(error).__name__}: {error}"[:300])
    return entry


def add_sink(sink: Sink) -> Callable[[], None]:
    """Also send every record emitted on the caller's event loop to ``sink`` (which must not
    block); returns what removes it."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    _sinks[sink] = loop
    return lambda: _sinks.pop(sink, None) and None
