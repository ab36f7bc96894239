"""Resolving the pages an Incident was raised from (``spec.pages``) when it resolves.

Which pages and with whose credentials is decided here, pure: a page its pager closed is
left alone, a page already tried (``status.pages``) is not tried again, and a page is
resolved with the first NotificationRoute that sees the Incident and has a sink for that
pager (PagerDuty: an Events API v2 resolve with the incident's ``incident_key`` as the
dedup_key, so the routing key must be that service's integration; Opsgenie: a close by
alias). Without such a route the page is recorded as ``NoRoute``: a person resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from aisre.api.incident import PagerSystem
from aisre.api.notification_route import Sink
from aisre.notify import opsgenie, pagerduty
from aisre.notify.base import PermanentSinkError
from aisre.notify.routing import parse_route, route_sees


@dataclass(frozen=True)
class PageClose:
    """One page to resolve, and the route and sink whose credentials do it (None: none has them)."""

    page: dict[str, Any]
    route: str | None = None
    sink: Sink | None = None


def pages_to_close(routes: list[dict[str, Any]], incident: dict[str, Any], operator_namespace: str) -> list[PageClose]:
    """The pages of a resolved Incident still to be resolved, each with its credentials."""
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    if status.get("state") != "Resolved":
        return []
    tried = {(p.get("system"), p.get("id")) for p in status.get("pages") or []}
    out: list[PageClose] = []
    for page in spec.get("pages") or []:
        if page.get("closed") or (page.get("system"), page.get("id")) in tried:
            continue
        out.append(_with_credentials(page, routes, incident, operator_namespace))
    return out


def _with_credentials(page: dict[str, Any], routes: list[dict[str, Any]], incident: dict[str, Any],
                      operator_namespace: str) -> PageClose:
    for obj in routes:
        route = parse_route(obj)
        meta = obj.get("metadata") or {}
        if route is None or route.spec.paused or not route_sees(route, meta.get("namespace", ""), incident,
                                                                operator_namespace):
            continue
        for sink in route.spec.sinks:
            if sink.type == page.get("system"):
                return PageClose(page, f"{meta.get('namespace', '')}/{meta.get('name', '')}", sink)
    return PageClose(page)


async def resolve(client: httpx.AsyncClient, close: PageClose, credential: str) -> None:
    """Resolves the page through its pager's API with the sink's credential (raises SinkError)."""
    page, sink = close.page, close.sink
    assert sink is not None
    if page.get("system") == PagerSystem.PAGERDUTY.value and sink.pager_duty is not None:
        if not page.get("key"):
            raise PermanentSinkError("the PagerDuty incident has no incident_key to resolve it by")
        await pagerduty.resolve_key(client, sink.pager_duty.api_url, credential, page["key"])
    elif page.get("system") == PagerSystem.OPSGENIE.value and sink.opsgenie is not None:
        identifier, kind = (page["key"], "alias") if page.get("key") else (page["id"], "id")
        await opsgenie.close(client, sink.opsgenie.api_url, credential, identifier, kind,
                             "resolved by aisre: its Incident resolved")


def credential_ref(sink: Sink) -> Any:
    """The SecretKeyRef of the sink's pager credential."""
    return sink.pager_duty.routing_key_secret_ref if sink.pager_duty is not None else sink.opsgenie.api_key_secret_ref  # type: ignore[union-attr]
