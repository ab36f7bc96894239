"""What an investigation looks at: the target resolved to pods, their owners and nodes.

A target is one object (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod,
Service, or Node) or a label selector over pods; an empty selector is the whole
namespace. Resolution walks owner references up (pod → ReplicaSet → Deployment) and
selectors down (Deployment → pods, Service → pods).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aisre.kube.reader import ClusterReader

Obj = dict[str, Any]

WORKLOAD_PLURALS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
}


class TargetNotFound(Exception):
    """The target object does not exist."""


def ref(obj: Obj) -> str:
    """``Kind/name`` of an object, the id used across evidence and graphs."""
    return f"{obj.get('kind', '?')}/{obj['metadata']['name']}"


def labels_match(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


@dataclass
class Scope:
    """The objects in focus. ``pods`` are the target's pods; ``workloads`` their owners
    (every level of the chain); ``nodes`` the nodes those pods run on."""

    namespace: str
    description: str
    pods: list[Obj] = field(default_factory=list)
    workloads: list[Obj] = field(default_factory=list)
    node_names: set[str] = field(default_factory=set)
    whole_namespace: bool = False
    target_ref: str | None = None

    def owner_chain(self, obj: Obj) -> list[Obj]:
        """The object's controllers, nearest first (pod → ReplicaSet → Deployment)."""
        by_uid = {w["metadata"]["uid"]: w for w in self.workloads}
        chain: list[Obj] = []
        current = obj
        for _ in range(5):
            owners = [o for o in current["metadata"].get("ownerReferences") or [] if o.get("controller")]
            if not owners or owners[0]["uid"] not in by_uid:
                break
            current = by_uid[owners[0]["uid"]]
            chain.append(current)
        return chain

    def top_owner(self, obj: Obj) -> Obj:
        chain = self.owner_chain(obj)
        return chain[-1] if chain else obj


async def _owned_pods(reader: ClusterReader, namespace: str, workload: Obj) -> list[Obj]:
    selector = (workload.get("spec") or {}).get("selector") or {}
    pods = await reader.list("pods", namespace)
    if workload.get("kind") == "Job":
        selector = {"matchLabels": {"batch.kubernetes.io/controller-uid": workload["metadata"]["uid"]}}
    return [p for p in pods if labels_match(selector, p["metadata"].get("labels"))]


async def resolve_scope(
    reader: ClusterReader,
    namespace: str,
    *,
    kind: str | None = None,
    name: str | None = None,
    selector: dict[str, Any] | None = None,
    node_wide: bool = False,
) -> Scope:
    """Resolve a target into a Scope; raises TargetNotFound for a missing object.

    A Node target looks at the node's pods in the Investigation's namespace only; the pods
    of every namespace on it only with ``node_wide`` (an Investigation in the operator's
    namespace, where node-level Incidents live): an Investigation someone creates in their
    own namespace never reads another namespace through a node."""
    all_workloads: list[Obj] = []
    for plural in WORKLOAD_PLURALS.values():
        all_workloads.extend(await reader.list(plural, namespace))

    if kind and name:
        scope = Scope(namespace=namespace, description=f"{kind}/{name}", target_ref=f"{kind}/{name}")
        if kind == "Pod":
            pod = await reader.get("pods", name, namespace)
            if pod is None:
                raise TargetNotFound(f"Pod {namespace}/{name} not found")
            pod.setdefault("kind", "Pod")
            scope.pods = [pod]
        elif kind == "Node":
            node = await reader.get("nodes", name)
            if node is None:
                raise TargetNotFound(f"Node {name} not found")
            scope.pods = [p for p in await reader.list("pods", namespace) if p["spec"].get("nodeName") == name]
            if not scope.pods and node_wide:
                # A node-level Incident lives in the operator's namespace: the node's pods are elsewhere.
                scope.pods = await reader.list("pods", None, field_selector=f"spec.nodeName={name}")
                for other in sorted({p["metadata"]["namespace"] for p in scope.pods}):
                    for plural in WORKLOAD_PLURALS.values():
                        all_workloads.extend(await reader.list(plural, other))
            scope.node_names.add(name)
        elif kind == "Service":
            service = await reader.get("services", name, namespace)
            if service is None:
                raise TargetNotFound(f"Service {namespace}/{name} not found")
            svc_selector = (service.get("spec") or {}).get("selector") or {}
            pods = await reader.list("pods", namespace)
            scope.pods = [p for p in pods if svc_selector and labels_match({"matchLabels": svc_selector}, p["metadata"].get("labels"))]
        elif kind in WORKLOAD_PLURALS:
            workload = next((w for w in all_workloads if w["kind"] == kind and w["metadata"]["name"] == name), None)
            if workload is None:
                raise TargetNotFound(f"{kind} {namespace}/{name} not found")
            scope.pods = await _owned_pods(reader, namespace, workload)
            scope.workloads.append(workload)
        else:
            raise TargetNotFound(f"kind {kind} cannot be investigated (Deployment, StatefulSet, DaemonSet, "
                                 "ReplicaSet, Job, Pod, Service or Node)")
    else:
        pods = await reader.list("pods", namespace)
        selector = selector or {}
        whole = not selector.get("matchLabels") and not selector.get("matchExpressions")
        scope = Scope(
            namespace=namespace,
            description="namespace" if whole else "selector",
            pods=[p for p in pods if labels_match(selector, p["metadata"].get("labels"))],
            whole_namespace=whole,
        )
        if whole:
            scope.workloads = list(all_workloads)

    # Owners of the pods in scope, all the way up, and workloads that select no pods yet.
    by_uid = {w["metadata"]["uid"]: w for w in all_workloads}
    seen = {w["metadata"]["uid"] for w in scope.workloads}
    frontier = list(scope.pods) + list(scope.workloads)
    while frontier:
        obj = frontier.pop()
        for owner in obj["metadata"].get("ownerReferences") or []:
            uid = owner.get("uid")
            if uid in by_uid and uid not in seen:
                seen.add(uid)
                scope.workloads.append(by_uid[uid])
                frontier.append(by_uid[uid])
    # ReplicaSets of a Deployment in scope (rollout history) belong to it too.
    for workload in list(scope.workloads):
        if workload["kind"] == "Deployment":
            for rs in all_workloads:
                if rs["kind"] == "ReplicaSet" and rs["metadata"]["uid"] not in seen and any(
                    o.get("uid") == workload["metadata"]["uid"] for o in rs["metadata"].get("ownerReferences") or []
                ):
                    seen.add(rs["metadata"]["uid"])
                    scope.workloads.append(rs)
    scope.node_names.update(p["spec"]["nodeName"] for p in scope.pods if p["spec"].get("nodeName"))
    return scope
