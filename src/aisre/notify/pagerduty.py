"""PagerDuty Events API v2 (POST /v2/enqueue): a trigger with a dedup_key derived from the
Incident's uid, so every trigger for one Incident is the same PagerDuty alert, and a
resolve with that key when the Incident resolves.

Answers: 202 ``{"status": "success", "dedup_key": …}``; 400 ``{"status": "invalid event",
"errors": […]}`` (permanent); 429 when throttled (retried with backoff).
"""

from __future__ import annotations

from typing import Any

import httpx

from aisre.notify.base import check_response, post
from aisre.notify.message import Notice
from aisre.redact import redact

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


def dedup_key(uid: str) -> str:
    """Stable for the Incident across restarts and replicas (PagerDuty allows 255 characters)."""
    return f"aisre-{uid}"


def trigger_event(notice: Notice) -> dict[str, Any]:
    """The trigger event without its routing key."""
    details: dict[str, Any] = {head: text for head, text in notice.sections()}
    event: dict[str, Any] = {
        "event_action": "trigger", "dedup_key": dedup_key(notice.uid),
        "payload": {"summary": notice.headline[:1024], "source": f"{notice.namespace}/{notice.resource}",
                    "severity": SEVERITY.get(notice.severity, "warning"), "component": notice.resource,
                    "group": notice.namespace, "class": (notice.root_cause or {}).get("category") or "Unknown",
                    "custom_details": details},
        "client": "aisre",
    }
    if notice.grafana:
        event["links"] = [{"href": notice.grafana, "text": "Grafana"}]
    return event


def resolve_event(notice: Notice) -> dict[str, Any]:
    return {"event_action": "resolve", "dedup_key": dedup_key(notice.uid)}


async def send(client: httpx.AsyncClient, api_url: str, routing_key: str, notice: Notice, action: str) -> str:
    """Triggers or resolves; returns the dedup_key."""
    event = redact(resolve_event(notice) if action == "resolve" else trigger_event(notice))
    event["routing_key"] = routing_key  # after redaction: the key is the credential, not content
    check_response(await post(client, f"{api_url.rstrip('/')}/v2/enqueue", json=event), (202,))
    return str(event["dedup_key"])


async def resolve_key(client: httpx.AsyncClient, api_url: str, routing_key: str, key: str) -> None:
    """Resolves the alert with this dedup_key, whoever triggered it (a page aisre was raised
    from: its incident_key)."""
    event = {"event_action": "resolve", "dedup_key": key, "routing_key": routing_key}
    check_response(await post(client, f"{api_url.rstrip('/')}/v2/enqueue", json=event), (202,))
