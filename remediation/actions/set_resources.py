"""setResources: raise one container's memory and/or CPU limit, for containers OOM-killed
at their limit (or throttled at it).

The new memory limit is derived from what was observed (``aisre.remediation.sizing``): the
peak working set the metrics agent saw (``memoryPeakBytes``) with headroom, at least the
current limit × ``memoryIncreasePercent`` (a bounded factor: at most twice the limit in one
action), rounded to a step people would write, and room for a fixed heap the container's
flags set (``-Xmx``, ``--max-old-space-size``). A container with no limit in its template
is raised from the limit its pods were killed at (``memoryKilledAtBytes``: a LimitRange's
default). The policy's bounds cap the percentage and the absolute memory. Requests are left alone unless they would exceed the new limit.
Verified by the absence of new OOM kills in the new pods over the window (the rollout,
then ``verification.SOAK_SECONDS`` more), against the state before. Reverting restores the old resources."""

from __future__ import annotations

import math
from typing import Any

from aisre.api.investigation import RecommendedAction
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, path_of, require_kind, rollout_verifier
from aisre.remediation import sizing
from aisre.remediation.policy import parse_quantity

KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
MI = 2**20


def containers(target: dict[str, Any]) -> list[dict[str, Any]]:
    return (((target.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []


def pick_container(target: dict[str, Any], name: str | None) -> tuple[int, dict[str, Any]]:
    found = containers(target)
    if name:
        for index, container in enumerate(found):
            if container.get("name") == name:
                return index, container
        raise PreconditionFailed(f"no container {name}")
    if len(found) != 1:
        raise PreconditionFailed("setResources needs a container parameter when there are several containers")
    return 0, found[0]


def _raised(current: str, percent: int, unit: str) -> str:
    if unit == "memory":
        return f"{math.ceil(parse_quantity(current) * (100 + percent) / 100 / MI)}Mi"
    millis = parse_quantity(current) * 1000 if not str(current).endswith("m") else int(str(current)[:-1])
    return f"{math.ceil(millis * (100 + percent) / 100)}m"


def new_resources(container: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    resources = {k: dict(v) for k, v in (container.get("resources") or {}).items() if isinstance(v, dict)}
    limits, requests = resources.setdefault("limits", {}), resources.get("requests") or {}
    for unit, key in (("cpu", "cpuIncreasePercent"),):
        percent = params.get(key)
        if percent is None:
            continue
        base = limits.get(unit) or requests.get(unit)
        if base is None:
            raise PreconditionFailed(f"container {container.get('name')} has no {unit} limit or request to raise")
        limits[unit] = _raised(base, int(percent), unit)
    if params.get("memoryPeakBytes") is not None or params.get("memoryIncreasePercent") is not None:
        # Without a limit in the template, the pods ran under an admitted default (a
        # LimitRange's): that, not the request, is what they were killed at.
        base = limits.get("memory") or params.get("memoryKilledAtBytes") or requests.get("memory")
        if base is None:
            raise PreconditionFailed(f"container {container.get('name')} has no memory limit or request to raise")
        new = sizing.new_memory_limit(parse_quantity(str(base)), _int(params.get("memoryPeakBytes")),
                                      _int(params.get("memoryIncreasePercent")), _int(params.get("memoryPreviousLimitBytes")),
                                      sizing.heap_of(container))
        limits["memory"] = sizing.quantity(new)
        if "memory" in requests and parse_quantity(requests["memory"]) > new:
            resources["requests"]["memory"] = limits["memory"]
    return resources


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "setResources")
    params = action.parameters or {}
    index, container = pick_container(target, params.get("container"))
    resources = new_resources(container, params)
    ops = marker_ops(target, marker) + [
        {"op": "add", "path": f"/spec/template/spec/containers/{index}/resources", "value": resources}]
    return Plan("PATCH", path_of(target, action.target.kind), ops,
                undo={"container": container.get("name"), "resources": container.get("resources") or {}},
                summary=f"container {container.get('name')} limits {resources.get('limits')}")


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    index, _ = pick_container(target, undo["container"])
    ops = marker_ops(target, marker) + [
        {"op": "add", "path": f"/spec/template/spec/containers/{index}/resources", "value": undo["resources"]}]
    return Plan("PATCH", path_of(target, target["kind"]), ops, summary=f"resources of {undo['container']} restored")


applied = has_marker

# An OOM kill shows under load, not at start: the configured soak (verification.SOAK_SECONDS).
verify = rollout_verifier("new limits rolled out; every replica available, no new OOM kill", soak=None)
