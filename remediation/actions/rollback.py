"""rollback: what ``kubectl rollout undo`` does for a Deployment. The ReplicaSet with the
highest revision below the current one holds the previous template; it is copied (without
the pod-template-hash label the controller adds) into the Deployment. Reverting rolls
forward again to the revision that was current."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.remediation import kubeapi
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, meta, path_of, require_kind, rollout_verifier

KINDS = {"Deployment"}
REVISION = "deployment.kubernetes.io/revision"


async def context(client: httpx.AsyncClient, action: RecommendedAction, target: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's ReplicaSets (the pure plan picks among them)."""
    listing = await kubeapi.get(client, kubeapi.collection("ReplicaSet", action.target.namespace))
    uid = meta(target).get("uid")
    owned = [rs for rs in listing.get("items") or []
             if any(ref.get("uid") == uid for ref in meta(rs).get("ownerReferences") or [])]
    return {"replicaSets": owned}


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _template(rs: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    return template


def _to_revision(target: dict[str, Any], replica_sets: list[dict[str, Any]], revision: int | None, marker: str) -> Plan:
    current = _revision(target)
    if revision is None:
        older = [rs for rs in replica_sets if 0 < _revision(rs) < current]
        if not older:
            raise PreconditionFailed(f"no ReplicaSet with a revision before {current}: nothing to roll back to")
        source = max(older, key=_revision)
    else:
        matches = [rs for rs in replica_sets if _revision(rs) == revision]
        if not matches:
            raise PreconditionFailed(f"the ReplicaSet of revision {revision} is gone")
        source = matches[0]
    template = _template(source)
    if template == (target.get("spec") or {}).get("template"):
        raise PreconditionFailed(f"revision {_revision(source)} has the current template already")
    ops = marker_ops(target, marker) + [{"op": "replace", "path": "/spec/template", "value": template}]
    return Plan("PATCH", path_of(target, "Deployment"), ops, undo={"revision": current},
                summary=f"template of revision {_revision(source)} ({meta(source).get('name')}), was revision {current}")


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "rollback")
    return _to_revision(target, (context or {}).get("replicaSets") or [], None, marker)


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return _to_revision(target, (context or {}).get("replicaSets") or [], int(undo["revision"]), marker)


applied = has_marker

verify = rollout_verifier("rolled back; every replica available")
