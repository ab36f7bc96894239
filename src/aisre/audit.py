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

import datetime as dt
import uuid
from typing import Any

import structlog

from aisre.redact import redact, redact_text
from aisre.tracing import trace_id as current_trace_id

SCHEMA = "aisre.audit/v1"
log = structlog.get_logger("aisre.audit")


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
    return entry
