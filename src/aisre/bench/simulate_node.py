"""The ``node`` fault step: a node reports conditions (NotReady, MemoryPressure, ...) as its
kubelet would, until the scenario ends; then the node is put back as it was.

KWOK's node-initialize stage resets any node that is not Ready, and its heartbeat stage
rewrites the conditions every few minutes, so a weight > 0 no-op Stage holds KWOK off the
chosen nodes while the runner writes their conditions. The real node lifecycle controller
reacts as it would to a real kubelet (not-ready / pressure taints, NodeNotReady events,
pods marked not Ready): restoring undoes that too — conditions, the taints the controller
added, and the Ready condition of other namespaces' pods on the node (which a recovering
kubelet would report again). Before touching a node the runner writes what it saw to a
journal file, so a run that was killed outright is repaired by the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from aisre.bench import kwok
from aisre.bench.kube import Kube, Stream, api_error, labels_match
from aisre.bench.pod_status import timestamp
from aisre.bench.scenario import NodeCondition, NodeStep

# Taints the node lifecycle controller derives from conditions (TaintNodesByCondition and
# taint-based eviction); any of them that appeared during the fault is removed on restore.
CONDITION_TAINTS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
    }
)
SETTLE_S = 0.5  # how long a written condition must stay before we trust it held


def _now() -> str:
    return timestamp(dt.datetime.now(dt.UTC))


def choose_nodes(step: NodeStep, pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """The nodes a step means: by name, by node labels, or those running its pods."""
    if step.name is not None:
        return [step.name]
    if step.selector is not None:
        return sorted(n["metadata"]["name"] for n in nodes if labels_match(step.selector, n))
    assert step.pod_selector is not None
    return pods_nodes(step.pod_selector, pods)


def pods_nodes(selector: Mapping[str, str], pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Nodes of the (not terminating) pods a label selector matches."""
    return sorted(
        {
            p["spec"]["nodeName"]
            for p in pods
            if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp") and labels_match(selector, p)
        }
    )


def with_conditions(current: Sequence[Mapping[str, Any]], wanted: Sequence[NodeCondition], now: str) -> list[dict[str, Any]]:
    """The node's conditions with ``wanted`` set, as a kubelet posts them: every condition
    gets a fresh heartbeat; the transition time moves only where the status changes."""
    out: list[dict[str, Any]] = []
    by_type = {c.type: c for c in wanted}
    for cond in current:
        new = dict(cond, lastHeartbeatTime=now)
        if cond["type"] in by_type:
            w = by_type.pop(cond["type"])
            if w.status != cond.get("status"):
                new["lastTransitionTime"] = now
            new.update(status=w.status, reason=w.reason or cond.get("reason", ""), message=w.message or cond.get("message", ""))
        out.append(new)
    for w in by_type.values():
        out.append({"type": w.type, "status": w.status, "reason": w.reason, "message": w.message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now})
    return out


