"""Writing the detector's decisions as Incident objects, and reading them back at start-up.

The Incident is the store of record: its spec carries the fingerprint (also a label, to
find it), occurrences and the folded signals; an annotation keeps the keys of the
signals already counted, so an operator restarted while signals continue neither
opens a duplicate nor counts an occurrence twice.

Only Incidents detection itself opened are ever carried on: each carries the operator's
mark (``aisre.api.signing``) over its namespace, name and fingerprint, and its root lives
in its namespace (a node's, in the operator's). A look-alike someone else made — the
fingerprint label, a root annotation naming another namespace's object, or the very name
detection was about to use — is ignored: never adopted at start-up, never updated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import OrderedDict
from typing import Any

import httpx
import structlog

from aisre.agents.base import parse_time
from aisre.api.incident import IncidentSource
from aisre.api.meta import GROUP, VERSION, ResourceRef
from aisre.api.signal import SignalSource, signal_key
from aisre.api.signing import MARK_ANNOTATION, has_mark, object_mark
from aisre.api.taxonomy import Severity
from aisre.operator.detection.correlate import Root
from aisre.operator.detection.detector import ReasonCount, Tracked
from aisre.operator.investigation import rfc3339
from aisre.redact import redact_text
from aisre.tracing import TRACEPARENT_ANNOTATION

log = structlog.get_logger("aisre.detection")

FINGERPRINT_LABEL = f"{GROUP}/fingerprint"
KEYS_ANNOTATION = f"{GROUP}/signal-keys"
ROOT_ANNOTATION = f"{GROUP}/root"
SOURCE_OF_PAGER = {"pagerDuty": SignalSource.PAGERDUTY.value, "opsgenie": SignalSource.OPSGENIE.value}


def _path(namespace: str, name: str | None = None, status: bool = False) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents"
    if name:
        path += f"/{name}"
    if status:
        path += "/status"
    return path


def spec_of(t: Tracked) -> dict[str, Any]:
    reasons = sorted(t.reasons.values(), key=lambda r: -r.count)[:32]
    members = list(t.members.values())[:50]
    return {
        "title": t.title(),
        "severity": Severity(t.severity).value,
        "source": IncidentSource(t.source).value,
        **({"origin": t.origin[:63]} if t.origin else {}),
        "resource": t.root.ref.to_kube(),
        **({"affected": [m.to_kube() for m in members]} if members else {}),
        "fingerprint": t.fingerprint,
        "signals": [{"source": r.source, "reason": r.reason, "count": r.count, "firstSeen": rfc3339(r.first_seen),
                     "lastSeen": rfc3339(max(r.last_seen, r.first_seen)), "message": redact_text(r.message)[:1024]}
                    for r in reasons],
        "firstSeen": rfc3339(t.first_seen),
        "lastSeen": rfc3339(max(t.last_seen, t.first_seen)),
        "occurrences": max(1, t.occurrences),
        **({"pages": list(t.pages.values())[:16]} if t.pages else {}),
    }


def _metadata(t: Tracked, key: bytes) -> dict[str, Any]:
    assert t.name is not None
    return {
        "labels": {FINGERPRINT_LABEL: t.fingerprint, "app.kubernetes.io/managed-by": "aisre"},
        "annotations": {KEYS_ANNOTATION: ",".join(t.seen), ROOT_ANNOTATION: f"{t.root.kind}/{t.root.namespace}/{t.root.name}",
                        MARK_ANNOTATION: object_mark(key, "Incident", t.namespace, t.name, t.fingerprint),
                        **({TRACEPARENT_ANNOTATION: t.traceparent} if t.traceparent else {})},
    }


def is_ours(incident: dict[str, Any], key: bytes, operator_namespace: str) -> bool:
    """Detection opened it: its mark verifies, and its root belongs where it lives (pure)."""
    meta = incident.get("metadata") or {}
    fingerprint = (incident.get("spec") or {}).get("fingerprint") or ""
    kind, root_namespace, _ = ((meta.get("annotations") or {}).get(ROOT_ANNOTATION) or "//").split("/", 2)
    home = operator_namespace if kind == "Node" else root_namespace
    return bool(fingerprint) and meta.get("namespace") == home and has_mark(key, incident, "Incident", fingerprint)


async def create(client: httpx.AsyncClient, t: Tracked, now: dt.datetime, key: bytes, operator_namespace: str) -> None:
    for attempt in range(3):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident",
                "metadata": {"name": t.name, "namespace": t.namespace, **_metadata(t, key)}, "spec": spec_of(t)}
        response = await client.post(_path(t.namespace), json=body)
        if response.status_code != 409:
            break
        existing = await client.get(_path(t.namespace, t.name))
        if existing.status_code == 200 and is_ours(existing.json(), key, operator_namespace):
            await update(client, t, now, key)  # our own, from before a restart
            return
        # Someone else's object holds the name: never written into; another name.
        t.name = f"{(t.name or 'incident')[:240]}-{secrets.token_hex(2)}"
    response.raise_for_status()
    log.info("incident opened", incident=t.name, namespace=t.namespace, root=t.root.display, severity=t.severity)


async def update(client: httpx.AsyncClient, t: Tracked, now: dt.datetime, key: bytes) -> None:
    patch = {"metadata": _metadata(t, key), "spec": spec_of(t)}
    response = await client.patch(_path(t.namespace, t.name), json=patch,
                                  headers={"Content-Type": "application/merge-patch+json"})
    response.raise_for_status()


async def resolve(client: httpx.AsyncClient, t: Tracked, now: dt.datetime, report: str | None) -> None:
    current = await client.get(_path(t.namespace, t.name))
    if current.status_code == 404:
        return
    current.raise_for_status()
    status = current.json().get("status") or {}
    timeline = list(status.get("timeline") or [])[-98:]
    timeline.append({"time": rfc3339(now), "event": "Resolved",
                     "message": f"no signals for {int((now - (t.clear_since or now)).total_seconds())} s"})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Resolved"]
    conditions.append({"type": "Resolved", "status": "True", "reason": "SignalsCleared",
                       "message": "the signals that raised it have cleared", "lastTransitionTime": rfc3339(now),
                       "observedGeneration": current.json()["metadata"].get("generation", 1)})
    patch: dict[str, Any] = {"status": {"state": "Resolved", "resolvedAt": rfc3339(now), "timeline": timeline,
                                        "conditions": conditions}}
    if report:
        patch["status"]["report"] = redact_text(report)[:65000]
    response = await client.patch(_path(t.namespace, t.name, status=True), json=patch,
                                  headers={"Content-Type": "application/merge-patch+json"})
    response.raise_for_status()
    log.info("incident resolved", incident=t.name, namespace=t.namespace)


def _parse(value: str | None) -> dt.datetime:
    return parse_time(value) or dt.datetime.now(dt.UTC)


def tracked_from(incident: dict[str, Any], now: dt.datetime, key: bytes, operator_namespace: str) -> Tracked | None:
    """An open Incident written by detection, as the detector tracks it; None for anything
    else (resolved, or not detection's own)."""
    meta = incident["metadata"]
    spec = incident.get("spec") or {}
    if (incident.get("status") or {}).get("state") == "Resolved" or not is_ours(incident, key, operator_namespace):
        return None
    kind, namespace, name = (meta.get("annotations", {}).get(ROOT_ANNOTATION) or "//").split("/", 2)
    if not kind or not name:
        return None
    t = Tracked(root=Root(kind, name, namespace), namespace=meta["namespace"], fingerprint=spec["fingerprint"],
                candidate_since=_parse(spec.get("firstSeen")), first_seen=_parse(spec.get("firstSeen")),
                last_seen=_parse(spec.get("lastSeen")), name=meta["name"], occurrences=int(spec.get("occurrences", 1)),
                severity=Severity(spec.get("severity", "medium")), aggregate=kind == "Namespace",
                source=IncidentSource(spec.get("source", "detection")), origin=spec.get("origin"), dirty=False,
                written_at=now)
    t.seen = OrderedDict((key, None) for key in (meta.get("annotations", {}).get(KEYS_ANNOTATION) or "").split(",") if key)
    for ref in spec.get("affected") or []:
        r = ResourceRef.model_validate(ref)
        t.members[f"{r.namespace or ''}/{r.display()}"] = r
    for page in spec.get("pages") or []:
        if page.get("system") and page.get("id"):  # keyed as the page's signal is (pagers.signal_of)
            t.pages[signal_key(SOURCE_OF_PAGER.get(page["system"], ""), page["id"])] = dict(page)
    for s in spec.get("signals") or []:
        t.reasons[s["reason"]] = ReasonCount(s.get("source", ""), s["reason"], int(s.get("count", 1)),
                                             _parse(s.get("firstSeen")), _parse(s.get("lastSeen")), s.get("message", ""))
    return t


async def _get_patiently(client: httpx.AsyncClient, path: str, params: dict[str, str], attempts: int = 8) -> httpx.Response:
    """A read that waits out an API server's throttling (429) or brief trouble (5xx)."""
    delay = 0.5
    for attempt in range(attempts):
        response = await client.get(path, params=params)
        if response.status_code != 429 and response.status_code < 500 or attempt == attempts - 1:
            response.raise_for_status()
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After") or delay))
        delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


async def load_open(client: httpx.AsyncClient, namespaces: tuple[str, ...], now: dt.datetime, key: bytes,
                    operator_namespace: str) -> list[Tracked]:
    paths = [_path(ns) for ns in namespaces] if namespaces else [f"/apis/{GROUP}/{VERSION}/incidents"]
    out: list[Tracked] = []
    for path in paths:
        response = await _get_patiently(client, path, {"labelSelector": FINGERPRINT_LABEL})
        for item in response.json().get("items") or []:
            tracked = tracked_from(item, now, key, operator_namespace)
            if tracked is not None:
                out.append(tracked)
    return out
