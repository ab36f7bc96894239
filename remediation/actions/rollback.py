"""rollback: what ``kubectl rollout undo`` does.

A Deployment keeps its history in ReplicaSets (revision annotation); a StatefulSet or a
DaemonSet in ControllerRevisions (``.revision``, the template in ``.data``). Either way
the highest revision below the current one holds the previous template; it is copied into
the workload (a ReplicaSet's without the pod-template-hash label the controller adds).
Reverting rolls forward again to the revision that was current.

A StatefulSet (OrderedReady) does not replace a pod that is not Ready, so a pod already
broken by the bad revision would hold the rollback forever: as the Kubernetes docs'
"forced rollback" says, those pods are deleted once the template is reverted (``settle``),
and the controller recreates them from it. Healthy pods are left to the rollout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.remediation import kubeapi
from aisre.remediation.actions.base import (Plan, PreconditionFailed, has_marker, marker_ops, meta, observed, owned_by, path_of,
                                            require_kind, rollout_verifier)

KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Revision:
    number: int
    name: str
    template: dict[str, Any]


async def context(client: httpx.AsyncClient, action: RecommendedAction, target: dict[str, Any]) -> dict[str, Any]:
    """The workload's history objects (the pure plan picks among them)."""
    history = "ReplicaSet" if action.target.kind == "Deployment" else "ControllerRevision"
    listing = await kubeapi.get(client, kubeapi.collection(history, action.target.namespace))
    uid = meta(target).get("uid")
    owned = [item for item in listing.get("items") or [] if owned_by(item, uid)]
    return {"replicaSets" if history == "ReplicaSet" else "controllerRevisions": owned}


def _annotated_revision(obj: dict[str, Any]) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _template(rs: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    return template


def _revision_template(cr: dict[str, Any]) -> dict[str, Any]:
    # The controller stores a patch that replaces the whole template.
    template = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def history(target: dict[str, Any], context: Any) -> tuple[int, list[Revision]]:
    """The current revision number and every revision, from the context ``context()`` read."""
    context = context or {}
    if target.get("kind", "Deployment") == "Deployment":
        revisions = [Revision(_annotated_revision(rs), meta(rs).get("name", ""), _template(rs))
                     for rs in context.get("replicaSets") or []]
        return _annotated_revision(target), revisions
    revisions = [Revision(int(cr.get("revision") or 0), meta(cr).get("name", ""), _revision_template(cr))
                 for cr in context.get("controllerRevisions") or []]
    # A StatefulSet names its current revision; a DaemonSet's is the newest one.
    named = (target.get("status") or {}).get("updateRevision")
    current = next((r.number for r in revisions if r.name == named), max((r.number for r in revisions), default=0))
    return current, revisions


def _to_revision(target: dict[str, Any], context: Any, revision: int | None, marker: str) -> Plan:
    kind = target.get("kind", "Deployment")
    current, revisions = history(target, context)
    if revision is None:
        source = target_revision(target, context)
        if source is None:
            raise PreconditionFailed(f"no {kind} revision before {current}: nothing to roll back to")
    else:
        source = next((r for r in revisions if r.number == revision), None)
        if source is None:
            raise PreconditionFailed(f"revision {revision} of the {kind} is gone")
    if not source.template:
        raise PreconditionFailed(f"revision {source.number} ({source.name}) holds no pod template")
    if source.template == (target.get("spec") or {}).get("template"):
        raise PreconditionFailed(f"revision {source.number} has the current template already")
    ops = marker_ops(target, marker) + [{"op": "replace", "path": "/spec/template", "value": source.template}]
    return Plan("PATCH", path_of(target, kind), ops, undo={"revision": current},
                summary=f"template of revision {source.number} ({source.name}), was revision {current}")


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "rollback")
    return _to_revision(target, context, None, marker)


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return _to_revision(target, context, int(undo["revision"]), marker)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def target_revision(target: dict[str, Any], context: Any) -> Revision | None:
    """The revision a rollback returns to (the highest below the current one), if any."""
    current, revisions = history(target, context)
    return max((r for r in revisions if 0 < r.number < current), key=lambda r: r.number, default=None)


def kept_ready(target: dict[str, Any], context: Any, pods: list[dict[str, Any]]) -> int:
    """How many Ready pods already run the revision a rollback returns to (pure). The
    rollback keeps them: a stuck rollout's old pods are the ones it scales back up, so only
    the others are at risk."""
    source = target_revision(target, context)
    if source is None:
        return 0
    if target.get("kind", "Deployment") == "Deployment":
        def on_source(pod: dict[str, Any]) -> bool:  # a pod of that revision's ReplicaSet
            return any(ref.get("kind") == "ReplicaSet" and ref.get("name") == source.name
                       for ref in meta(pod).get("ownerReferences") or [])
    else:
        def on_source(pod: dict[str, Any]) -> bool:  # a pod of the workload, of that ControllerRevision
            return owned_by(pod, meta(target).get("uid")) and \
                (meta(pod).get("labels") or {}).get("controller-revision-hash") == source.name
    return sum(1 for pod in pods if on_source(pod) and not meta(pod).get("deletionTimestamp") and _ready(pod))


def stuck_pods(target: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    """A StatefulSet's pods on another revision than its update revision and not Ready:
    the controller waits for them forever, so they must go (pure)."""
    update = (target.get("status") or {}).get("updateRevision")
    if target.get("kind") != "StatefulSet" or not update:
        return []
    uid = meta(target).get("uid")
    return sorted(meta(pod)["name"] for pod in pods
                  if owned_by(pod, uid)
                  and not meta(pod).get("deletionTimestamp")
                  and (meta(pod).get("labels") or {}).get("controller-revision-hash") != update
                  and not _ready(pod))


async def settle(executor: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> str:
    """After the template is back (also when resumed after a restart): a StatefulSet's
    stuck pods deleted, by the executor identity. Returns what was done, for the journal."""
    t = action.target
    if t.kind != "StatefulSet":
        return ""
    await kubeapi.wait_for(executor, t.kind, t.namespace, t.name, observed, min(timeout, 10.0))
    target = await kubeapi.get(executor, kubeapi.object_path(t.kind, t.namespace, t.name))
    target.setdefault("kind", t.kind)
    pods = (await kubeapi.get(executor, kubeapi.collection("Pod", t.namespace))).get("items") or []
    names = stuck_pods(target, pods)
    for name in names:
        try:
            await kubeapi.request(executor, "DELETE", kubeapi.object_path("Pod", t.namespace, name))
        except kubeapi.NotFound:
            pass  # gone already
    return f"deleted {len(names)} pod(s) left unready on the bad revision: {', '.join(names)}" if names else ""


applied = has_marker

verify = rollout_verifier("rolled back; every replica available")
