"""``aisre bench --remediate auto``: after a scenario's Investigation concludes, let the
operator remediate under a permissive ``auto`` policy and score what happened.

In investigate mode the runner opens an Incident for the scenario namespace about the
bench Investigation's root cause, as a person would (spec only: only the operator writes
status, and it executes only what it recommended itself, signed, for the Investigation it
started for that Incident); the in-process operator investigates it and its remediation
handler does the rest. In detect mode the Incident is detection's own. Each result gets:

- ``action``: the first action the policy chain let execute (type and ``Kind/name``
  target), else the first one decided, else null;
- ``action_result``: its journal result (Succeeded / Failed / Reverted), or its decision
  when it was not executed;
- ``cleared``: whether the simulated fault is gone afterwards. The runner stops simulating
  a fault once the object it was injected through is restored: every workload a fault
  step patched or applied has its baseline pod template back (a rollback does that). Then
  the namespace's workloads must become available. A fault injected only through pods
  (runtime steps with no workload change) is never restored by an action, so it stays
  simulated and is not cleared. Once restored, the simulation stops: its Stages are
  deleted and the pods it wrote are replaced (a real kubelet would report them healthy).
  Pods created after the restore (a rollback's, a restart's) are healthy from their first
  status on, as a real kubelet would report them, not only once the runner notices.

What counts as restored: the changed object the scenario names as its root cause has its
baseline template or content back (a release that changed a second workload too carries
changes that are not the fault); when the root cause is no changed object, each workload a
fault step changed has its baseline pod template back, and each ConfigMap its baseline
content (what ``restoreConfig`` does; its users' restart does not count as a change). A
fault on nodes that changed no object is the nodes' doing: it is over for the scenario's
pods once a ``drainNode`` moved them off, and pods that land on another node are healthy;
the node itself stays simulated until the scenario ends.

Nodes are shared by the whole cluster: the namespace's permissive policy cannot govern them
(only the operator's namespace's policies can), so a second policy there (``NODE_POLICY``)
governs only the nodes this scenario's fault broke, which the runner labels
(``NODE_LABEL``) and puts back (uncordoned, unlabelled) when the scenario ends.

The operator's known-good ConfigMap copies (``restoreConfig``'s source) must be taken
before the fault: the runner shortens the keeper's interval and settle time
(``SNAPSHOT_ENV``) and waits for the copies of the ConfigMaps a fault will change
(``wait_for_snapshots``).

The executor runs with the operator's identity here (the bench does not install the
chart's executor RBAC).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import AppsV1Api
from kubernetes.client.exceptions import ApiException

from aisre.api.meta import GROUP, VERSION
from aisre.api.taxonomy import ActionType
from aisre.remediation.policy import parse_quantity
from aisre.bench.investigate import INVESTIGATION
from aisre.bench.kube import Kube
from aisre.bench.scenario_run import ScenarioRun, manifests
from aisre.bench.workloads import WORKLOAD_KINDS, wait_available

INCIDENT = "bench"
POLICY = "bench-auto"
CLEARED_TIMEOUT_S = 30.0
# Verification follows the workload's own rollout: a Deployment's default progress deadline
# (600 s) is the longest a stuck rollout is waited for (one whose new pods fail ends sooner).
VERIFY_WAIT_S = 660.0
FINAL = {"Succeeded", "Failed", "Reverted", "Skipped", "Pending"}

# The operator's config snapshot keeper in bench runs: a tick a second, a copy once the
# users ran healthy for two seconds (the defaults, 60 s and 30 s, outlast a scenario's setup).
SNAPSHOT_ENV = {"AISRE_SNAPSHOT_INTERVAL": "1", "AISRE_SNAPSHOT_SETTLE": "2"}
SNAPSHOT_WAIT_S = 20.0
NODE_LABEL = "aisre.dev/bench-fault"  # value: the scenario's namespace
NODE_POLICY_PREFIX = "bench-nodes-"

PERMISSIVE_POLICY: dict[str, Any] = {
    # Never Node here: a namespace's policy cannot govern the nodes everyone shares (see
    # NODE_POLICY). ConfigMap: restoreConfig.
    "targets": {"kinds": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "ConfigMap"]},
    "actions": [{"type": t.value, "mode": "auto"} for t in ActionType],
    "bounds": {"scale": {"minReplicas": 0, "maxReplicas": 20}, "resources": {"maxMemoryIncreasePercent": 100}},
    "limits": {"actionsPerHour": 100, "maxConcurrent": 10, "cooldown": "1s", "minHealthyPercent": 0},
    "verification": {"timeout": "30s", "revertOnFailure": True},
    "allowGitOpsManaged": True,
}



def node_policy(namespace: str) -> dict[str, Any]:
    """The operator's-namespace policy for one scenario: cordon and drain, in auto mode, of
    the nodes its fault broke (labelled ``NODE_LABEL=<namespace>``) and nothing else."""
    return {
        "targets": {"kinds": ["Node"], "namespaces": [namespace],
                    "selector": {"matchLabels": {NODE_LABEL: namespace}}},
        "actions": [{"type": "drainNode", "mode": "auto"}, {"type": "cordonNode", "mode": "auto"}],
        # Permissive like the namespace's: the scenario's pods on a broken node are what a drain moves.
        "limits": {"actionsPerHour": 100, "maxConcurrent": 10, "cooldown": "1s", "minHealthyPercent": 0},
        "verification": {"timeout": "30s", "revertOnFailure": True},
    }


_LISTS = {"Deployment": "list_namespaced_deployment", "StatefulSet": "list_namespaced_stateful_set",
          "DaemonSet": "list_namespaced_daemon_set"}


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod template as compared for "restored": what the simulated pods run, so without
    annotations (a restart's timestamp, a config checksum that only triggers restarts) and
    the controller's hash label."""
    template = copy.deepcopy((obj.get("spec") or {}).get("template") or {})
    metadata = template.get("metadata") or {}
    metadata.pop("annotations", None)
    (metadata.get("labels") or {}).pop("pod-template-hash", None)
    return template


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """A ConfigMap as compared for "restored": its content only."""
    return {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}


