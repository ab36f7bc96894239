"""Whether a pod could run on another node: the scheduler's hard filters a drain depends on
(pure).

A drain helps a pod only if its controller's replacement can be scheduled somewhere else:
a pod pinned to the failing node (a ``kubernetes.io/hostname`` selector, a required node
affinity, a taint only that node tolerates) would go from "running on a broken node" to
Pending. The filters checked are the ones that decide this on their own: the node is
Ready and schedulable, the pod's ``nodeSelector`` and required node affinity match it, and
the pod tolerates its ``NoSchedule``/``NoExecute`` taints. Free capacity is not checked
(requests change as pods come and go; the scheduler has the last word).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HARD_EFFECTS = ("NoSchedule", "NoExecute")


def _labels(node: Mapping[str, Any]) -> Mapping[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def _name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def _requirement_holds(requirement: Mapping[str, Any], value: str | None) -> bool:
    operator, values = requirement.get("operator"), [str(v) for v in requirement.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def term_selects(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A nodeSelectorTerm: all its label expressions and field expressions hold."""
    labels = _labels(node)
    fields = {"metadata.name": _name(node)}
    return all(_requirement_holds(r, labels.get(r.get("key", ""))) for r in term.get("matchExpressions") or []) and \
        all(_requirement_holds(r, fields.get(r.get("key", ""))) for r in term.get("matchFields") or [])


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def unfit(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why the pod cannot be scheduled on the node, or None when it can."""
    spec = pod.get("spec") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "unschedulable"
    if not ready(node):
        return "not Ready"
    labels = _labels(node)
    wrong = sorted(k for k, v in (spec.get("nodeSelector") or {}).items() if labels.get(k) != v)
    if wrong:
        selector = spec["nodeSelector"]
        return "nodeSelector " + ", ".join(f"{k}={selector[k]}" for k in wrong)
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(term_selects(t, node) for t in terms):
        return "required node affinity"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in HARD_EFFECTS and not tolerates(tolerations, taint):
            return f"taint {taint.get('key')}:{taint.get('effect')}"
    return None


def elsewhere(pod: Mapping[str, Any], nodes: list[Mapping[str, Any]], here: str) -> tuple[str | None, list[str]]:
    """(a node other than ``here`` the pod could be scheduled on, or None; why each other
    node cannot take it)."""
    why: list[str] = []
    for node in sorted(nodes, key=_name):
        if _name(node) == here:
            continue
        reason = unfit(pod, node)
        if reason is None:
            return _name(node), why
        why.append(f"{_name(node)}: {reason}")
    return None, why
