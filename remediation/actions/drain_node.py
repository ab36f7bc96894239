"""drainNode: what ``kubectl drain`` does, without ``--force`` and without
``--disable-eviction``: cordon the Node, then evict the pods on it that a controller will
recreate elsewhere.

Evictions go through the Eviction API (``pods/eviction``), so the API server applies every
PodDisruptionBudget: a 429 means a budget does not allow that pod to go now. The drain then
stops there and says so (which pod, which pods are left); it never deletes around a budget.
DaemonSet pods (their controller would put them back on the node), mirror pods (the
kubelet's static pods) and pods without a controller (nothing would recreate them) are
left alone, as are pods already finished or being deleted. At most ``MAX_EVICTIONS`` pods
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
from aisre.remediation import kubeapi
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, meta, path_of, require_kind

KINDS = {"Node"}
MAX_EVICTIONS = 50
MIRROR = "kubernetes.io/config.mirror"


def controller_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((ref for ref in meta(pod).get("ownerReferences") or [] if ref.get("controller")), None)


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


def evictable(pods: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """(pods to evict, in a stable order, as namespace/name/uid; the skipped ones with why) (pure)."""
    evict, skipped = [], []
    for pod in sorted(pods, key=lambda p: (meta(p).get("namespace", ""), meta(p).get("name", ""))):
        why = skip_reason(pod)
        ref = f"{meta(pod).get('namespace')}/{meta(pod).get('name')}"
        if why:
            skipped.append(f"{ref} ({why})")
        else:
            evict.append({"namespace": meta(pod).get("namespace", ""), "name": meta(pod).get("name", ""),
                          "uid": str(meta(pod).get("uid", ""))})
    return evict, skipped


async def pods_on(client: httpx.AsyncClient, node: str) -> list[dict[str, Any]]:
    listing = await kubeapi.get(client, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})
    return listing.get("items") or []


async def context(client: httpx.AsyncClient, action: RecommendedAction, target: dict[str, Any]) -> dict[str, Any]:
    return {"pods": await pods_on(client, action.target.name)}


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    """The cordon (with the marker) is the request; the evictions follow in ``settle``."""
    require_kind(action.target.kind, KINDS, "drainNode")
    evict, skipped = evictable((context or {}).get("pods") or [])
    cordoned = bool((target.get("spec") or {}).get("unschedulable"))
    if cordoned and not evict:
        raise PreconditionFailed("node is cordoned and has no pod to evict: nothing to drain")
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
        plan_.extra["evict"], plan_.extra["skipped"] = evictable(await pods_on(executor, action.target.name))
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
    """Cordoned, and every evicted pod gone from the node within the window; a drain that a
    budget stopped is not verified (the node stays cordoned: it cannot be reverted)."""
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
    return True, f"node cordoned; {len(gone)} pod(s) evicted and gone{kept}"


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return None


applied = has_marker

__all__ = ["KINDS", "plan", "settle", "verify", "revert", "applied", "context", "evictable", "skip_reason"]
