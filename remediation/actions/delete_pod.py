"""deletePod: delete one pod that a controller will replace (never a bare pod). The
delete carries the pod's uid as a precondition, so only that very pod can go; the uid is
the journal's marker (after a restart, the pod being gone means it was done). Cannot be
reverted."""

from __future__ import annotations

from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.remediation import kubeapi
from aisre.remediation.actions.base import Plan, PreconditionFailed, meta, path_of, require_kind

KINDS = {"Pod"}


def controller_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((ref for ref in meta(pod).get("ownerReferences") or [] if ref.get("controller")), None)


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "deletePod")
    owner = controller_of(target)
    if owner is None:
        raise PreconditionFailed("the pod has no controller to replace it")
    if meta(target).get("deletionTimestamp"):
        raise PreconditionFailed("the pod is already being deleted")
    uid = meta(target)["uid"]
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    return Plan("DELETE", path_of(target, "Pod"), body, content_type="application/json", undo=None,
                summary=f"pod {meta(target)['name']} (uid {uid}) of {owner.get('kind')}/{owner.get('name')}",
                extra={"uid": uid, "owner": owner})


def marker_for(target: dict[str, Any]) -> str:
    return str(meta(target).get("uid"))


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return None


def applied(target: dict[str, Any] | None, marker: str | None) -> bool:
    return target is None or meta(target).get("uid") != marker or bool(meta(target).get("deletionTimestamp"))


async def verify(client: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> tuple[bool, str]:
    t, uid, owner = action.target, plan_.extra.get("uid"), plan_.extra.get("owner") or {}
    gone = await kubeapi.wait_for(client, "Pod", t.namespace, t.name,
                                  lambda obj: obj is None or meta(obj).get("uid") != uid, timeout)
    if not gone:
        return False, f"pod still there after {timeout:.0f} s"
    if owner.get("kind") not in ("ReplicaSet", "StatefulSet"):
        return True, "pod deleted"

    def replaced(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        return bool(obj) and status.get("readyReplicas", 0) >= (obj.get("spec") or {}).get("replicas", 1)

    ok = await kubeapi.wait_for(client, owner["kind"], t.namespace, owner["name"], replaced, timeout)
    return ok, "pod replaced; owner fully ready" if ok else f"{owner['kind']} not fully ready within {timeout:.0f} s"
