"""Pages → Signals: PagerDuty webhooks (v3) and Opsgenie webhook integrations.

A page is a person's alarm about a service; it joins the same correlation as any other
signal once it names something the cluster has. What it names is read, in this order
(docs/pagers.md):

1. fields: PagerDuty's custom details (``custom_details``, or ``body.details``, or custom
   fields), Opsgenie's ``details`` and its ``key:value`` tags. ``namespace`` plus one of
   ``pod``, ``deployment``, ``statefulset``, ``daemonset``, ``service`` or ``workload`` (any
   of the workload kinds, then a Service);
2. else the first ``<namespace>/<name>`` in the PagerDuty service's name or the
   incident's title (Opsgenie: the alert's entity, then its message).

A Service that selects one workload's pods is that workload. A page that names nothing
the cluster has (or a namespace not watched) is skipped with its reason — the pager gets
202 all the same: a page about the database outside the cluster is not an error.

A page dedupes by the pager's own id: its trigger and its resolve are the same signal key,
so a resolve clears it. Pages aisre itself sent (dedup key / alias ``aisre-…``) are
ignored: a NotificationRoute paging PagerDuty must not come back as a new signal.

PagerDuty signs each delivery: ``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw
body>``, one ``v1=`` per active secret (two while a secret is rotated).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisre.api.incident import PagerSystem
from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource, signal_key
from aisre.api.taxonomy import Severity
from aisre.operator.detection.alertmanager import DNS1123_LABEL, DNS1123_SUBDOMAIN
from aisre.operator.detection.index import ClusterIndex

OWN_PAGE_PREFIX = "aisre-"  # notify/pagerduty.py dedup_key, notify/opsgenie.py alias
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
FIELD_KINDS = [("pod", "Pod"), ("deployment", "Deployment"), ("statefulset", "StatefulSet"),
               ("daemonset", "DaemonSet"), ("workload", None), ("service", "Service")]
NAMED = re.compile(r"(?<![\w.-])([a-z0-9][-a-z0-9]{0,62})/([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)(?![\w/-])")
OPSGENIE_PRIORITY = {"P1": Severity.CRITICAL, "P2": Severity.HIGH, "P3": Severity.MEDIUM, "P4": Severity.LOW,
                     "P5": Severity.LOW}


# --- the signature -------------------------------------------------------------------

def pagerduty_signature(body: bytes, secret: str) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pagerduty_signed(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """Whether any ``v1=`` signature of the header is the body's under any of our secrets."""
    given = [part.strip() for part in (header or "").split(",") if part.strip().startswith("v1=")]
    expected = [pagerduty_signature(body, secret) for secret in secrets if secret]
    # Every pair compared (no early exit) so the time taken says nothing about which matched.
    matched = False
    for signature in given[:8]:
        for wanted in expected:
            matched |= hmac.compare_digest(signature.encode(), wanted.encode())
    return matched


# --- the payloads ----------------------------------------------------------------------

class PagerDutyEvent(BaseModel):
    """The ``event`` of a PagerDuty v3 webhook; ``data`` is the incident."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field("", max_length=128)
    event_type: str = Field(..., max_length=128)
    resource_type: str = Field("", max_length=64)
    occurred_at: dt.datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PagerDutyWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: PagerDutyEvent


class OpsgenieWebhook(BaseModel):
    """Opsgenie's webhook integration: the action and the alert."""

    model_config = ConfigDict(extra="ignore")

    action: str = Field(..., max_length=64)
    alert: dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    """Why a delivery is no signal: ``ignored`` (not a trigger or resolve, aisre's own page)
    or ``unmatched`` (it names nothing the cluster has, or a namespace not watched)."""

    outcome: Literal["ignored", "unmatched"]
    reason: str


@dataclass(frozen=True)
class Page:
    """A page, whatever the pager: what it is, whether it fires, and what it names."""

    system: PagerSystem
    id: str
    key: str | None  # what resolves it through the pager's event API
    firing: bool
    title: str
    url: str | None
    severity: Severity
    fields: dict[str, str]  # lower-cased keys
    texts: tuple[str, ...]  # where a <namespace>/<name> may be written, in order


