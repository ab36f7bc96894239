"""rolloutRestart: what ``kubectl rollout restart`` does, a new restartedAt annotation on
the pod template of a Deployment, StatefulSet or DaemonSet. Cannot be reverted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aisre.api.investigation import RecommendedAction
from aisre.remediation.actions.base import Plan, has_marker, marker_ops, path_of, require_kind, rollout_verifier

KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "rolloutRestart")
    template_meta = ((target.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[RESTARTED_AT] = (context or {}).get("now") or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ops = marker_ops(target, marker)
    if "metadata" not in ((target.get("spec") or {}).get("template") or {}):
        ops.append({"op": "add", "path": "/spec/template/metadata", "value": {}})
    ops.append({"op": "add", "path": "/spec/template/metadata/annotations", "value": annotations})
    return Plan("PATCH", path_of(target, action.target.kind), ops, undo=None,
                summary=f"restartedAt {annotations[RESTARTED_AT]}")


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    return None


applied = has_marker

verify = rollout_verifier("restarted; every replica available")
