"""scale: set a Deployment's or StatefulSet's replicas (the policy bounds the number)."""

from __future__ import annotations

from typing import Any

from aisre.api.investigation import RecommendedAction
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, path_of, require_kind, rollout_verifier

KINDS = {"Deployment", "StatefulSet"}


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "scale")
    replicas = (action.parameters or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise PreconditionFailed("scale needs a non-negative integer replicas parameter")
    current = (target.get("spec") or {}).get("replicas", 1)
    if current == replicas:
        raise PreconditionFailed(f"already at {replicas} replicas")
    ops = marker_ops(target, marker) + [{"op": "replace", "path": "/spec/replicas", "value": replicas}]
    return Plan("PATCH", path_of(target, action.target.kind), ops, undo={"replicas": current},
                summary=f"replicas {current} -> {replicas}")


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    ops = marker_ops(target, marker) + [{"op": "replace", "path": "/spec/replicas", "value": undo["replicas"]}]
    return Plan("PATCH", path_of(target, target["kind"]), ops, summary=f"replicas back to {undo['replicas']}")


applied = has_marker

verify = rollout_verifier("every replica available")
