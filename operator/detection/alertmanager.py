"""Alertmanager's webhook payload (version 4) → Signals.

Labels name the object: pod, deployment, statefulset, daemonset, job, service,
persistentvolumeclaim or node (with namespace). A firing alert is a signal like any
other and goes through the same correlation; a resolved one clears it, which resolves
the Incident once nothing else keeps it open; an alert whose ``endsAt`` has passed is over
even if no resolved notification comes. Alertmanager already waited its ``for:``, so
alerts count at once.

The payload comes from outside the cluster: each alert is checked on its own, and a bad
one is skipped with its reason while the rest of the batch is taken. Object names must be
DNS-1123 names (a namespace a DNS-1123 label), the namespace must be one the operator
watches, and at most ``MAX_ALERTS`` alerts of one request are read. Nothing of an alert
reaches a metric label (its name is free text).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource, signal_key
from aisre.api.taxonomy import Severity
from aisre.operator.detection.index import ClusterIndex

LABEL_KINDS = [  # most specific first
    ("pod", "Pod"), ("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet"),
    ("job_name", "Job"), ("service", "Service"), ("persistentvolumeclaim", "PersistentVolumeClaim"),
]
SEVERITIES = {"critical": Severity.CRITICAL, "page": Severity.CRITICAL, "error": Severity.HIGH, "high": Severity.HIGH,
              "warning": Severity.MEDIUM, "medium": Severity.MEDIUM, "info": Severity.LOW, "low": Severity.LOW}


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: dt.datetime | None = Field(None, alias="startsAt")
    ends_at: dt.datetime | None = Field(None, alias="endsAt")
    fingerprint: str | None = Field(None, max_length=256)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time without a zone is UTC (Alertmanager always sends one; others may not)."""
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


class WebhookPayload(BaseModel):
    """Alertmanager webhook, version 4. The alerts stay raw here: each is validated on its own."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field("", alias="groupKey")
    alerts: list[Any] = Field(min_length=1)


MAX_ALERTS = 500  # read from one request; Alertmanager's own max_alerts is usually far lower
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _bad_name(labels: dict[str, str]) -> str | None:
    """Why the labels that name an object are not Kubernetes names, or None (pure)."""
    for label in ("namespace", "exported_namespace"):
        value = labels.get(label)
        if value is not None and (len(value) > 63 or not DNS1123_LABEL.match(value)):
            return f"label {label} is not a namespace name (DNS-1123 label)"
    for label in [name for name, _ in LABEL_KINDS] + ["node", "kubernetes_node"]:
        value = labels.get(label)
        if value is not None and (len(value) > 253 or not DNS1123_SUBDOMAIN.match(value)):
            return f"label {label} is not an object name (DNS-1123)"
    return None


def _object(labels: dict[str, str], index: ClusterIndex) -> tuple[ResourceRef, tuple[ResourceRef, ...]] | None:
    namespace = labels.get("namespace") or labels.get("exported_namespace")
    if namespace:
        for label, kind in LABEL_KINDS:
            name = labels.get(label)
            if name:
                ref = ResourceRef(kind=kind, name=name, namespace=namespace)
                if kind == "Pod":
                    info = next((p for p in index.pods.values() if p.namespace == namespace and p.name == name), None)
                    return ref, info.owners if info else ()
                return ref, index.chain_from(namespace, kind, name)
    node = labels.get("node") or labels.get("kubernetes_node")
    if node:
        return ResourceRef(kind="Node", name=node), ()
    return None


def _signal(alert: Alert, index: ClusterIndex, now: dt.datetime,
            namespace_allowed: Callable[[str], bool]) -> Signal | str:
    """One alert as a signal, or why it is skipped (pure over the index)."""
    name = alert.labels.get("alertname", "Alert")[:128]
    bad = _bad_name(alert.labels)
    if bad is not None:
        return f"{name[:64]}: {bad}"
    found = _object(alert.labels, index)
    if found is None:
        return (f"{name[:64]}: no namespace with pod/deployment/statefulset/daemonset/job_name/service/"
                "persistentvolumeclaim label, and no node label")
    ref, owners = found
    if ref.namespace is not None and not namespace_allowed(ref.namespace):
        return f"{name[:64]}: namespace {ref.namespace} is not watched"
    identity = alert.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    # Resolved, or firing with an endsAt already past: over.
    firing = alert.status == "firing" and (alert.ends_at is None or alert.ends_at.year < 2 or alert.ends_at > now)
    return Signal(
        source=SignalSource.ALERTMANAGER, reason=name, time=now, object=ref,
        uid=f"alert/{identity[:256]}", owners=owners, node=alert.labels.get("node"),
        severity=SEVERITIES.get(alert.labels.get("severity", "").lower(), Severity.MEDIUM),
        firing=firing, since=alert.starts_at if alert.starts_at and alert.starts_at <= now else None,
        until=alert.ends_at if firing and alert.ends_at and alert.ends_at.year >= 2 else None,
        key=signal_key("alertmanager", identity),
        message=(alert.annotations.get("summary") or alert.annotations.get("description") or "")[:512],
        detail={"labels": {k[:64]: v[:256] for k, v in list(alert.labels.items())[:20]}},
    )


def signals_from(payload: WebhookPayload, index: ClusterIndex, now: dt.datetime,
                 namespace_allowed: Callable[[str], bool] = lambda _: True) -> tuple[list[Signal], list[str]]:
    """The payload's alerts as signals, and the reasons alerts were skipped: each alert on
    its own, so one bad alert never costs the others."""
    signals: list[Signal] = []
    skipped: list[str] = []
    for position, raw in enumerate(payload.alerts):
        if position >= MAX_ALERTS:
            skipped.append(f"{len(payload.alerts) - MAX_ALERTS} alerts beyond the first {MAX_ALERTS} of one request")
            break
        try:
            alert = Alert.model_validate(raw)
            found = _signal(alert, index, now, namespace_allowed)
        except (ValidationError, ValueError, TypeError, OverflowError) as error:
            skipped.append(f"alerts[{position}]: not an alert: {str(error).splitlines()[0][:200]}")
            continue
        if isinstance(found, str):
            skipped.append(found)
        else:
            signals.append(found)
    return signals, skipped


def parse(body: Any) -> WebhookPayload:
    """Raises pydantic.ValidationError for a payload that is not Alertmanager's v4."""
    return WebhookPayload.model_validate(body)
