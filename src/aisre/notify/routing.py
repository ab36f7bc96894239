"""Which NotificationRoutes and sinks an Incident's current state goes to, and what each
sink must do. Pure: the Incident, the routes and the delivery state recorded in the
Incident's status decide, so a restart or a redelivered watch event decides the same.

A route sees the Incidents of its own namespace; a route in the operator's namespace sees
every namespace (or those its ``selector.namespaces`` names). A change is sent once per
sink: the digest of what was sent is kept per route and sink (``status.notified``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from aisre.api.notification_route import NotificationRoute, NotifyOn, Sink
from aisre.api.taxonomy import Severity
from aisre.kube.scope import labels_match

SEVERITY_RANK = {Severity.CRITICAL.value: 0, Severity.HIGH.value: 1, Severity.MEDIUM.value: 2, Severity.LOW.value: 3}
LIFECYCLE = [e.value for e in NotifyOn]  # Opened … Resolved, in the order they happen
PAGERS = ("pagerDuty", "opsgenie")


@dataclass(frozen=True)
class Plan:
    """One message to send: a route's sink, the change, and how (post, reply, trigger, resolve)."""

    route: str  # namespace/name
    sink: Sink
    event: str
    action: str
    digest: str
    per_minute: int


def parse_route(obj: dict[str, Any]) -> NotificationRoute | None:
    try:
        return NotificationRoute.model_validate(obj)
    except ValidationError:
        return None  # the API server validates on write; an older object that no longer does is skipped


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def events_now(incident: dict[str, Any]) -> dict[str, dt.datetime | None]:
    """The changes that hold for the Incident now, each with when it happened (when known)."""
    meta, status = incident.get("metadata") or {}, incident.get("status") or {}
    journal = status.get("remediations") or []
    found: dict[str, dt.datetime | None] = {NotifyOn.OPENED.value: _time(meta.get("creationTimestamp"))}
    if status.get("rootCause"):
        identified = [e for e in status.get("timeline") or [] if e.get("event") == "RootCauseIdentified"]
        found[NotifyOn.IDENTIFIED.value] = _time(identified[-1].get("time")) if identified else None
    waiting = [j for j in journal if j.get("decision") == "AwaitingApproval" and j.get("result", "Pending") == "Pending"]
    if waiting:
        found[NotifyOn.AWAITING_APPROVAL.value] = _time(waiting[-1].get("decidedAt"))
    ran = [j for j in journal if j.get("result") in ("Succeeded", "Failed", "Reverted")]
    if ran:
        found[NotifyOn.REMEDIATED.value] = _time(ran[-1].get("finishedAt"))
    if status.get("state") == "Resolved":
        found[NotifyOn.RESOLVED.value] = _time(status.get("resolvedAt"))
    return found


def digest(incident: dict[str, Any], event: str) -> str:
    """What a message for ``event`` would say, in short: a new root cause, another action
    awaiting approval or another result is a change worth a message; a timeline entry is not."""
    status = incident.get("status") or {}
    root = status.get("rootCause") or {}
    actions = ",".join(f"{j.get('id')}:{j.get('decision')}:{j.get('result')}" for j in status.get("remediations") or [])
    said = f"{event}|{root.get('category', '')}|{(root.get('resource') or {}).get('name', '')}|{actions}"
    return f"{event}:{hashlib.sha256(said.encode()).hexdigest()[:16]}"


def route_sees(route: NotificationRoute, route_namespace: str, incident: dict[str, Any], operator_namespace: str) -> bool:
    """Whether the route's selector holds for the Incident (its changes aside)."""
    meta, spec, status = incident.get("metadata") or {}, incident.get("spec") or {}, incident.get("status") or {}
    selector = route.spec.selector
    if not may_see(route_namespace, selector.namespaces, meta.get("namespace", ""), operator_namespace):
        return False
    if SEVERITY_RANK.get(spec.get("severity", "medium"), 2) > SEVERITY_RANK[selector.min_severity]:
        return False
    if selector.categories is not None and (status.get("rootCause") or {}).get("category") not in selector.categories:
        return False
    if selector.labels is not None and not labels_match(selector.labels.to_kube(), meta.get("labels") or {}):
        return False
    return True


def sink_action(sink_type: str, event: str, state: dict[str, Any]) -> str | None:
    """What the sink does for the change, given what it was sent before; None: nothing.
    A pager is paged once (a later update is no second page) and resolved only when it
    was paged; Slack starts a thread once and replies in it after."""
    sent = set(state.get("events") or [])
    if sink_type in PAGERS:
        if event == NotifyOn.RESOLVED.value:
            return "resolve" if sent - {NotifyOn.RESOLVED.value} and NotifyOn.RESOLVED.value not in sent else None
        return None if sent else "trigger"
    if sink_type == "slack" and state.get("thread"):
        return "reply"
    return "post"


def state_of(incident: dict[str, Any], route: str, sink: str) -> dict[str, Any]:
    for entry in (incident.get("status") or {}).get("notified") or []:
        if entry.get("route") == route and entry.get("sink") == sink:
            return dict(entry)
    return {}


def plan(routes: list[dict[str, Any]], incident: dict[str, Any], operator_namespace: str) -> list[Plan]:
    """Every message the Incident's current state calls for, at most one per route and sink:
    the latest change each route wants, unless its digest was sent already or it happened
    before the route existed (a new route does not replay history)."""
    happened = events_now(incident)
    plans: list[Plan] = []
    for obj in routes:
        route = parse_route(obj)
        meta = obj.get("metadata") or {}
        if route is None or route.spec.paused:
            continue
        if not route_sees(route, meta.get("namespace", ""), incident, operator_namespace):
            continue
        wanted = [e for e in LIFECYCLE if e in happened and e in route.spec.selector.changes]
        if not wanted:
            continue
        event = wanted[-1]
        created, at = _time(meta.get("creationTimestamp")), happened[event]
        if created is not None and at is not None and at < created - dt.timedelta(seconds=5):
            continue
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        said = digest(incident, event)
        # An Incident raised from a page is already paged there: no second page for it (its
        # own page is resolved with it by the pager step).
        paged = {page.get("system") for page in (incident.get("spec") or {}).get("pages") or []}
        for sink in route.spec.sinks:
            if sink.type in PAGERS and sink.type in paged:
                continue
            state = state_of(incident, key, sink.name)
            if state.get("sent") == said:
                continue
            action = sink_action(sink.type, event, state)
            if action is not None:
                plans.append(Plan(key, sink, event, action, said, route.spec.max_per_minute))
    return plans


def may_see(route_namespace: str, selector_namespaces: list[str] | None, namespace: str, operator_namespace: str) -> bool:
    """Whether a route in ``route_namespace`` could send Incidents of ``namespace`` at all
    (the cheap check before anything is read)."""
    if route_namespace != operator_namespace and namespace != route_namespace:
        return False  # a team's route sees its own namespace only, whatever it names
    return selector_namespaces is None or namespace in selector_namespaces
