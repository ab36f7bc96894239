"""The pure parts of the simulation: KWOK manifests, CRI logs, kubelet events, node
conditions and their restoring, workload availability."""

from __future__ import annotations

import datetime as dt

from aisre.bench import kwok
from aisre.bench.kubelet_events import field_path, kubelet_event
from aisre.bench.scenario import NodeCondition, NodeStep, RuntimeEvent, RuntimeStep
from aisre.bench.simulate_node import choose_nodes, restored_conditions, restored_taints, with_conditions
from aisre.bench.simulate_runtime import ArmedStep
from aisre.bench.workloads import available

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
POD = {
    "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "nodeName": "kwok-node-1",
        "initContainers": [{"name": "migrate", "image": "registry.local/migrate:1"}],
        "containers": [{"name": "web", "image": "registry.local/web:2"}, {"name": "proxy", "image": "envoy:1.29"}],
    },
}


def _step(**kwargs) -> RuntimeStep:
    return RuntimeStep.model_validate({"selector": {"app": "web"}, "state": "CrashLoopBackOff", **kwargs})


def test_hold_stage_selects_namespace_labels_and_not_deleting_pods_with_weight() -> None:
    stage = kwok.pod_hold_stage("ns-runtime-1", "ns", {"app": "web", "app.kubernetes.io/part-of": "shop"}, run_id="h-1",
                                exclude_uids=["b", "a"])
    spec = stage["spec"]
    assert stage["kind"] == "Stage" and stage["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
    assert spec["resourceRef"] == {"apiGroup": "v1", "kind": "Pod"}
    assert spec["weight"] > 0 and "next" not in spec  # wins over the defaults, changes nothing: no loop
    assert spec["selector"]["matchExpressions"] == [
        {"key": ".metadata.namespace", "operator": "In", "values": ["ns"]},
        {"key": '.metadata.labels["app"]', "operator": "In", "values": ["web"]},
        {"key": '.metadata.labels["app.kubernetes.io/part-of"]', "operator": "In", "values": ["shop"]},
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".metadata.uid", "operator": "NotIn", "values": ["a", "b"]},
    ]
    assert stage["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "aisre-bench", "sim.aisre.dev/run": "h-1", "sim.aisre.dev/namespace": "ns",
    }
    only = kwok.pod_hold_stage("s", "ns", {"app": "web"}, run_id="r", only_uids=[])
    assert only["spec"]["selector"]["matchExpressions"][-1] == {"key": ".metadata.uid", "operator": "In", "values": ["none"]}


def test_node_hold_stage() -> None:
    stage = kwok.node_hold_stage("ns-node-0", ["kwok-node-1"], namespace="ns", run_id="r")
    assert stage["spec"]["resourceRef"]["kind"] == "Node" and stage["spec"]["weight"] > 0
    assert stage["spec"]["selector"]["matchExpressions"] == [{"key": ".metadata.name", "operator": "In", "values": ["kwok-node-1"]}]


def test_logs_object_lists_every_container_and_previous_only_where_given() -> None:
    obj = kwok.logs_object("web-1", "ns", {"web": ("/l/web.log", "/l/web.previous.log"), "proxy": ("/l/proxy.log", None)}, run_id="r")
    assert obj["kind"] == "Logs" and obj["metadata"]["name"] == "web-1" and obj["metadata"]["namespace"] == "ns"
    assert obj["spec"]["logs"] == [
        {"containers": ["proxy"], "logsFile": "/l/proxy.log"},
        {"containers": ["web"], "logsFile": "/l/web.log", "previousLogsFile": "/l/web.previous.log"},
    ]


def test_cri_log_format() -> None:
    text = kwok.cri_log(["first", "multi\nline", ""], T0)
    assert text.splitlines() == [
        "2026-01-01T12:00:00.000000000Z stdout F first",
        "2026-01-01T12:00:00.001000000Z stdout F multi",
        "2026-01-01T12:00:00.001000000Z stdout F line",
        "2026-01-01T12:00:00.002000000Z stdout F ",
    ]
    assert kwok.cri_log([], T0) == ""


