"""The canonical Signal envelope: one observation of trouble, whatever it came from.

Watches (pods, Warning events, nodes, workloads, jobs, claims), the Alertmanager
webhook and the pagers' webhooks (PagerDuty, Opsgenie) each turn what they see into Signals; detection reads nothing else. The dedupe
``key`` is a hash of structured fields only (source, reason, the object's identity and,
for repeating faults, a counter such as the restart count), never of message text, so
the same observation always gets the same key, across restarts of the operator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import Severity

SIGNAL_SCHEMA = "aisre.dev/signal-v1"


class SignalSource(str, Enum):
    POD = "pod"
    EVENT = "event"
    NODE = "node"
    WORKLOAD = "workload"
    JOB = "job"
    PVC = "pvc"
    SERVICE = "service"
    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"  # a PagerDuty incident, from its webhook (v3)
    OPSGENIE = "opsgenie"  # an Opsgenie alert, from its webhook integration
    METRICS = "metrics"  # detection's own look at Prometheus series
    LOGS = "logs"  # detection's own look at container logs
    EXTERNAL = "external"  # a signal from outside the Kubernetes API, read from Kafka (docs/fleet.md)


def signal_key(*parts: str) -> str:
    """A stable dedupe key from structured fields."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


class Signal(BaseModel):
    """One observation of trouble, in the form every part of detection reads."""

    model_config = ConfigDict(frozen=True)

    schema_version: str = SIGNAL_SCHEMA
    source: SignalSource
    reason: str = Field(..., max_length=128)
    time: dt.datetime
    object: ResourceRef
    uid: str = ""  # of the observed object: its signals are replaced on each observation
    owners: tuple[ResourceRef, ...] = ()  # controller chain, nearest first
    node: str | None = None
    severity: Severity = Severity.MEDIUM
    firing: bool = True  # False: the source says the trouble is over (a resolved alert)
    since: dt.datetime | None = None  # when the condition began, if the source says
    hold: float = 0.0  # seconds it must last (from ``since``) before it counts: the grace
    until: dt.datetime | None = None  # the source says it ends then (an alert's endsAt), unless renewed
    key: str
    message: str = ""  # for people; never part of the key or the fingerprint
    detail: dict[str, Any] = Field(default_factory=dict)  # structured extras (container, restarts, claim, quota)
    raw: dict[str, Any] | None = None  # the source's payload, bounded, for the report
    traceparent: str | None = None  # W3C trace context of the request that brought it (webhooks)
    origin: str | None = None  # the system outside that sent it (an external signal's producer), for the Incident

    def due(self) -> dt.datetime:
        """When this signal starts to count towards an incident."""
        return (self.since or self.time) + dt.timedelta(seconds=self.hold)

    @property
    def namespace(self) -> str | None:
        return self.object.namespace