def snapshot(kube: Kube, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The baseline pod templates of the namespace's workloads and its ConfigMaps' content
    (taken after setup)."""
    apps = AppsV1Api(kube.api)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, lister in _LISTS.items():
        for obj in Kube.raw(getattr(apps, lister), namespace)["items"]:
            found[(kind, obj["metadata"]["name"])] = _template(obj)
    for obj in Kube.raw(kube.core.list_namespaced_config_map, namespace)["items"]:
        found[("ConfigMap", obj["metadata"]["name"])] = _content(obj)
    return found


CHANGEABLE = (*WORKLOAD_KINDS, "ConfigMap")


def injected_through(run: ScenarioRun) -> set[tuple[str, str]]:
    """The workloads and ConfigMaps the fault steps changed (patched or applied)."""
    touched: set[tuple[str, str]] = set()
    for step in run.scenario.fault:
        if step.patch is not None and step.patch.target.kind in CHANGEABLE:
            touched.add((step.patch.target.kind, step.patch.target.name))
        if step.apply is not None:
            touched.update((m.get("kind"), (m.get("metadata") or {}).get("name")) for m in manifests(step.apply)
                           if m.get("kind") in CHANGEABLE)
    return touched


def cause_of(run: ScenarioRun) -> tuple[str, str] | None:
    """The object the scenario names as its root cause (kind, name), if it names one."""
    root = run.scenario.expect.root_cause
    resource = root.resource if root else None
    return (resource.kind, resource.name) if resource is not None and resource.name else None


def restored(touched: set[tuple[str, str]], baseline: dict[tuple[str, str], dict[str, Any]],
             now: dict[tuple[str, str], dict[str, Any]], action: str | None, node_fault: bool,
             cause: tuple[str, str] | None = None) -> bool:
    """Whether the action took away what the fault was injected through (pure): the changed
    object the scenario names as the root cause back as in the baseline (a release that
    changed more carries changes that are not the fault), else every changed workload's
    template and ConfigMap's content (an object the fault created is gone or back to
    nothing); or, for a fault on nodes, a drain that moved the pods off them."""
    if touched:
        keys = {cause} if cause in touched else touched
        return all(now.get(key) == baseline.get(key) for key in keys)
    return node_fault and action == "drainNode"


ANY_CONTAINER = "*"  # an OOM step that names no container: the pod's only one, whichever it is


def oom_containers(run: ScenarioRun) -> set[str] | None:
    """The containers whose OOM kills are the whole simulated fault (a runtime step in state
    OOMKilled, or Running again after an OOM kill, names each; steps that only add logs do
    not count), or None when any other failing state or restart is simulated too."""
    names: set[str] = set()
    for _, step in run.scenario.runtime_steps():
        if step.state == "OOMKilled" or step.reason == "OOMKilled":  # killed, or running again after the kill
            names.add(step.container or ANY_CONTAINER)
        elif step.state != "Running" or step.restarts:
            return None
    return names or None


def _memory_limits(template: dict[str, Any]) -> dict[str, float]:
    limits = {}
    for container in (template.get("spec") or {}).get("containers") or []:
        value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if value is not None:
            limits[container["name"]] = parse_quantity(str(value))
    return limits


def admitted_limits(pods: list[dict[str, Any]]) -> dict[str, float]:
    """The memory limits the pods run under, by container name (a LimitRange's default
    included, which no template shows); the largest where names repeat (pure)."""
    found: dict[str, float] = {}
    for pod in pods:
        for name, limit in _memory_limits(pod).items():
            found[name] = max(limit, found.get(name, 0))
    return found


def limits_outgrown(containers: set[str] | None, at_fault: dict[tuple[str, str], dict[str, Any]],
                    now: dict[tuple[str, str], dict[str, Any]], admitted: dict[str, float] | None = None) -> bool:
    """Whether every OOM-killed container now has a higher memory limit than it was killed at
    (pure): its template's, or for a template without one, the limit its pods were admitted
    with. The simulation knows no peak, so a raised limit ends the kills: how far is enough
    is what the real node measures (a real kernel's OOM killer)."""
    if not containers:
        return False
    raised: set[str] = set()
    for key, template in now.items():
        if key[0] not in WORKLOAD_KINDS or key not in at_fault:
            continue
        before, after = {**(admitted or {}), **_memory_limits(at_fault[key])}, _memory_limits(template)
        grown = {c for c in before if after.get(c, 0) > before[c]}
        raised |= (grown & containers) | ({ANY_CONTAINER} if grown else set())
    return containers <= raised


def configmaps_to_keep(run: ScenarioRun, baseline: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
    """The ConfigMaps of the baseline a fault step will change: their known-good copies must
    be kept before the fault (restoreConfig's source)."""
    return {name for kind, name in injected_through(run) if kind == "ConfigMap" and ("ConfigMap", name) in baseline}


def wait_for_snapshots(kube: Kube, operator_namespace: str, namespace: str, names: set[str],
                       timeout: float = SNAPSHOT_WAIT_S) -> set[str]:
    """Wait (bounded) until the operator keeps a copy of each ConfigMap in ``names``;
    returns those still without one."""
    from aisre.remediation.snapshots import GOOD, name_for

    deadline = time.monotonic() + timeout
    missing = set(names)
    while missing and time.monotonic() < deadline:
        try:
            store = kube.core.read_namespaced_config_map(name_for(namespace), operator_namespace)
            kept = set((json.loads((store.data or {}).get("snapshots") or "{}").get(GOOD) or {}))
            missing -= kept
        except ApiException as error:
            if error.status != 404:
                raise
        if missing:
            time.sleep(0.5)  # the store is a ConfigMap the keeper rewrites; bounded by the deadline
    return missing


def label_faulted_nodes(kube: Kube, namespace: str, nodes: list[str]) -> None:
    """Mark the nodes this scenario's fault broke: the only ones NODE_POLICY governs."""
    for node in nodes:
        kube.core.patch_node(node, {"metadata": {"labels": {NODE_LABEL: namespace}}})


def release_nodes(kube: Kube, namespace: str, operator_namespace: str) -> list[str]:
    """After the scenario: the nodes it marked unlabelled and schedulable again, its node
    policy gone. Returns problems (never raises: cleanup goes on)."""
    problems = []
    try:
        nodes = Kube.raw(kube.core.list_node, label_selector=f"{NODE_LABEL}={namespace}")["items"]
        for node in nodes:
            kube.core.patch_node(node["metadata"]["name"], {"metadata": {"labels": {NODE_LABEL: None}},
                                                            "spec": {"unschedulable": None}})
        kube.custom.delete_namespaced_custom_object(GROUP, VERSION, operator_namespace, "remediationpolicies",
                                                    f"{NODE_POLICY_PREFIX}{namespace}")
    except ApiException as error:
        if error.status != 404:
            problems.append(f"release nodes: {error.status} {error.reason}")
    return problems


def apply_policy(kube: Kube, namespace: str, operator_namespace: str | None = None) -> None:
    """The permissive policy (and, with the operator's namespace, the scenario's node
    policy there); in detect mode they are there before the fault, as real ones would be."""
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "remediationpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy", "metadata": {"name": POLICY},
        "spec": PERMISSIVE_POLICY})
    if operator_namespace:
        try:
            kube.custom.create_namespaced_custom_object(GROUP, VERSION, operator_namespace, "remediationpolicies", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy",
                "metadata": {"name": f"{NODE_POLICY_PREFIX}{namespace}"}, "spec": node_policy(namespace)})
        except ApiException as error:
            if error.status != 409:  # there already (detect mode made it before the fault)
                raise


