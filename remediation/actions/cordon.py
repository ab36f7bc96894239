"""cordonNode / uncordonNode: mark a Node (un)schedulable, as ``kubectl cordon`` does.
Each reverts the other."""

from __future__ import annotations

from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.remediation import kubeapi
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, path_of, require_kind

KINDS = {"Node"}


def _set(target: dict[str, Any], unschedulable: bool, marker: str, summary: str) -> Plan:
    ops = marker_ops(target, marker) + [{"op": "add", "path": "/spec/unschedulable", "value": unschedulable}]
    was = bool((target.get("spec") or {}).get("unschedulable"))
    return Plan("PATCH", path_of(target, "Node"), ops, undo={"unschedulable": was}, summary=summary,
                extra={"unschedulable": unschedulable})


def plan_for(unschedulable: bool):  # noqa: ANN201 - returns the module-level plan function
    def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
        name = "cordonNode" if unschedulable else "uncordonNode"
        require_kind(action.target.kind, KINDS, name)
        if bool((target.get("spec") or {}).get("unschedulable")) == unschedulable:
            raise PreconditionFailed(f"node is already {'cordoned' if unschedulable else 'schedulable'}")
        return _set(target, unschedulable, marker, f"node {action.target.name} unschedulable={unschedulable}")
    return plan


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return _set(target, bool(undo["unschedulable"]), marker, f"unschedulable back to {undo['unschedulable']}")


def applied(target: dict[str, Any] | None, marker: str | None) -> bool:
    return has_marker(target, marker)


async def verify(client: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> tuple[bool, str]:
    want = plan_.extra["unschedulable"]
    ok = await kubeapi.wait_for(client, "Node", None, action.target.name,
                                lambda obj: bool(obj) and bool((obj.get("spec") or {}).get("unschedulable")) == want, timeout)
    return ok, f"node unschedulable={want}" if ok else "node state did not change"
