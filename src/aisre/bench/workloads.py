"""When is a scenario's baseline healthy: every Deployment, StatefulSet and DaemonSet of the
namespace available at its current generation (what ``kubectl rollout status`` waits for)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import AppsV1Api

from aisre.bench.kube import Kube, Stream

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def available(obj: Mapping[str, Any]) -> bool:
    kind = obj.get("kind")
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        return (
            status.get("updatedReplicas", 0) == want
            and status.get("availableReplicas", 0) == want
            and status.get("replicas", 0) == want
        )
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        return (
            status.get("readyReplicas", 0) == want
            and status.get("availableReplicas", status.get("readyReplicas", 0)) == want
            and status.get("updatedReplicas", want) == want
        )
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        return status.get("numberAvailable", 0) == want and status.get("updatedNumberScheduled", 0) == want
    return True


def describe(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    if obj.get("kind") == "DaemonSet":
        ready, want = status.get("numberAvailable", 0), status.get("desiredNumberScheduled", 0)
    else:
        ready, want = status.get("availableReplicas", 0), (obj.get("spec") or {}).get("replicas", 1)
    return f"{obj.get('kind')}/{obj['metadata']['name']} {ready}/{want} available"


def _lists(kube: Kube) -> dict[str, Any]:
    apps = AppsV1Api(kube.api)
    return {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "DaemonSet": apps.list_namespaced_daemon_set,
    }


def not_available(kube: Kube, namespace: str, kinds: tuple[str, ...] = WORKLOAD_KINDS) -> list[str]:
    """The workloads of ``kinds`` that are not available now, from a fresh list (no waiting)."""
    lists = _lists(kube)
    out = []
    for kind in kinds:
        items = Kube.raw(lists[kind], namespace=namespace)["items"]
        out += [describe({**o, "kind": kind}) for o in items if not available({**o, "kind": kind})]
    return out


def wait_available(kube: Kube, namespace: str, kinds: set[str], timeout: float) -> list[str]:
    """Watches each workload kind until all its objects are available; returns what is
    still not available when ``timeout`` runs out (empty: all healthy)."""
    lists = _lists(kube)
    deadline = time.monotonic() + timeout
    for kind in WORKLOAD_KINDS:
        if kind not in kinds:
            continue
        seen: dict[str, dict[str, Any]] = {}
        listed = False
        stream = Stream(lists[kind], namespace=namespace)
        for event, obj in stream.events(timeout=max(0.1, deadline - time.monotonic()), synced=True):
            if event == "SYNCED":
                listed = True
            elif event == "DELETED":
                seen.pop(obj["metadata"]["name"], None)
            else:
                seen[obj["metadata"]["name"]] = {**obj, "kind": kind}  # list items carry no kind
            if listed and all(available(o) for o in seen.values()):
                stream.stop()
                break
        if not all(available(o) for o in seen.values()):
            # The watch's view can lag; a fresh list is the authority before failing.
            not_ready = not_available(kube, namespace, (kind,))
            if not_ready:
                return not_ready + unready_pods(kube, namespace)
    return []


def unready_pods(kube: Kube, namespace: str, limit: int = 3) -> list[str]:
    """Why pods are not ready (phase, node, the False conditions' reasons), for the error
    that says a baseline never became healthy."""
    out = []
    for pod in kube.pods(namespace):
        status = pod.get("status") or {}
        false = [f"{c['type']}={c.get('reason') or 'False'}" for c in status.get("conditions") or []
                 if c.get("status") != "True"]
        if false or status.get("phase") != "Running":
            node = (pod.get("spec") or {}).get("nodeName") or "-"
            out.append(f"pod/{pod['metadata']['name']} {status.get('phase')} on {node} {' '.join(false)}".rstrip())
    return out[:limit]