def _open_incident(kube: Kube, namespace: str, investigation: dict[str, Any], operator_namespace: str | None = None) -> bool:
    root = (investigation.get("status") or {}).get("rootCause")
    if not root:
        return False
    resource = root.get("resource") or {"kind": "Namespace", "name": namespace}
    # Detection would name the failing workloads as affected; the namespace holds only this
    # scenario, so its workloads are those (an Incident changes only what it is about).
    affected = [{"kind": kind, "name": name} for kind, name in snapshot(kube, namespace) if kind in WORKLOAD_KINDS]
    apply_policy(kube, namespace, operator_namespace)
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": INCIDENT},
        "spec": {"title": f"bench: {root.get('category')}", "source": "manual", "resource": resource,
                 "affected": affected[:50], "investigate": True}})
    return True


def _operator_investigation(kube: Kube, namespace: str, incident: str, timeout: float) -> dict[str, Any] | None:
    """The Investigation the operator started for the Incident, once it concluded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident)
        ref = ((obj.get("status") or {}).get("investigationRef") or {}).get("name")
        if ref:
            found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", ref)
            if (found.get("status") or {}).get("state") in ("Completed", "Failed"):
                return found
        time.sleep(0.5)  # no watchable field of its own; bounded by the deadline
    return None


def _journal(kube: Kube, namespace: str, incident: str) -> list[dict[str, Any]]:
    obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident)
    return (obj.get("status") or {}).get("remediations") or []


def _wait_journal(kube: Kube, namespace: str, ids: set[str], timeout: float, incident: str = INCIDENT,
                  tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The journal once every action in ``ids`` has a final result (or at the deadline);
    ``tick`` runs at every poll: the simulated world's own reaction to what was done."""
    deadline = time.monotonic() + timeout
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = _journal(kube, namespace, incident)
        done = {e["id"] for e in entries if e.get("result") in FINAL}
        if ids <= done:
            return entries
        if tick is not None:
            tick()
        time.sleep(0.5)  # the journal has no watchable field of its own; bounded by the deadline
    return entries


