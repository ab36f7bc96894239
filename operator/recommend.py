"""Typed recommended actions for a root cause, from the action catalog only.

Pure: the category, the resource and the evidence decide; nothing here runs anything.
Whether an action may run is the RemediationPolicy's business, not this module's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aisre.api.evidence import Finding
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.signing import action_id, action_signature
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C

# A rollout that introduced the fault is undone; for requests or placement no node can
# satisfy, that is the rollout that asked for them.
ROLLBACK_CATEGORIES = {C.BAD_IMAGE, C.APPLICATION_ERROR, C.BAD_COMMAND, C.IMAGE_ARCH_MISMATCH,
                       C.LIVENESS_PROBE_FAILURE, C.READINESS_PROBE_FAILURE, C.BAD_CONFIG_CHANGE, C.MEMORY_LIMIT_TOO_LOW,
                       C.INSUFFICIENT_RESOURCES, C.SCHEDULING_CONSTRAINT}
ROLLOUT_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


def _action_id(kind: ActionType, target: str) -> str:
    return f"{kind.value.lower()}-{hashlib.sha1(f'{kind.value}/{target}'.encode()).hexdigest()[:8]}"


def recommend(category: C, resource: str, namespace: str, findings: list[Finding], cited: list[str]) -> list[RecommendedAction]:
    kind, _, name = resource.partition("/")
    if not name:
        return []
    target = ResourceRef(kind=kind, name=name, namespace=None if kind == "Node" else namespace)
    fields: set[str] = set()
    for finding in findings:
        if finding.kind == "TemplateChange" and finding.data.get("owner") == resource:
            fields |= set(finding.data.get("fields") or [])
    actions: list[RecommendedAction] = []

    def add(action: ActionType, reason: str, **parameters: Any) -> None:
        # No nulls in the free-form map: the API server drops them, and status would differ from what was written.
        given = {key: value for key, value in parameters.items() if value is not None}
        actions.append(RecommendedAction(id=_action_id(action, resource), type=action, target=target,
                                         parameters=given or None, reason=reason, evidence_ids=cited[:8]))

    if category == C.MEMORY_LIMIT_TOO_LOW and kind in ROLLOUT_KINDS:
        container = next((f.data.get("container") for f in findings
                          if f.kind == "ContainerTerminated" and f.data.get("owner") == resource
                          and f.data.get("reason") == "OOMKilled"), None)
        add(ActionType.SET_RESOURCES, "raise the memory limit the containers are killed at", container=container,
            memoryIncreasePercent=50)
    if category in ROLLBACK_CATEGORIES and kind in ROLLOUT_KINDS and fields - {"restartedAt"}:
        add(ActionType.ROLLBACK, f"the last rollout changed {', '.join(sorted(fields))}; roll back to the previous revision")
    if category == C.NODE_FAILURE and kind == "Node":
        add(ActionType.CORDON_NODE, "keep new pods off the failing node")
    if category == C.SCALED_TO_ZERO and kind in ("Deployment", "StatefulSet"):
        add(ActionType.SCALE, "scale back up", replicas=1)
    if category == C.BAD_CONFIG_CHANGE and kind in ("ConfigMap", "Secret"):
        users = [f.data.get("used_by") for f in findings if f.kind == "ConfigChanged" and f.data.get("name") == name]
        for user in (users[0] if users else [])[:1]:
            ukind, _, uname = user.partition("/")
            if ukind in ROLLOUT_KINDS:
                actions.append(RecommendedAction(
                    id=_action_id(ActionType.ROLLOUT_RESTART, user), type=ActionType.ROLLOUT_RESTART,
                    target=ResourceRef(kind=ukind, name=uname, namespace=namespace),
                    reason=f"after restoring {resource}, restart {user} to pick it up", evidence_ids=cited[:8]))
    return actions


def runbook_actions(runbooks: list[dict[str, Any]], root: dict[str, Any], namespace: str,
                    existing: list[dict[str, Any]], kinds_of: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The actions matched runbooks propose, on the root cause's resource, for the policy to
    decide on like any other: only types that apply to its kind (``kinds_of``: the catalog's
    target kinds per type) and that the evidence did not already recommend. Pure."""
    resource = root.get("resource") or {}
    kind, name = resource.get("kind"), resource.get("name")
    if not kind or not name:
        return []
    taken = {a["type"] for a in existing}
    added: list[dict[str, Any]] = []
    for runbook in runbooks:
        for proposed in runbook.get("actions") or []:
            if proposed["type"] in taken or kind not in kinds_of.get(proposed["type"], set()):
                continue
            taken.add(proposed["type"])
            target = ResourceRef(kind=kind, name=name, namespace=None if kind == "Node" else namespace)
            reason = f"proposed by runbook {runbook['namespace']}/{runbook['name']}" + (
                f": {proposed['reason']}" if proposed.get("reason") else "")
            added.append(RecommendedAction(id=_action_id(ActionType(proposed["type"]), f"{kind}/{name}"),
                                           type=ActionType(proposed["type"]), target=target,
                                           parameters=proposed.get("parameters") or None, reason=reason[:1024]).to_kube())
    return added


def bind_actions(actions: list[dict[str, Any]], namespace: str, incident_uid: str, investigation_uid: str,
                 key: bytes) -> list[dict[str, Any]]:
    """The recommendations of an Investigation the operator started for an Incident, bound
    to both: ids unique to the Incident and the parameters, and the operator's signature
    (``aisre.api.signing``), which the executor verifies before it acts. Pure."""
    bound = []
    for action in actions:
        action = {**action, "id": action_id(action["type"], namespace, incident_uid, action["target"],
                                            action.get("parameters"))}
        action["signature"] = action_signature(key, incident_uid, investigation_uid, action)
        bound.append(action)
    return bound
