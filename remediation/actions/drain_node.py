"""drainNode: what ``kubectl drain`` does, without ``--force`` and without
``--disable-eviction``: cordon the Node, then evict the pods on it that a controller will
recreate elsewhere.

Evictions go through the Eviction API (``pods/eviction``), so the API server applies every
PodDisruptionBudget: a 429 means a budget does not allow that pod to go now. The drain then
stops there and says so (which pod, which pods are left); it never deletes around a budget.
DaemonSet pods (their controller would put them back on the node), mirror pods (the
kubelet's static pods) and pods without a controller (nothing would recreate them) are
left alone, as are pods already finished or being deleted, and pods no other node could
take (``aisre.remediation.placement``: a pod pinned to this node would only go Pending). A
node where that leaves nothing to move is not drained at all (a cordon alone moves nothing),
nor one where no pod of the workloads the drain is for (``workloads`` in ``namespace``: the
Incident's, failing on this node) could be moved. At most ``MAX_EVICTIONS`` pods
per drain (a bound that is hit is reported).

Nodes are shared by every namespace: only the operator's own policies govern them (the
policy chain's scope step and the chart's admission policy). The number of nodes kept
schedulable is the blast-radius bound; a drain counts as one node less, like a cordon.

Cannot be reverted: evicted pods are recreated by their controllers elsewhere, and the
node stays cordoned, the safe state for a failing node (``uncordonNode`` when repaired).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.remediation import kubeapi, placement
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, meta, path_of, require_kind

KINDS = {"Node"}
MAX_EVICTIONS = 50
MIRROR = "kubernetes.io/config.mirror"
STRANDED = "no other node can run it"  # the skip reason of a pod a drain would leave Pending


def controller_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((ref for ref in meta(pod).get("ownerReferences") or [] if ref.get("controller")), None)


def workload_of(pod: dict[str, Any]) -> str | None:
    """The pod's workload as ``Kind/name``: a ReplicaSet's pods belong to the Deployment the
    ReplicaSet is named after (``<deployment>-<pod-template-hash>``)."""
    owner = controller_of(pod)
    if owner is None:
        return None
    name = str(owner.get("name", ""))
    template_hash = (meta(pod).get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"Deployment/{name[:-len(template_hash) - 1]}"
    return f"{owner.get('kind')}/{name}"


def skip_reason(pod: dict[str, Any]) -> str | None:
    """Why a pod on the node is not evicted, or None: it is (pure)."""
    if MIRROR in (meta(pod).get("annotations") or {}):
        return "mirror pod"
    if meta(pod).get("deletionTimestamp"):
        return "already being deleted"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return "finished"
    owner = controller_of(pod)
    if owner is None:
        return "no controller would recreate it"
    if owner.get("kind") == "DaemonSet":
        return "DaemonSet pod"
    return None


def stranded(pod: dict[str, Any], nodes: list[dict[str, Any]] | None, here: str) -> str | None:
    """Why the pod's replacement could not be scheduled on any other node (None: it could,
    or the nodes are not known) (pure)."""
    if nodes is None:
        return None
    place, why = placement.elsewhere(pod, nodes, here)
    if place is not None:
        return None
    return f"{STRANDED}: {'; '.join(why)[:200] or 'there is none'}"


def evictable(pods: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None,
              here: str = "") -> tuple[list[dict[str, str]], list[str]]:
    """(pods to evict, in a stable order, as namespace/name/uid; the skipped ones with why)
    (pure). With the cluster's ``nodes``, a pod that no other node can take is left where
    it is: evicted, it would only be Pending."""
    evict, skipped = [], []
    for pod in sorted(pods, key=lambda p: (meta(p).get("namespace", ""), meta(p).get("name", ""))):
        why = skip_reason(pod) or stranded(pod, nodes, here)
        ref = f"{meta(pod).get('namespace')}/{meta(pod).get('name')}"
        if why:
            skipped.append(f"{ref} ({why})")
        else:
            owner = controller_of(pod) or {}
            evict.append({"namespace": meta(pod).get("namespace", ""), "name": meta(pod).get("name", ""),
                          "uid": str(meta(pod).get("uid", "")), "owner": f"{owner.get('kind')}/{owner.get('name')}"})
    return evict, skipped


async def pods_on(client: httpx.AsyncClient, node: str) -> list[dict[str, Any]]:
    listing = await kubeapi.get(client, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})
    return listing.get("items") or []


async def nodes_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await kubeapi.get(client, "/api/v1/nodes")).get("items") or []


async def context(client: httpx.AsyncClient, action: RecommendedAction, target: dict[str, Any]) -> dict[str, Any]:
    return {"pods": await pods_on(client, action.target.name), "nodes": await nodes_of(client)}


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    """The cordon (with the marker) is the request; the evictions follow in ``settle``."""
    require_kind(action.target.kind, KINDS, "drainNode")
    pods = (context or {}).get("pods") or []
    node = action.target.name
    evict, skipped = evictable(pods, (context or {}).get("nodes"), node)
    pinned = [s for s in skipped if STRANDED in s]
    if pinned and not evict:
        # Cordoned and evicted, they would be Pending instead of on a broken node: no better.
        raise PreconditionFailed(f"no pod on node {node} could run on another node, so a drain "
                                 f"cannot move them ({'; '.join(pinned)[:400]}); repair the node")
    if not evict:
        # Only a cordon would be left, and it moves nothing off the node.
        raise PreconditionFailed(f"node {node} has no pod a drain would move: nothing to drain")
    params = action.parameters or {}
    workloads, namespace = params.get("workloads") or [], params.get("namespace")
    if workloads and namespace:
        theirs = [p for p in pods if meta(p).get("namespace") == namespace and workload_of(p) in workloads]
        moved = {p["uid"] for p in evict}
        if not any(str(meta(p).get("uid", "")) in moved for p in theirs):
            why = [s for s in skipped if any(f"{namespace}/{meta(p).get('name')} " in s for p in theirs)]
            raise PreconditionFailed(
                f"none of the pods of {', '.join(workloads)[:200]} on node {node} could be moved "
                f"({'; '.join(why)[:300] or 'none is on the node'}): a drain would not help them; repair the node")
    capped = evict[:MAX_EVICTIONS]
    note = f" (first {MAX_EVICTIONS} of {len(evict)}: the bound per drain)" if len(evict) > MAX_EVICTIONS else ""
    ops = marker_ops(target, marker) + [{"op": "add", "path": "/spec/unschedulable", "value": True}]
    return Plan("PATCH", path_of(target, "Node"), ops, undo=None,
                summary=f"cordon node {action.target.name} and evict {len(capped)} pod(s){note}; "
                        f"left: {len(skipped)} ({', '.join(skipped)[:300] or '-'})",
                extra={"evict": capped, "skipped": skipped, "unschedulable": True})


def eviction(pod: dict[str, str]) -> dict[str, Any]:
    """The Eviction of one pod, bound to its uid (a pod recreated under the same name is
    not the one planned)."""
    return {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod["name"], "namespace": pod["namespace"]},
            "deleteOptions": {"preconditions": {"uid": pod["uid"]}}}


async def settle(executor: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> str:
    """The evictions, one by one, as the executor. A PodDisruptionBudget's refusal (429)
    stops the drain: recorded in ``plan_.extra["blocked"]`` for ``verify``, never forced."""
    if "evict" not in plan_.extra:  # resumed after a restart: what is on the node now
        plan_.extra["evict"], plan_.extra["skipped"] = evictable(await pods_on(executor, action.target.name),
                                                                 await nodes_of(executor), action.target.name)
        plan_.extra["evict"] = plan_.extra["evict"][:MAX_EVICTIONS]
    evicted: list[str] = []
    for pod in plan_.extra["evict"]:
        ref = f"{pod['namespace']}/{pod['name']}"
        try:
            await kubeapi.request(executor, "POST", f"/api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}/eviction",
                                  body=eviction(pod), content_type="application/json")
        except kubeapi.TooManyRequests as error:
            plan_.extra["blocked"] = f"{ref}: {error}"
            break
        except (kubeapi.NotFound, kubeapi.Conflict):
            pass  # gone already, or another pod now under that name: not the one planned
        evicted.append(ref)
    plan_.extra["evicted"] = evicted
    left = len(plan_.extra["evict"]) - len(evicted)
    blocked = f"; stopped: a PodDisruptionBudget does not allow evicting {plan_.extra['blocked'].split(':')[0]} now " \
              f"({left} pod(s) not evicted, not forced)" if plan_.extra.get("blocked") else ""
    return f"evicted {len(evicted)} pod(s){blocked}"


async def verify(client: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> tuple[bool, str]:
    """Cordoned, every evicted pod gone from the node and its controller's replicas Ready
    again within the window; a drain that a budget stopped is not verified (the node stays
    cordoned: it cannot be reverted)."""
    node = action.target.name
    deadline = time.monotonic() + timeout
    cordoned = await kubeapi.wait_for(client, "Node", None, node,
                                      lambda obj: bool(obj) and bool((obj.get("spec") or {}).get("unschedulable")), timeout)
    if not cordoned:
        return False, "node not cordoned"
    gone = {p["uid"] for p in plan_.extra.get("evict") or []
            if f"{p['namespace']}/{p['name']}" in (plan_.extra.get("evicted") or [])}
    for pod in plan_.extra.get("evict") or []:
        if pod["uid"] not in gone:
            continue
        left = deadline - time.monotonic()
        ok = left > 0 and await kubeapi.wait_for(client, "Pod", pod["namespace"], pod["name"],
                                                 lambda obj, uid=pod["uid"]: obj is None or meta(obj).get("uid") != uid, left)
        if not ok:
            return False, f"pod {pod['namespace']}/{pod['name']} still on the node after {timeout:.0f} s"
    alone = plan_.extra.get("skipped") or []
    kept = f"; left alone: {', '.join(alone)[:300]}" if alone else ""
    if plan_.extra.get("blocked"):
        return False, (f"DisruptionBudget: eviction of {plan_.extra['blocked'][:300]}; drain stopped with "
                       f"{len(plan_.extra.get('evict') or []) - len(gone)} pod(s) left on the node, not forced{kept}")
    # Moved is not recovered: each controller of an evicted pod must have its replicas Ready
    # again (elsewhere) within the window.
    for owner in sorted({p.get("owner", "") for p in plan_.extra.get("evict") or [] if p["uid"] in gone}):
        kind, _, name = owner.partition("/")
        namespace = next(p["namespace"] for p in plan_.extra["evict"] if p.get("owner") == owner)
        if kind not in ("ReplicaSet", "StatefulSet"):
            continue
        left = deadline - time.monotonic()
        ok = left > 0 and await kubeapi.wait_for(client, kind, namespace, name, replicas_ready, left)
        if not ok:
            return False, f"{len(gone)} pod(s) evicted, but {kind} {namespace}/{name} has not all its replicas Ready " \
                          f"again after {timeout:.0f} s{kept}"
    return True, f"node cordoned; {len(gone)} pod(s) evicted and gone, their replacements Ready{kept}"


def replicas_ready(obj: dict[str, Any] | None) -> bool:
    """A ReplicaSet or StatefulSet gone (nothing left to recover) or with every replica Ready."""
    if obj is None:
        return True
    wanted = int((obj.get("spec") or {}).get("replicas", 1))
    return int((obj.get("status") or {}).get("readyReplicas") or 0) >= wanted


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return None


applied = has_marker

__all__ = ["KINDS", "plan", "settle", "verify", "revert", "applied", "context", "evictable", "skip_reason"]