def chosen(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    executed = [e for e in entries if e.get("decision") == "Execute"]
    return (executed or entries or [None])[0]


class SimulatedFault:
    """The fault the runner simulates through pods, which ends as soon as the objects it was
    injected through are back as they were: a real kubelet reports the rolled-back pods
    healthy at once, and the operator's verification, which watches them, must see that
    while it waits (not after, or it would wait for ever and revert)."""

    def __init__(self, kube: Kube, run: ScenarioRun, baseline: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.kube, self.run, self.baseline = kube, run, baseline
        self.touched = injected_through(run)
        self.cause = cause_of(run)
        # A fault on nodes that changed no object: what its runtime steps show is the broken
        # nodes' doing, so it stays on them.
        self.broken_nodes = set(run.nodes.journal.nodes)
        self.node_fault = bool(self.broken_nodes) and not self.touched
        self.active = bool(run.scenario.runtime_steps()) or self.node_fault
        self.at_fault = snapshot(kube, run.namespace)  # before any action: the limits the OOM kills happened at
        self.admitted = admitted_limits(kube.pods(run.namespace))
        self.oom = oom_containers(run)
        # What an action can end: a changed object put back, or a limit OOM kills outgrow.
        self.restorable = bool(self.touched or self.oom)
        self._checked = 0.0
        # Pods created from now on are healthy once the fault is gone (a real kubelet would run
        # a rolled-back template or a restored config at once), not only after the next tick.
        run.runtime.healthy = self.healthy

    def restored(self, action: str | None) -> bool:
        now = snapshot(self.kube, self.run.namespace)
        return restored(self.touched, self.baseline, now, action, self.node_fault, self.cause) or \
            limits_outgrown(self.oom, self.at_fault, now, self.admitted)

    def healthy(self, pod: dict[str, Any]) -> bool:
        """Whether a pod seen for the first time runs free of the fault: away from the broken
        nodes for a node fault, else once what the fault was injected through is restored."""
        if self.node_fault:
            return (pod.get("spec") or {}).get("nodeName") not in self.broken_nodes
        return self.restorable and self.restored(None)

    def stop(self) -> None:
        """Stop simulating: the Stages go (KWOK's defaults return) and the pods the
        simulation wrote are replaced, as a kubelet would report them healthy again."""
        self.active = False
        self.run.runtime.cleanup()
        for step in self.run.scenario.runtime_steps():
            selector = ",".join(f"{k}={v}" for k, v in sorted(step[1].selector.items()))
            self.kube.core.delete_collection_namespaced_pod(self.run.namespace, label_selector=selector)

    def tick(self) -> None:
        """During verification: a fault injected through workloads or ConfigMaps ends once
        they are restored, OOM kills once the limits outgrew them (checked every 2 s)."""
        if not self.active or not self.restorable or time.monotonic() - self._checked < 2.0:
            return
        self._checked = time.monotonic()
        if self.restored(None):
            self.stop()


def remediate(kube: Kube, run: ScenarioRun, baseline: dict[tuple[str, str], dict[str, Any]], timeout: float,
              detected: tuple[str, str] | None = None, operator_namespace: str | None = None) -> dict[str, Any]:
    """Open the Incident (investigate mode) or take the one detection opened (``detected``:
    its namespace and name), wait for the journal, judge whether the fault cleared."""
    namespace = run.namespace
    out: dict[str, Any] = {"action": None, "action_result": None, "cleared": False}
    fault = SimulatedFault(kube, run, baseline)
    try:
        if detected is None:
            investigation = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", INVESTIGATION)
            if not _open_incident(kube, namespace, investigation, operator_namespace):
                return out
            home, incident = namespace, INCIDENT
            investigation = _operator_investigation(kube, home, incident, timeout) or {}
        else:
            home, incident = detected
            obj = kube.custom.get_namespaced_custom_object(GROUP, VERSION, home, "incidents", incident)
            ref = ((obj.get("status") or {}).get("investigationRef") or {}).get("name") or incident
            investigation = kube.custom.get_namespaced_custom_object(GROUP, VERSION, home, "investigations", ref)
        ids = {a["id"] for a in (investigation.get("status") or {}).get("recommendedActions") or []}
        entries = _wait_journal(kube, home, ids, timeout + VERIFY_WAIT_S, incident, fault.tick) if ids else []
    except ApiException as error:
        out["remediation_error"] = f"{error.status} {error.reason}"
        return out
    entry = chosen(entries)
    if entry is None:
        return out
    target = entry.get("target") or {}
    out["action"] = {"type": entry.get("type"), "target": f"{target.get('kind')}/{target.get('name')}"}
    out["action_result"] = entry.get("result") if entry.get("decision") == "Execute" else entry.get("decision")
    out["action_detail"] = (entry.get("detail") or entry.get("reason") or "")[:300]
    if entry.get("assessment"):
        out["assessment"] = entry["assessment"]
    if out["action_result"] != "Succeeded":
        return out
    if fault.active:
        if not fault.restored(entry.get("type")):
            return out  # still injected: the simulation goes on
        fault.stop()
    not_ready = wait_available(kube, namespace, set(WORKLOAD_KINDS), CLEARED_TIMEOUT_S)
    out["cleared"] = not not_ready
    return out


def summarize(results: list[Any]) -> dict[str, Any]:
    """The remediation figures of a run (results carry ``remediation`` dicts)."""
    rows = [(r, getattr(r, "remediation", None) or {}) for r in results]
    faulty = [(r, m) for r, m in rows if r.incident]
    return {
        "scenarios_with_fault": len(faulty),
        "actions_executed": sum(1 for _, m in rows if m.get("action_result") in ("Succeeded", "Failed", "Reverted")),
        "actions_succeeded": sum(1 for _, m in rows if m.get("action_result") == "Succeeded"),
        "actions_reverted": sum(1 for _, m in rows if m.get("action_result") == "Reverted"),
        "cleared": sum(1 for _, m in faulty if m.get("cleared")),
        "actions_on_no_fault": sum(1 for r, m in rows if not r.incident and m.get("action_result") in ("Succeeded", "Failed", "Reverted")),
    }