def _str(value: Any, limit: int = 256) -> str:
    return str(value)[:limit] if isinstance(value, str | int | float) and not isinstance(value, bool) else ""


def _fields(*sources: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for source in sources:
        if isinstance(source, dict):
            pairs: Iterable[tuple[Any, Any]] = source.items()
        elif isinstance(source, list):  # PagerDuty custom fields, or Opsgenie tags
            pairs = [(i.get("name"), i.get("value")) if isinstance(i, dict) else tuple(str(i).split(":", 1))
                     for i in source if isinstance(i, dict) or (isinstance(i, str) and ":" in i)]
        else:
            continue
        for key, value in list(pairs)[:100]:
            text = _str(value).strip()
            if isinstance(key, str) and text:
                out.setdefault(key.strip().lower()[:64], text)
    return out


def pagerduty_page(hook: PagerDutyWebhook) -> Page | Skipped:
    """The page of an incident.triggered / incident.resolved event, or why there is none."""
    event = hook.event
    if event.event_type not in ("incident.triggered", "incident.resolved"):
        return Skipped("ignored", f"{event.event_type[:64]}: not a trigger or a resolve")
    data = event.data
    incident_id = _str(data.get("id"), 128)
    if not incident_id:
        return Skipped("ignored", f"{event.event_type}: the incident has no id")
    service = data.get("service") if isinstance(data.get("service"), dict) else {}
    priority = _str((data.get("priority") or {}).get("summary") if isinstance(data.get("priority"), dict) else "", 16)
    severity = (Severity.CRITICAL if priority.upper() == "P1"
                else Severity.HIGH if data.get("urgency") == "high" else Severity.MEDIUM)
    body = data.get("body") if isinstance(data.get("body"), dict) else {}
    return Page(system=PagerSystem.PAGERDUTY, id=incident_id, key=_str(data.get("incident_key"), 255) or None,
                firing=event.event_type == "incident.triggered", title=_str(data.get("title"), 512),
                url=_str(data.get("html_url"), 1024) or None, severity=severity,
                fields=_fields(data.get("custom_details"), body.get("details"), data.get("custom_fields")),
                texts=(_str(service.get("summary") or service.get("name"), 256), _str(data.get("title"), 512)))


def opsgenie_page(hook: OpsgenieWebhook) -> Page | Skipped:
    """The page of a Create / Close action, or why there is none."""
    if hook.action not in ("Create", "Close"):
        return Skipped("ignored", f"{hook.action[:64]}: not a Create or a Close")
    alert = hook.alert
    alert_id = _str(alert.get("alertId"), 128)
    if not alert_id:
        return Skipped("ignored", f"{hook.action}: the alert has no alertId")
    return Page(system=PagerSystem.OPSGENIE, id=alert_id, key=_str(alert.get("alias"), 255) or None,
                firing=hook.action == "Create", title=_str(alert.get("message"), 512), url=None,
                severity=OPSGENIE_PRIORITY.get(_str(alert.get("priority"), 4).upper(), Severity.MEDIUM),
                fields=_fields(alert.get("details"), alert.get("tags")),
                texts=(_str(alert.get("entity"), 512), _str(alert.get("message"), 512)))


# --- what a page names -----------------------------------------------------------------

def _service_workload(index: ClusterIndex, namespace: str, name: str) -> ResourceRef | None:
    """The one workload whose pods the Service selects, or None."""
    selector = index.services.get((namespace, name))
    if not selector:
        return None
    found = [w.ref for (ns, _, _), w in index.workloads.items()
             if ns == namespace and w.pod_labels and all(w.pod_labels.get(k) == v for k, v in selector.items())]
    return found[0] if len(found) == 1 else None


def _known(index: ClusterIndex, namespace: str, kind: str | None, name: str) -> ResourceRef | None:
    """The object, if the cluster has it; a Service as the workload it fronts."""
    if kind == "Pod":
        return next((ResourceRef(kind="Pod", name=name, namespace=namespace)
                     for p in index.pods.values() if p.namespace == namespace and p.name == name), None)
    for candidate in ([kind] if kind else [*WORKLOAD_KINDS, "Service"]):
        if candidate == "Service":
            if (namespace, name) in index.services:
                return _service_workload(index, namespace, name) or ResourceRef(kind="Service", name=name,
                                                                                 namespace=namespace)
        elif (namespace, candidate, name) in index.workloads:
            return ResourceRef(kind=candidate, name=name, namespace=namespace)
    return None


def named_object(page: Page, index: ClusterIndex) -> ResourceRef | str:
    """The object the page names and the cluster has, or why there is none (pure over the index)."""
    namespace = page.fields.get("namespace", "")
    if namespace:
        if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
            return "field namespace is not a namespace name (DNS-1123 label)"
        for key, kind in FIELD_KINDS:
            name = page.fields.get(key)
            if not name:
                continue
            if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
                return f"field {key} is not an object name (DNS-1123)"
            return _known(index, namespace, kind, name) or f"{namespace}/{name} ({key}) is not in the cluster"
    for text in page.texts:
        for found_namespace, name in NAMED.findall(text):
            ref = _known(index, found_namespace, None, name)
            if ref is not None:
                return ref
    return "names no namespace with pod/deployment/statefulset/daemonset/service/workload, nor <namespace>/<name> " \
           "the cluster has"


def signal_of(page: Page, index: ClusterIndex, now: dt.datetime, namespace_allowed: Callable[[str], bool],
              hold: float, traceparent: str | None = None) -> Signal | Skipped:
    """The page as a signal, or why it is skipped (pure over the index)."""
    source = SignalSource.PAGERDUTY if page.system == PagerSystem.PAGERDUTY else SignalSource.OPSGENIE
    reason = "PagerDutyIncident" if page.system == PagerSystem.PAGERDUTY else "OpsgenieAlert"
    if (page.key or "").startswith(OWN_PAGE_PREFIX):
        return Skipped("ignored", f"{reason} {page.id}: aisre's own page")
    found = named_object(page, index)
    if isinstance(found, str):
        return Skipped("unmatched", f"{reason} {page.id}: {found}")
    if found.namespace is not None and not namespace_allowed(found.namespace):
        return Skipped("unmatched", f"{reason} {page.id}: namespace {found.namespace} is not watched")
    owners = index.chain_from(found.namespace or "", found.kind, found.name) if found.kind != "Pod" else next(
        (p.owners for p in index.pods.values() if p.namespace == found.namespace and p.name == found.name), ())
    return Signal(
        source=source, reason=reason, time=now, object=found, uid=f"page/{source.value}/{page.id}", owners=owners,
        severity=page.severity, firing=page.firing,
        until=now + dt.timedelta(seconds=hold) if page.firing and hold > 0 else None,
        key=signal_key(source.value, page.id), message=page.title[:512],
        detail={"page": {"system": page.system.value, "id": page.id, **({"key": page.key} if page.key else {}),
                         **({"url": page.url} if page.url else {})}},
        traceparent=traceparent,
    )


def parse_pagerduty(body: Any) -> PagerDutyWebhook:
    """Raises pydantic.ValidationError for a body that is not a v3 webhook."""
    return PagerDutyWebhook.model_validate(body)


def parse_opsgenie(body: Any) -> OpsgenieWebhook:
    """Raises pydantic.ValidationError for a body that is not Opsgenie's webhook."""
    return OpsgenieWebhook.model_validate(body)


Kind = Literal["pagerduty", "opsgenie"]


def page_of(kind: Kind, body: Any) -> Page | Skipped:
    """Either pager's body as its page, or why there is none; raises ValidationError for a
    body that is not that pager's webhook at all."""
    return pagerduty_page(parse_pagerduty(body)) if kind == "pagerduty" else opsgenie_page(parse_opsgenie(body))

