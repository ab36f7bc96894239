"""The fleet's record format and topic names (pure: no I/O).

Every record on every aisre topic is one ``Envelope`` in JSON: ``schema_version``
(``aisre.fleet/v1``), ``type`` (signal, incident, audit), ``tenant`` (the cluster or team id of
the operator that wrote it), ``key`` (also the Kafka key: a Signal's stable dedupe key, an
Incident's uid, or for audit the uid of the object it is about), ``time`` and ``data``.

Incident records are lifecycle *changes*, each with an id that is stable for that change
(``opened``, ``identified:<category>:<resource>``, ``decided:<action>:<decision>`` …), derived
from the Incident's own status, so whoever watches the Incident derives the same changes in
the same order and publishes each once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FLEET_SCHEMA = "aisre.fleet/v1"
TENANT = re.compile(r"^[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?$")  # no dots: topic names split on them
RecordType = Literal["signal", "incident", "audit"]


class Envelope(BaseModel):
    """One record on an aisre topic."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal["aisre.fleet/v1"] = FLEET_SCHEMA
    type: RecordType
    tenant: str = Field(..., pattern=TENANT.pattern)
    key: str = Field(..., min_length=1, max_length=256)
    time: dt.datetime
    data: dict[str, Any]


def check_tenant(tenant: str) -> str:
    if not TENANT.match(tenant):
        raise ValueError(f"tenant {tenant!r} is not a lowercase name of letters, digits, - and _ (at most 63)")
    return tenant


class Topics:
    """The topics of one tenant: ``aisre.<tenant>.signals``, ``.incidents``, ``.audit`` (written),
    ``.external`` (external signals read) and ``.external.dlq`` (those refused, with the reason)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = check_tenant(tenant)
        self.signals = f"aisre.{tenant}.signals"
        self.incidents = f"aisre.{tenant}.incidents"
        self.audit = f"aisre.{tenant}.audit"
        self.external = f"aisre.{tenant}.external"
        self.dead_letter = f"aisre.{tenant}.external.dlq"

    def all(self) -> tuple[str, ...]:
        return (self.signals, self.incidents, self.audit, self.external, self.dead_letter)


def published_annotation(tenant: str) -> str:
    """The annotation on an Incident that lists, as JSON, the change ids the operator of
    ``tenant`` published and the broker acknowledged: what a restarted operator must not
    publish again."""
    return f"fleet.aisre.dev/{check_tenant(tenant)}"


def published_changes(incident: dict[str, Any], tenant: str) -> list[str]:
    """The change ids the Incident says were published for ``tenant`` (none if it says nothing readable)."""
    value = ((incident.get("metadata") or {}).get("annotations") or {}).get(published_annotation(tenant))
    try:
        found = json.loads(value) if value else []
    except ValueError:
        return []
    return [str(c) for c in found] if isinstance(found, list) else []


INCIDENTS_TOPIC = re.compile(r"^aisre\.(?P<tenant>[a-z0-9][-a-z0-9_]*)\.incidents$")


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(type_: RecordType, tenant: str, key: str, data: dict[str, Any], time: dt.datetime | None = None) -> bytes:
    """An envelope as the bytes put on Kafka. Built as a dict, not through the model: this is on
    the watches' path (thousands a second); ``Envelope`` validates what consumers read."""
    return json.dumps({"schema_version": FLEET_SCHEMA, "type": type_, "tenant": tenant, "key": key,
                       "time": _rfc3339(time or dt.datetime.now(dt.UTC)), "data": data},
                      separators=(",", ":"), default=str).encode()


# --- Incident lifecycle ------------------------------------------------------------------

LIFECYCLE = ("Opened", "RootCauseIdentified", "ActionDecided", "ActionExecuted", "ActionVerified", "Resolved", "Deleted")
RAN = ("Succeeded", "Failed", "Reverted")


def changes_of(incident: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The lifecycle changes that hold for the Incident now, in the order they happen:
    (change id, change, what the change is about). A later root cause (a re-investigation)
    or another action is a new change; the same state seen again is not."""
    status = incident.get("status") or {}
    found: list[tuple[str, str, dict[str, Any]]] = [("opened", "Opened", {})]
    root = status.get("rootCause") or {}
    if root.get("category"):
        resource = root.get("resource") or {}
        found.append((f"identified:{root['category']}:{resource.get('kind', '')}/{resource.get('name', '')}",
                      "RootCauseIdentified", {}))
    for entry in status.get("remediations") or []:
        action = {k: entry.get(k) for k in ("id", "type", "target", "decision", "reason", "policy", "approvedBy",
                                            "result", "decidedAt", "startedAt", "finishedAt") if entry.get(k) is not None}
        found.append((f"decided:{entry.get('id')}:{entry.get('decision')}", "ActionDecided", {"action": action}))
        if entry.get("startedAt"):
            found.append((f"executed:{entry.get('id')}", "ActionExecuted", {"action": action}))
        if entry.get("result") in RAN:
            found.append((f"verified:{entry.get('id')}:{entry.get('result')}", "ActionVerified", {"action": action}))
    if status.get("state") == "Resolved" or status.get("resolvedAt"):
        found.append(("resolved", "Resolved", {}))
    return found


def snapshot(incident: dict[str, Any]) -> dict[str, Any]:
    """What every incident record says about the Incident as it is now: enough for the fleet
    view to show it from the latest record of its key alone."""
    meta, spec, status = incident.get("metadata") or {}, incident.get("spec") or {}, incident.get("status") or {}
    root = status.get("rootCause") or None
    return {
        "uid": meta.get("uid"), "namespace": meta.get("namespace"), "name": meta.get("name"),
        "title": spec.get("title"), "severity": spec.get("severity"), "source": spec.get("source"),
        "resource": spec.get("resource"), "fingerprint": spec.get("fingerprint"), "state": status.get("state"),
        "openedAt": meta.get("creationTimestamp"), "resolvedAt": status.get("resolvedAt"),
        # The Investigation's conclusion as the Incident mirrors it: category, resource,
        # summary and confidence.
        "rootCause": root, "investigation": (status.get("investigationRef") or {}).get("name"),
    }