def test_kubelet_event() -> None:
    step = _step(container="web", restarts=4)
    event = kubelet_event(POD, RuntimeEvent(type="Warning", reason="BackOff", message="Back-off restarting failed container web"),
                          step, name="web-1.18a0", now=T0 + dt.timedelta(minutes=2), since=T0, restarts=4)
    assert event["source"] == {"component": "kubelet", "host": "kwok-node-1"}
    assert event["reportingComponent"] == "kubelet" and event["reportingInstance"] == "kwok-node-1"
    assert event["involvedObject"] == {
        "apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "ns", "uid": "u1", "fieldPath": "spec.containers{web}",
    }
    assert event["count"] == 5 and event["firstTimestamp"] == "2026-01-01T12:00:00Z" and event["lastTimestamp"] == "2026-01-01T12:02:00Z"
    once = kubelet_event(POD, RuntimeEvent(reason="Evicted", message="x", count=1), step, name="n", now=T0, since=T0, restarts=4)
    assert once["count"] == 1 and "fieldPath" not in once["involvedObject"] and once["type"] == "Normal"


def test_event_field_path_follows_the_container_the_message_names() -> None:
    step = _step(container="web")

    def path(reason: str, message: str, s: RuntimeStep = step) -> str | None:
        return field_path(POD, RuntimeEvent(reason=reason, message=message), s)

    assert path("Created", "Created container: proxy") == "spec.containers{proxy}"
    assert path("Started", "Started container proxy") == "spec.containers{proxy}"
    assert path("Pulled", 'Container image "envoy:1.29" already present on machine') == "spec.containers{proxy}"
    assert path("Started", "Started container migrate") == "spec.initContainers{migrate}"
    assert path("BackOff", "Back-off restarting failed container") == "spec.containers{web}"  # the step's container
    assert path("BackOff", "Back-off", _step()) == "spec.containers{web}"  # else the first
    assert path("FailedMount", "MountVolume.SetUp failed") is None  # about the pod


def test_armed_steps_match_labels_new_pods_and_one_shot_pods() -> None:
    armed = ArmedStep(0, _step(), "s")
    assert armed.matches(POD)
    assert not ArmedStep(0, _step(selector={"app": "db"}), "s").matches(POD)
    assert not ArmedStep(0, _step(newPodsOnly=True), "s", exclude_uids=frozenset({"u1"})).matches(POD)
    evicted = ArmedStep(0, _step(state="Evicted"), "s")
    assert not evicted.matches(POD)  # not reached yet
    evicted.only_uids = frozenset({"u1"})
    assert evicted.matches(POD)
    evicted.only_uids = frozenset({"u2"})  # a replacement pod is left alone
    assert not evicted.matches(POD)


NODE_CONDITIONS = [
    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
     "lastHeartbeatTime": "2026-01-01T11:00:00Z", "lastTransitionTime": "2026-01-01T10:00:00Z"},
    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "ok",
     "lastHeartbeatTime": "2026-01-01T11:00:00Z", "lastTransitionTime": "2026-01-01T10:00:00Z"},
]