def restored_conditions(saved: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
    """The saved conditions, heartbeat now; a status that flips back transitions now."""
    status_now = {c["type"]: c.get("status") for c in current}
    out = []
    for cond in saved:
        new = dict(cond, lastHeartbeatTime=now)
        if status_now.get(cond["type"]) != cond.get("status"):
            new["lastTransitionTime"] = now
        out.append(new)
    return out


def restored_taints(saved: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The current taints minus the condition taints that were not there before."""
    before = {(t["key"], t.get("effect")) for t in saved}
    return [dict(t) for t in current if t["key"] not in CONDITION_TAINTS or (t["key"], t.get("effect")) in before]


def conditions_hold(node: Mapping[str, Any], wanted: Iterable[Mapping[str, Any] | NodeCondition]) -> bool:
    have = {c["type"]: c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    pairs = [(w.type, w.status) if isinstance(w, NodeCondition) else (w["type"], w.get("status")) for w in wanted]
    return all(have.get(t) == s for t, s in pairs)


@dataclass
class SavedNode:
    name: str
    conditions: list[dict[str, Any]]
    taints: list[dict[str, Any]]
    ready_pods: list[str] = field(default_factory=list)  # "namespace/name/uid" of Ready pods elsewhere


@dataclass
class Journal:
    """What the runner changed on nodes, on disk until it is undone."""

    path: Path
    run_id: str
    namespace: str
    nodes: dict[str, SavedNode] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"runId": self.run_id, "namespace": self.namespace, "stages": self.stages,
                "nodes": {k: asdict(v) for k, v in self.nodes.items()}}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    @classmethod
    def read(cls, path: Path) -> Journal:
        data = json.loads(path.read_text())
        return cls(path, data["runId"], data["namespace"],
                   {k: SavedNode(**v) for k, v in data["nodes"].items()}, list(data.get("stages", [])))


class NodeSimulator:
    """Node conditions for the node steps of one scenario, and their undoing."""

    def __init__(self, kube: Kube, namespace: str, *, run_id: str, journal_path: Path) -> None:
        self.kube = kube
        self.journal = Journal(journal_path, run_id, namespace)

    def apply(self, index: int, step: NodeStep, nodes: list[str]) -> None:
        if not nodes:
            raise ValueError("node step: no node matches (podSelector finds no scheduled pod?)")
        held = self._held_elsewhere(nodes)
        if held:
            # Two runs writing one node's conditions would each restore the other's fault.
            raise RuntimeError(f"node step: {', '.join(held)}; node steps need their nodes to themselves")
        for name in nodes:
            if name not in self.journal.nodes:
                self.journal.nodes[name] = self._save(name)
        stage = f"{self.journal.namespace}-node-{index}"
        self.journal.stages.append(stage)
        self.journal.write()  # before the first change
        body = kwok.node_hold_stage(stage, nodes, namespace=self.journal.namespace, run_id=self.journal.run_id)
        self.kube.custom.create_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", body)
        for name in nodes:
            conditions = step.reported_conditions()
            self._set(name, lambda node: with_conditions(node["status"].get("conditions") or [], conditions, _now()),
                      conditions)

    def restore(self) -> list[str]:
        return restore(self.kube, self.journal)

    def _held_elsewhere(self, nodes: list[str]) -> list[str]:
        """The nodes another bench run holds with its own node Stage right now."""
        stages = self.kube.custom.list_cluster_custom_object(
            kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", label_selector=f"{kwok.MANAGED_BY_LABEL}={kwok.MANAGED_BY}"
        )["items"]
        out = []
        for stage in stages:
            run = (stage["metadata"].get("labels") or {}).get(kwok.RUN_LABEL)
            if stage["spec"]["resourceRef"].get("kind") != "Node" or run == self.journal.run_id:
                continue
            names = {v for e in stage["spec"]["selector"].get("matchExpressions") or [] for v in e.get("values") or []}
            out.extend(f"node {n} is held by bench run {run} (Stage {stage['metadata']['name']})" for n in nodes if n in names)
        return out

    def _save(self, name: str) -> SavedNode:
        node = Kube.raw(self.kube.core.read_node, name)
        pods = Kube.raw(self.kube.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={name}")["items"]
        ready = [
            f"{p['metadata']['namespace']}/{p['metadata']['name']}/{p['metadata']['uid']}"
            for p in pods
            if p["metadata"]["namespace"] != self.journal.namespace
            and any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])
        ]
        return SavedNode(name, node["status"].get("conditions") or [], node["spec"].get("taints") or [], ready)

    def _set(self, name: str, compute: Any, wanted: Sequence[Any]) -> None:
        _write_conditions(self.kube, name, compute, wanted)


def _converge(kube: Kube, name: str, write: Callable[[dict[str, Any]], None], ok: Callable[[dict[str, Any]], bool],
              *, force: bool, attempts: int = 5) -> bool:
    """Write the node (always the first time when ``force``), then watch it for SETTLE_S:
    a controller that still acts on the old state (KWOK before it loaded our Stage, the
    node lifecycle controller) may undo the write once, and then it is written again."""
    for attempt in range(attempts):
        node = Kube.raw(kube.core.read_node, name)
        if (force and attempt == 0) or not ok(node):
            write(node)
        stream = Stream(kube.core.list_node, field_selector=f"metadata.name={name}")
        held = all(ok(seen) for _, seen in stream.events(timeout=SETTLE_S))
        stream.stop()
        if held:
            return True
    return False


def _write_conditions(kube: Kube, name: str, compute: Callable[[dict[str, Any]], list[dict[str, Any]]],
                      wanted: Sequence[Any]) -> None:
    def write(node: dict[str, Any]) -> None:
        kube.core.patch_node_status(name, {"status": {"conditions": compute(node)}},
                                    field_manager="kubelet", _content_type="application/merge-patch+json")

    if not _converge(kube, name, write, lambda node: conditions_hold(node, wanted), force=True):
        raise RuntimeError(f"node {name}: its conditions keep being reset; is another controller writing them?")


def restore(kube: Kube, journal: Journal) -> list[str]:
    """Undo a journal: conditions, hold Stages, condition taints, other pods' readiness."""
    problems: list[str] = []
    for name, saved in journal.nodes.items():
        try:
            _write_conditions(kube, name, lambda node, s=saved: restored_conditions(
                s.conditions, node["status"].get("conditions") or [], _now()), saved.conditions)
        except (ApiException, RuntimeError) as error:
            problems.append(f"restore conditions of node {name}: {api_error(error) if isinstance(error, ApiException) else error}")
    for stage in journal.stages:
        try:
            kube.custom.delete_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", stage)
        except ApiException as error:
            if error.status != 404:
                problems.append(f"delete Stage {stage}: {api_error(error)}")
    for name, saved in journal.nodes.items():
        problems.extend(_restore_taints(kube, name, saved))
        problems.extend(_ready_again(kube, saved))
    if not problems:
        journal.path.unlink(missing_ok=True)
    return problems


def _restore_taints(kube: Kube, name: str, saved: SavedNode) -> list[str]:
    def clean(node: dict[str, Any]) -> bool:
        current = node["spec"].get("taints") or []
        return len(restored_taints(saved.taints, current)) == len(current)

    def write(node: dict[str, Any]) -> None:
        wanted = restored_taints(saved.taints, node["spec"].get("taints") or [])
        try:  # with the resourceVersion: never drop a taint somebody else just added
            kube.core.patch_node(name, {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                                        "spec": {"taints": wanted or None}},
                                 _content_type="application/merge-patch+json")
        except ApiException as error:
            if error.status != 409:
                raise

    try:
        if _converge(kube, name, write, clean, force=False, attempts=10):
            return []
    except ApiException as error:
        return [f"restore taints of node {name}: {api_error(error)}"]
    return [f"node {name}: condition taints keep coming back"]


def _ready_again(kube: Kube, saved: SavedNode) -> list[str]:
    """Pods of other namespaces that the node controller marked not Ready while the node was
    down get their Ready condition back, as their kubelet would post it."""
    problems = []
    for ref in saved.ready_pods:
        namespace, name, uid = ref.split("/")
        try:
            pod = Kube.raw(kube.core.read_namespaced_pod, name, namespace)
        except ApiException:
            continue
        conds = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        if pod["metadata"]["uid"] != uid or conds.get("Ready", {}).get("status") != "False" or conds.get("ContainersReady", {}).get("status") != "True":
            continue
        try:
            kube.core.patch_namespaced_pod_status(
                name, namespace, {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _now()}]}},
                field_manager="kubelet", _content_type="application/strategic-merge-patch+json",
            )
        except ApiException as error:
            if error.status != 404:
                problems.append(f"pod {namespace}/{name} Ready again: {api_error(error)}")
    return problems


def recover(kube: Kube, journal_dir: Path, alive: Any) -> list[str]:
    """Undo the journals of runs that are gone (``alive(run_id)`` says which are not)."""
    problems: list[str] = []
    for path in sorted(journal_dir.glob("*.json")) if journal_dir.is_dir() else []:
        try:
            journal = Journal.read(path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.append(f"unreadable node journal {path}: {error}")
            continue
        if not alive(journal.run_id):
            problems.extend(restore(kube, journal))
    return problems
