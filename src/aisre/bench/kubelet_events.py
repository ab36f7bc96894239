"""Events as the kubelet posts them (pure builders): source component ``kubelet`` on the
pod's node, the pod (with its uid) as involvedObject, ``spec.containers{name}`` as fieldPath
for container events, a name of the form ``<pod>.<hex nanoseconds>``, and count /
firstTimestamp / lastTimestamp of an event the kubelet has repeated."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from aisre.bench.pod_status import timestamp
from aisre.bench.scenario import RuntimeEvent, RuntimeStep

# kubelet event reasons that concern one container (pkg/kubelet/events); the others
# (FailedMount, Evicted, FailedCreatePodSandBox, ...) are about the pod.
CONTAINER_REASONS = frozenset(
    {
        "Created", "Started", "Failed", "Killing", "Preempting", "BackOff", "ExceededGracePeriod",
        "Pulling", "Pulled", "InspectFailed", "ErrImageNeverPull", "Unhealthy", "ProbeWarning",
    }
)


def _containers(pod: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    spec = pod["spec"]
    return [("initContainers", c) for c in spec.get("initContainers") or []] + [
        ("containers", c) for c in spec.get("containers", [])
    ]


def field_path(pod: Mapping[str, Any], event: RuntimeEvent, step: RuntimeStep) -> str | None:
    """The container an event is about: the one its message names (``container web``,
    ``container: web``, or its image), else the step's container, else the pod's first."""
    if event.reason not in CONTAINER_REASONS:
        return None
    containers = _containers(pod)
    for section, c in containers:
        name = re.escape(c["name"])
        if re.search(rf"\bcontainers?:? {name}\b", event.message) or (
            c.get("image") and f'"{c["image"]}"' in event.message
        ):
            return f"spec.{section}{{{c['name']}}}"
    if step.container:
        for section, c in containers:
            if c["name"] == step.container:
                return f"spec.{section}{{{c['name']}}}"
    regular = [c for section, c in containers if section == "containers"]
    return f"spec.containers{{{regular[0]['name']}}}" if regular else None


def kubelet_event(
    pod: Mapping[str, Any],
    event: RuntimeEvent,
    step: RuntimeStep,
    *,
    name: str,
    now: dt.datetime,
    since: dt.datetime,
    restarts: int,
) -> dict[str, Any]:
    """One core/v1 Event about ``pod``. An event of a container that restarted ``restarts``
    times happened once per run (restarts + 1), unless the scenario gives ``count``."""
    meta = pod["metadata"]
    node = pod["spec"].get("nodeName", "")
    count = event.count or (restarts + 1 if restarts else 1)
    involved: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": meta["uid"],
    }
    path = field_path(pod, event, step)
    if path:
        involved["fieldPath"] = path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "involvedObject": involved,
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "count": count,
        "firstTimestamp": timestamp(since if count > 1 else now),
        "lastTimestamp": timestamp(now),
    }
