"""Opsgenie Alert API: create an alert whose alias is stable for the Incident (Opsgenie
deduplicates open alerts by alias), and close it by alias when the Incident resolves.
Requests are asynchronous on Opsgenie's side: it answers 202 with a requestId.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from aisre.notify.base import check_response, post
from aisre.notify.message import Notice
from aisre.redact import redact

PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}


def alias(uid: str) -> str:
    return f"aisre-{uid}"


def create_request(notice: Notice, responders: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": notice.headline[:130], "alias": alias(notice.uid),
        "description": notice.text()[:15000], "priority": PRIORITY.get(notice.severity, "P3"),
        "source": "aisre", "entity": f"{notice.namespace}/{notice.resource}"[:512],
        "tags": ["aisre", notice.namespace, (notice.root_cause or {}).get("category") or "Unknown"],
        "details": {"namespace": notice.namespace, "incident": notice.name, "kubectl": notice.kubectl},
    }
    if responders:
        body["responders"] = [{"name": team, "type": "team"} for team in responders]
    return body


async def send(client: httpx.AsyncClient, api_url: str, api_key: str, notice: Notice, action: str,
               responders: list[str] | None = None) -> str:
    """Creates or closes the alert; returns its alias."""
    base = api_url.rstrip("/")
    headers = {"Authorization": f"GenieKey {api_key}"}
    if action == "resolve":
        url = f"{base}/v2/alerts/{alias(notice.uid)}/close"
        body = redact({"source": "aisre", "note": notice.headline})
        check_response(await post(client, url, params={"identifierType": "alias"}, json=body, headers=headers), (202,))
    else:
        check_response(await post(client, f"{base}/v2/alerts", json=redact(create_request(notice, responders)),
                                  headers=headers), (202,))
    return alias(notice.uid)


async def close(client: httpx.AsyncClient, api_url: str, api_key: str, identifier: str, identifier_type: str,
                note: str) -> None:
    """Closes an alert aisre did not create (a page it was raised from), by alias or id."""
    # The identifier came from outside (a webhook): quoted whole, so it stays one path segment.
    url = f"{api_url.rstrip('/')}/v2/alerts/{quote(identifier, safe='')}/close"
    check_response(await post(client, url, params={"identifierType": identifier_type},
                              json={"source": "aisre", "note": note},
                              headers={"Authorization": f"GenieKey {api_key}"}), (202,))
