"""Typed recommended actions for a root cause, from the action catalog only.

Pure: the category, the resource and the evidence decide; nothing here runs anything.
Whether an action may run is the RemediationPolicy's business, not this module's.

Every category of the taxonomy has one answer in ``ANSWERS``: the catalog actions that can
remove that cause (each with the condition under which it does, and why), and what a
person must do when none of them applies. An action that cannot remove the cause is never
offered, not even as a stop-gap: a restart after a ConfigMap change restarts the pods into
the same bad config, a rollback of a rollout that changed only the replica count undoes
nothing. When nothing in the catalog fits, ``advise`` returns a note instead (the
Investigation's ``status.remediationNote``), which the runbook step points at the matched
Runbook.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from aisre.api.evidence import Finding
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.signing import action_id, action_signature
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C

ROLLOUT_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}

# The template fields (as the changes agent names them in TemplateChange.fields) in which
# each category's cause can live: a rollback undoes the cause only when the last rollout
# changed one of them.
_PROGRAM = {"image", "command", "args"}
_CONFIG = {"env", "envFrom", "volumes", "volumeMounts"}
_PLACEMENT = {"nodeSelector", "affinity", "tolerations", "priorityClassName"}
ROLLBACK_FIELDS: dict[C, set[str]] = {
    C.BAD_IMAGE: {"image", "imagePullSecrets"},
    C.IMAGE_ARCH_MISMATCH: {"image"} | _PLACEMENT,
    C.BAD_COMMAND: _PROGRAM,
    C.APPLICATION_ERROR: _PROGRAM | _CONFIG | {"securityContext"},
    C.LIVENESS_PROBE_FAILURE: _PROGRAM | {"livenessProbe", "startupProbe", "ports", "resources"},
    C.READINESS_PROBE_FAILURE: _PROGRAM | _CONFIG | {"readinessProbe", "startupProbe", "ports"},
    C.BAD_CONFIG_CHANGE: _CONFIG,
    C.MISSING_CONFIG: _CONFIG,
    C.MEMORY_LIMIT_TOO_LOW: {"resources"},
    C.MEMORY_LEAK: _PROGRAM,
    C.INSUFFICIENT_RESOURCES: {"resources"} | _PLACEMENT,
    C.SCHEDULING_CONSTRAINT: {"resources"} | _PLACEMENT,
}
# Kept for readers of the old name: the categories a rollback can address.
ROLLBACK_CATEGORIES = set(ROLLBACK_FIELDS)


@dataclass(frozen=True)
class Answer:
    """What the catalog offers for one category: the action types that can remove the
    cause (when their condition holds on the evidence), and what a person does otherwise."""

    actions: tuple[ActionType, ...]
    manual: str  # the fix, in words, when no action applies
    fixable: bool = True  # False: nothing is wrong (NoFault), so there is nothing to do or say


ANSWERS: dict[C, Answer] = {
    C.BAD_IMAGE: Answer((ActionType.ROLLBACK,), "correct the image reference (name, tag or digest) in the workload"),
    C.IMAGE_PULL_AUTH: Answer((), "fix the image pull credentials (the pull Secret or the service account's "
                                  "imagePullSecrets) or the registry's access rights"),
    C.IMAGE_ARCH_MISMATCH: Answer((ActionType.ROLLBACK,), "publish the image for the nodes' architecture, or constrain "
                                                          "the pods to nodes that can run it"),
    C.BAD_COMMAND: Answer((ActionType.ROLLBACK,), "correct the container's command and arguments"),
    C.MISSING_CONFIG: Answer((ActionType.RESTORE_CONFIG, ActionType.ROLLBACK),
                             "create the missing ConfigMap, Secret or key the workload needs, or mark it optional"),
    C.BAD_CONFIG_CHANGE: Answer((ActionType.RESTORE_CONFIG, ActionType.ROLLBACK),
                                "put back the previous configuration from where it is kept (Git, the secret store), "
                                "then restart the workloads that use it"),
    C.MEMORY_LIMIT_TOO_LOW: Answer((ActionType.SET_RESOURCES, ActionType.ROLLBACK),
                                   "raise the container's memory limit"),
    C.MEMORY_LEAK: Answer((ActionType.ROLLBACK,), "the leak is in the program: fix it or roll back to a version "
                                                  "without it; a restart only buys time"),
    C.CPU_SATURATION: Answer((), "raise the CPU limit or scale out, and look for what made the load grow"),
    C.LIVENESS_PROBE_FAILURE: Answer((ActionType.ROLLBACK,), "fix the liveness probe (path, port, timeouts) or the "
                                                             "endpoint it checks"),
    C.READINESS_PROBE_FAILURE: Answer((ActionType.ROLLBACK,), "fix the readiness probe or what it waits for"),
    C.DEPENDENCY_FAILURE: Answer((), "repair the dependency the workload cannot reach; the workload itself is a "
                                     "victim"),
    C.SERVICE_PORT_MISMATCH: Answer((), "make the Service's targetPort match the port the pods listen on"),
    C.SERVICE_SELECTOR_MISMATCH: Answer((), "make the Service's selector match the pods' labels"),
    C.NETWORK_POLICY_BLOCK: Answer((), "allow the traffic in the NetworkPolicy that blocks it"),
    C.INSUFFICIENT_RESOURCES: Answer((ActionType.ROLLBACK,), "lower the pods' requests or add capacity to the "
                                                             "cluster"),
    C.SCHEDULING_CONSTRAINT: Answer((ActionType.ROLLBACK,), "relax the node selector, affinity or tolerations, or "
                                                            "label nodes to match"),
    # A drain cordons first; a cordon alone leaves the failing pods on the node.
    C.NODE_FAILURE: Answer((ActionType.DRAIN_NODE,), "repair or replace the node"),
    C.RESOURCE_QUOTA_EXCEEDED: Answer((), "raise the namespace's ResourceQuota or free what it counts"),
    C.STORAGE_FAILURE: Answer((), "repair the volume, its claim or its storage class"),
    C.SCALED_TO_ZERO: Answer((ActionType.SCALE,), "scale the workload back up"),
    C.RBAC_DENIED: Answer((), "grant the workload's service account the permission it is refused"),
    C.INIT_CONTAINER_FAILURE: Answer((), "fix the init container or what it waits for"),
    C.APPLICATION_ERROR: Answer((ActionType.ROLLBACK,), "fix the program's error; roll back if a release caused it"),
    C.NO_FAULT: Answer((), "nothing is wrong", fixable=False),
}


@dataclass
class Advice:
    """What ``advise`` concludes: the actions (possibly none) and, when they cannot fix the
    cause by themselves or there are none, what a person must do."""

    actions: list[RecommendedAction] = field(default_factory=list)
    note: str | None = None


def _action_id(kind: ActionType, target: str) -> str:
    return f"{kind.value.lower()}-{hashlib.sha1(f'{kind.value}/{target}'.encode()).hexdigest()[:8]}"


def _template_fields(findings: list[Finding], resource: str) -> set[str]:
    fields: set[str] = set()
    for finding in findings:
        if finding.kind == "TemplateChange" and finding.data.get("owner") == resource:
            fields |= set(finding.data.get("fields") or [])
    return fields


def _config_change(findings: list[Finding], kind: str, name: str) -> Finding | None:
    return next((f for f in findings if f.kind == "ConfigChanged" and f.data.get("name") == name
                 and f.data.get("config_kind", kind) == kind), None)


MEMORY_FINDINGS = ("MemoryNearLimit", "MemoryGrowing")


def limit_before_cut(findings: list[Finding], resource: str, container: str | None) -> int | None:
    """The memory limit a container ran with before the last rollout lowered it, in bytes:
    the containers lived within it, so it is evidence of what they need (a peak seen by a
    container killed at its limit is not). None when no rollout lowered it."""
    for finding in findings:
        if finding.kind != "TemplateChange" or finding.data.get("owner") != resource:
            continue
        for key, change in (finding.data.get("changes") or {}).items():
            name = key.partition("[")[2].partition("]")[0]
            if not key.endswith(".resources") or not key.startswith("containers[") or (container and name != container):
                continue
            before, after = (((change.get(side) or {}) if isinstance(change.get(side), dict) else {}).get("limits") or {}
                             for side in ("before", "after"))
            try:
                was, now = int(parse_quantity(before["memory"])), int(parse_quantity(after["memory"]))
            except (KeyError, ValueError, TypeError):
                continue
            if was > now:
                return was
    return None


def killed_at(findings: list[Finding], resource: str, container: str | None) -> int | None:
    """The memory limit the container was OOM-killed at, in bytes, as the pods ran it (a
    LimitRange's default included, which the template does not show)."""
    limits = [int(f.data["memory_limit"]) for f in findings
              if f.kind == "ContainerTerminated" and f.data.get("owner") == resource
              and f.data.get("reason") == "OOMKilled" and isinstance(f.data.get("memory_limit"), int)
              and (not container or f.data.get("container") == container)]
    return max(limits) if limits else None


def observed_peak(findings: list[Finding], resource: str, container: str | None) -> int | None:
    """The highest working set the metrics agent saw for ``resource``'s container (bytes),
    or None without usage metrics (pure)."""
    peaks = []
    for f in findings:
        if f.kind in MEMORY_FINDINGS and f.data.get("owner") == resource and (
                not container or not f.data.get("container") or f.data.get("container") == container):
            values = [v for v in [*(f.data.get("values") or []), f.data.get("recent")] if isinstance(v, (int, float))]
            peaks += values
    return int(max(peaks)) if peaks and max(peaks) > 0 else None


def advise(category: C, resource: str, namespace: str, findings: list[Finding], cited: list[str]) -> Advice:
    """The actions that can remove ``category`` on ``resource`` given the evidence, and a
    note for a person when they are none (or cannot do all of it). Pure."""
    answer = ANSWERS[category]
    kind, _, name = resource.partition("/")
    if not answer.fixable:
        return Advice()
    if not name:
        return Advice(note=f"No action in the catalog applies: the root cause names no object. To fix "
                           f"{category.value}: {answer.manual}.")
    target = ResourceRef(kind=kind, name=name, namespace=None if kind == "Node" else namespace)
    advice = Advice()
    why_not: list[str] = []

    def add(action: ActionType, reason: str, **parameters: Any) -> None:
        # No nulls in the free-form map: the API server drops them, and status would differ from what was written.
        given = {key: value for key, value in parameters.items() if value is not None}
        advice.actions.append(RecommendedAction(id=_action_id(action, resource), type=action, target=target,
                                                parameters=given or None, reason=reason[:1024],
                                                evidence_ids=cited[:8]))

    def set_resources() -> None:
        if kind not in ROLLOUT_KINDS:
            why_not.append(f"setResources changes a workload, not a {kind}")
            return
        # The container killed, or the one forecast to reach its limit (nothing killed yet).
        container = next((f.data.get("container") for f in findings if f.data.get("owner") == resource and (
            (f.kind == "ContainerTerminated" and f.data.get("reason") == "OOMKilled")
            or (f.kind == "Forecast" and f.data.get("container")))), None)
        peak = observed_peak(findings, resource, container)
        previous = limit_before_cut(findings, resource, container)
        killed = killed_at(findings, resource, container)
        before = f", at least back to the {previous / 2**20:.0f} MiB it had before the last rollout cut it" if previous else ""
        if peak is not None:
            add(ActionType.SET_RESOURCES, f"raise the memory limit the containers are killed at, from the peak working "
                                          f"set observed ({peak / 2**20:.0f} MiB) with headroom{before}", container=container,
                memoryPeakBytes=peak, memoryPreviousLimitBytes=previous, memoryKilledAtBytes=killed)
        else:
            add(ActionType.SET_RESOURCES, "raise the memory limit the containers are killed at (no usage metrics: the "
                                          f"limit × 1.5{before})", container=container, memoryIncreasePercent=50,
                memoryPreviousLimitBytes=previous, memoryKilledAtBytes=killed)

    def rollback() -> None:
        if kind not in ROLLOUT_KINDS:
            return  # said by the action that fits this kind, or by the note
        fields = _template_fields(findings, resource) - {"restartedAt"}
        relevant = fields & ROLLBACK_FIELDS.get(category, set())
        if not fields:
            why_not.append("no rollout of it changed anything a rollback would undo")
        elif not relevant:
            why_not.append(f"its last rollout changed only {', '.join(sorted(fields))}, where a {category.value} "
                           "does not come from, so a rollback would not undo it")
        else:
            add(ActionType.ROLLBACK, f"the last rollout changed {', '.join(sorted(relevant))}; roll back to the "
                                     "previous revision")

    def restore_config() -> None:
        if kind not in ("ConfigMap", "Secret"):
            return
        change = _config_change(findings, kind, name)
        if change is None:
            why_not.append(f"no change of {resource} was seen, so there is no earlier content to restore")
            return
        when = change.data.get("changed") or "an unknown time"
        users = ", ".join(change.data.get("used_by") or []) or "its users"
        if kind == "Secret":
            # Secret values are never read or kept, so aisre cannot put the old one back.
            why_not.append(f"{resource} changed at {when}; aisre never keeps Secret values, so put its previous "
                           f"value back from where it is kept, then restart {users}")
            return
        add(ActionType.RESTORE_CONFIG, f"{resource} changed at {when} and {users} now fail; restore the content it "
                                       f"had while they were healthy, and restart {users} (a restart alone would "
                                       "reload the same bad content)")

    def drain() -> None:
        if kind == "Node":
            # The workloads the evidence shows failing on this node: the drain is for them, so
            # it is refused when none of their pods could move (aisre.remediation.actions.drain_node).
            hit = sorted({str(f.data["owner"]) for f in findings if f.data.get("node") == name and f.data.get("owner")})
            add(ActionType.DRAIN_NODE, "keep new pods off the failing node and move the pods of its controllers "
                                       "elsewhere (evictions respect PodDisruptionBudgets)",
                workloads=hit[:10] or None, namespace=namespace if hit else None)

    def scale() -> None:
        if kind in ("Deployment", "StatefulSet"):
            add(ActionType.SCALE, "scale back up", replicas=1)

    builders: dict[ActionType, Callable[[], None]] = {
        ActionType.SET_RESOURCES: set_resources, ActionType.ROLLBACK: rollback,
        ActionType.RESTORE_CONFIG: restore_config, ActionType.SCALE: scale,
        ActionType.DRAIN_NODE: drain}
    for action in answer.actions:
        builders[action]()
    if not advice.actions:
        reasons = f" ({'; '.join(why_not)})" if why_not else ""
        advice.note = (f"No action in the catalog can fix {category.value} on {resource}{reasons}. "
                       f"A person must: {answer.manual}.")[:1024]
    return advice


def recommend(category: C, resource: str, namespace: str, findings: list[Finding], cited: list[str]) -> list[RecommendedAction]:
    """The actions of ``advise`` (what the policy decides on)."""
    return advise(category, resource, namespace, findings, cited).actions


PREFERENCE_CASES = 5  # the most similar past Incidents consulted
PREFERENCE_MIN_SIMILARITY = 0.3


def prefer_proven(actions: list[dict[str, Any]], past: list[tuple[float, list[tuple[str, bool]]]]) -> list[dict[str, Any]]:
    """The recommended actions ordered so that those that cleared similar past faults come
    first, those that did not last (pure). ``past``: (similarity, [(action type, cleared)])
    per similar past Incident. Bounded: the ``PREFERENCE_CASES`` most similar at or above
    ``PREFERENCE_MIN_SIMILARITY``, each weighted by its similarity; it only reorders what the
    catalog recommended for this cause (no action is added or removed), and says why in the
    action's reason. Ties keep the catalog's order."""
    consulted = sorted((p for p in past if p[0] >= PREFERENCE_MIN_SIMILARITY), key=lambda p: -p[0])[:PREFERENCE_CASES]
    score: dict[str, float] = {}
    tally: dict[str, list[int]] = {}
    for similarity, record in consulted:
        for type_, cleared in record:
            score[type_] = score.get(type_, 0.0) + (similarity if cleared else -similarity)
            counts = tally.setdefault(type_, [0, 0])
            counts[0] += int(cleared)
            counts[1] += 1
    ordered = sorted(enumerate(actions), key=lambda pair: (-score.get(pair[1]["type"], 0.0), pair[0]))
    out = []
    for _, action in ordered:
        counts = tally.get(action["type"])
        if counts:
            note = (f" [memory: cleared the fault in {counts[0]} of {counts[1]} similar past Incident(s) where it ran"
                    f"{', preferred' if score[action['type']] > 0 else ', tried after the others'}]")
            action = {**action, "reason": (action.get("reason", "") + note)[:1024]}
        out.append(action)
    return out


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
