"""Alertmanager's webhook payload (version 4) → Signals.

Labels name the object: pod, deployment, statefulset, daemonset, job, service,
persistentvolumeclaim or node (with namespace). A firing alert is a signal like any
other and goes through the same correlation; a resolved one clears it, which resolves
the Incident once nothing else keeps it open. Alertmanager already waited its ``for:``,
so alerts count at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    fingerprint: str | None = None


class WebhookPayload(BaseModel):
    """Alertmanager webhook, version 4."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field("", alias="groupKey")
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


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


def signals_from(payload: WebhookPayload, index: ClusterIndex, now: dt.datetime) -> tuple[list[Signal], list[str]]:
    """The payload's alerts as signals, and the reasons alerts were skipped."""
    signals: list[Signal] = []
    skipped: list[str] = []
    for alert in payload.alerts:
        found = _object(alert.labels, index)
        name = alert.labels.get("alertname", "Alert")
        if found is None:
            skipped.append(f"{name}: no namespace with pod/deployment/statefulset/daemonset/job_name/service/"
                           "persistentvolumeclaim label, and no node label")
            continue
        ref, owners = found
        identity = alert.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        signals.append(Signal(
            source=SignalSource.ALERTMANAGER, reason=name[:128], time=now, object=ref,
            uid=f"alert/{identity}", owners=owners, node=alert.labels.get("node"),
            severity=SEVERITIES.get(alert.labels.get("severity", "").lower(), Severity.MEDIUM),
            firing=alert.status == "firing", since=alert.starts_at, key=signal_key("alertmanager", identity),
            message=(alert.annotations.get("summary") or alert.annotations.get("description") or "")[:512],
            detail={"labels": dict(list(alert.labels.items())[:20])},
        ))
    return signals, skipped


def parse(body: Any) -> WebhookPayload:
    """Raises pydantic.ValidationError for a payload that is not Alertmanager's v4."""
    return WebhookPayload.model_validate(body)