def test_node_conditions_are_set_like_a_kubelet_posts_them() -> None:
    now = "2026-01-01T12:00:00Z"
    out = with_conditions(NODE_CONDITIONS, [NodeCondition(type="Ready", status="False", reason="KubeletNotReady", message="PLEG is not healthy"),
                                            NodeCondition(type="NetworkUnavailable", status="True", reason="NoRouteCreated")], now)
    ready, memory, network = out
    assert ready == {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy",
                     "lastHeartbeatTime": now, "lastTransitionTime": now}
    assert memory["lastHeartbeatTime"] == now and memory["lastTransitionTime"] == "2026-01-01T10:00:00Z"
    assert network["type"] == "NetworkUnavailable" and network["status"] == "True"

    restored = restored_conditions(NODE_CONDITIONS, out, "2026-01-01T12:05:00Z")
    assert [c["status"] for c in restored] == ["True", "False"]
    assert restored[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z" and restored[0]["reason"] == "KubeletReady"
    assert restored[1]["lastTransitionTime"] == "2026-01-01T10:00:00Z"
    assert all(c["lastHeartbeatTime"] == "2026-01-01T12:05:00Z" for c in restored)


def test_restoring_taints_drops_only_condition_taints_added_meanwhile() -> None:
    saved = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    current = saved + [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "x"},
        {"key": "team/maintenance", "effect": "NoSchedule"},  # someone else's: kept
    ]
    assert restored_taints(saved, current) == [saved[0], current[3]]


def test_choosing_nodes() -> None:
    pods = [
        {"metadata": {"labels": {"app": "db"}}, "spec": {"nodeName": "kwok-node-1"}},
        {"metadata": {"labels": {"app": "db"}, "deletionTimestamp": "x"}, "spec": {"nodeName": "kwok-node-0"}},
        {"metadata": {"labels": {"app": "db"}}, "spec": {}},  # not scheduled
        {"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "kwok-node-0"}},
    ]
    nodes = [{"metadata": {"name": "kwok-node-0", "labels": {"zone": "a"}}}, {"metadata": {"name": "kwok-node-1", "labels": {"zone": "b"}}}]
    cond = [{"type": "Ready", "status": "False"}]
    assert choose_nodes(NodeStep.model_validate({"podSelector": {"app": "db"}, "conditions": cond}), pods, nodes) == ["kwok-node-1"]
    assert choose_nodes(NodeStep.model_validate({"name": "kwok-node-0", "conditions": cond}), pods, nodes) == ["kwok-node-0"]
    assert choose_nodes(NodeStep.model_validate({"selector": {"zone": "b"}, "conditions": cond}), pods, nodes) == ["kwok-node-1"]


def test_workload_availability() -> None:
    def deploy(**status) -> dict:
        return {"kind": "Deployment", "metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, **status}}

    assert available(deploy())
    assert not available(deploy(observedGeneration=1))
    assert not available(deploy(availableReplicas=1))
    assert not available(deploy(replicas=3))  # an old pod still there
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 3},
           "status": {"observedGeneration": 1, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3}}
    assert available(sts) and not available({**sts, "status": {**sts["status"], "readyReplicas": 2}})
    ds = {"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
          "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "numberAvailable": 2, "updatedNumberScheduled": 2}}
    assert available(ds) and not available({**ds, "status": {**ds["status"], "numberAvailable": 1}})


def test_a_node_held_by_another_run_is_refused(tmp_path) -> None:
    from types import SimpleNamespace

    from aisre.bench.simulate_node import NodeSimulator

    def stage(run: str, kind: str, nodes: list[str]) -> dict:
        return {"metadata": {"name": f"s-{run}", "labels": {kwok.RUN_LABEL: run}},
                "spec": {"resourceRef": {"kind": kind}, "selector": {"matchExpressions": [{"key": ".metadata.name", "values": nodes}]}}}

    stages = [stage("other-1", "Node", ["kwok-node-1"]), stage("me-2", "Node", ["kwok-node-0"]), stage("other-1", "Pod", ["kwok-node-0"])]
    kube = SimpleNamespace(custom=SimpleNamespace(list_cluster_custom_object=lambda *a, **k: {"items": stages}))
    sim = NodeSimulator(kube, "ns", run_id="me-2", journal_path=tmp_path / "j.json")  # type: ignore[arg-type]
    assert sim._held_elsewhere(["kwok-node-0"]) == []
    assert sim._held_elsewhere(["kwok-node-0", "kwok-node-1"]) == ["node kwok-node-1 is held by bench run other-1 (Stage s-other-1)"]
