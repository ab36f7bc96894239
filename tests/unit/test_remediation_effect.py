"""Issue 19, the pure decisions: verification that knows the workload (its own rollout
window, "still rolling out" is not "failed", revert only when worse or unchanged),
setResources sized from the observed peak within the policy's bounds, drainNode's choice
of pods and its scope, the journal's assessment, and the memory's bounded preference for
actions that cleared similar faults."""

from __future__ import annotations

import datetime as dt

import pytest

from aisre.api.evidence import Finding
from aisre.api.incident import Decision, Effect
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.knowledge.memory import Case, action_record, case_of_incident
from aisre.operator.recommend import advise, observed_peak, prefer_proven
from aisre.remediation import policy as P
from aisre.remediation import sizing
from aisre.remediation import verification as V
from aisre.remediation.actions import drain_node, set_resources
from aisre.remediation.actions.base import PreconditionFailed
from aisre.remediation.executor import assessment_of
from aisre.remediation.policy import DecisionInput, TargetState, decide

MI = 2**20
NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------- the workload's own rollout


def deployment(replicas=3, updated=3, available=3, total=3, generation=2, observed=2, stalled=False, **spec):
    conditions = [{"type": "Progressing", "status": "False" if stalled else "True",
                   "reason": "ProgressDeadlineExceeded" if stalled else "ReplicaSetUpdated"}]
    return {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, **spec},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available,
                       "replicas": total, "conditions": conditions}}


def statefulset(replicas=3, updated=3, ready=3, current="r1", update="r1", **spec):
    return {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": replicas, **spec},
            "status": {"observedGeneration": 1, "updatedReplicas": updated, "readyReplicas": ready,
                       "availableReplicas": ready, "currentRevision": current, "updateRevision": update}}


def daemonset(desired=4, updated=4, available=4, **spec):
    return {"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1}, "spec": spec,
            "status": {"observedGeneration": 1, "desiredNumberScheduled": desired, "updatedNumberScheduled": updated,
                       "numberAvailable": available}}


def test_rollout_state_per_kind() -> None:
    assert V.rollout_state(deployment()) == V.COMPLETE
    assert V.rollout_state(deployment(updated=1, available=2, total=4)) == V.PROGRESSING
    assert V.rollout_state(deployment(updated=1, available=2, total=4, stalled=True)) == V.STALLED
    assert V.rollout_state(deployment(observed=1)) == V.PROGRESSING  # the controller has not seen the change yet
    # a StatefulSet's ordered update is done only when the revisions agree
    assert V.rollout_state(statefulset()) == V.COMPLETE
    assert V.rollout_state(statefulset(current="r1", update="r2")) == V.PROGRESSING
    assert V.rollout_state(statefulset(updated=2)) == V.PROGRESSING
    assert V.rollout_state(daemonset()) == V.COMPLETE
    assert V.rollout_state(daemonset(updated=3)) == V.PROGRESSING
    assert V.rollout_state(daemonset(available=3)) == V.PROGRESSING
    assert V.rollout_state(None) == V.STALLED


def test_the_window_follows_the_workloads_own_rollout() -> None:
    # a Deployment: its progress deadline (600 s by default), never below the policy's timeout
    assert V.window_seconds(deployment(), 300) == 600 + V.SLACK_SECONDS
    assert V.window_seconds(deployment(progressDeadlineSeconds=120, minReadySeconds=10), 60) == 120 + 10 + V.SLACK_SECONDS
    assert V.window_seconds(deployment(progressDeadlineSeconds=60), 900) == 900
    # a StatefulSet: one replica after another
    assert V.window_seconds(statefulset(replicas=5), 60) == 5 * V.PER_POD_SECONDS
    assert V.window_seconds(statefulset(replicas=5, minReadySeconds=30), 60) == 5 * (V.PER_POD_SECONDS + 30)
    # a DaemonSet: maxUnavailable nodes at a time
    assert V.window_seconds(daemonset(desired=6), 10) == 6 * V.PER_POD_SECONDS
    assert V.window_seconds(daemonset(desired=6, updateStrategy={"rollingUpdate": {"maxUnavailable": 3}}), 10) \
        == 2 * V.PER_POD_SECONDS
    assert V.window_seconds(daemonset(desired=10, updateStrategy={"rollingUpdate": {"maxUnavailable": "50%"}}), 10) \
        == 2 * V.PER_POD_SECONDS
    # bounded
    assert V.window_seconds(statefulset(replicas=500), 60) == V.MAX_WINDOW
    assert V.window_seconds({"kind": "Node"}, 45) == 45


def pod(uid, restarts=0, oom=False, ready=True, current_oom=False, deleting=False):
    status = {"containerStatuses": [{"name": "app", "restartCount": restarts,
                                     "lastState": {"terminated": {"reason": "OOMKilled"}} if oom else {},
                                     "state": {"terminated": {"reason": "OOMKilled"}} if current_oom else {"running": {}}}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    metadata = {"uid": uid, "name": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T10:00:00Z"
    return {"metadata": metadata, "status": status}


def test_pod_counts_read_oom_kills_and_restarts() -> None:
    assert V.pod_counts(pod("a", restarts=3, oom=True)) == V.PodCounts(3, 3, True)
    assert V.pod_counts(pod("a", restarts=2)) == V.PodCounts(2, 0, True)
    assert V.pod_counts(pod("a", restarts=1, oom=True, current_oom=True, ready=False)) == V.PodCounts(1, 2, False)


def health(obj, *pods):
    return V.health_of(obj, list(pods), f"{obj['kind']}/{obj['metadata']['name']}")


def test_cleared_when_rolled_out_without_new_faults() -> None:
    before = health(deployment(available=1), pod("old1", 5, oom=True, ready=False), pod("old2", 4, oom=True, ready=False))
    after = health(deployment(), pod("n1"), pod("n2"), pod("n3"))
    judged = V.judge(before, after)
    assert judged.outcome == V.CLEARED and judged.keep


def test_new_oom_kills_in_the_new_pods_mean_unchanged_and_revert() -> None:
    """setResources that did not help: the new pods are OOM-killed too."""
    before = health(deployment(available=2), pod("old1", 3, oom=True), pod("old2"), pod("old3"))
    after = health(deployment(updated=1, available=2, total=4), pod("old2"), pod("old3"), pod("n1", 2, oom=True, ready=False))
    judged = V.judge(before, after)
    assert judged.outcome == V.UNCHANGED and not judged.keep
    assert "2 new OOM kill(s)" in judged.detail


def test_old_pods_failing_until_replaced_say_nothing_about_the_change() -> None:
    before = health(deployment(available=1), pod("old1", 3, ready=False), pod("old2"))
    after = health(deployment(updated=1, available=1, total=3), pod("old1", 7, ready=False), pod("old2"), pod("n1"))
    judged = V.judge(before, after)
    assert judged.outcome == V.IMPROVED and judged.keep  # still rolling out, the new revision's pod ready
    assert "still rolling out" in judged.detail


def test_a_rollout_that_made_no_ready_pod_is_unchanged() -> None:
    """A quota or a LimitRange refuses the new pods, or they never pass readiness: no
    progress to wait for, whatever the rollout says."""
    before = health(deployment(replicas=1, available=1, total=1), pod("old"))
    nothing = health(deployment(replicas=1, updated=0, available=1, total=1), pod("old"))
    assert V.judge(before, nothing).outcome == V.UNCHANGED
    unready = health(deployment(replicas=1, updated=1, available=1, total=2), pod("old"), pod("new", ready=False))
    assert V.judge(before, unready).outcome == V.UNCHANGED


def test_fewer_available_is_worse() -> None:
    before = health(statefulset(ready=3), pod("a"), pod("b"), pod("c"))
    after = health(statefulset(updated=1, ready=2, update="r2"), pod("a"), pod("b"), pod("c2", ready=False))
    assert V.judge(before, after).outcome == V.WORSE


def test_a_stalled_rollout_with_nothing_better_is_unchanged() -> None:
    before = health(deployment(available=2), pod("a"), pod("b"))
    after = health(deployment(updated=1, available=2, total=3, stalled=True), pod("a"), pod("b"), pod("n", ready=False))
    assert V.judge(before, after).outcome == V.UNCHANGED


def test_a_statefulset_still_in_its_ordered_update_is_not_failed() -> None:
    """The misses of issue 19: StatefulSet rollbacks reverted while their ordered update went on."""
    before = health(statefulset(ready=1), pod("a", 9, ready=False), pod("b", 9, ready=False), pod("c"))
    after = health(statefulset(updated=2, ready=2, current="r1", update="r2"), pod("a2"), pod("b2", ready=False), pod("c"))
    judged = V.judge(before, after)
    assert judged.outcome == V.IMPROVED and judged.keep


def test_without_a_before_the_state_is_judged_alone() -> None:
    assert V.judge(None, health(deployment(), pod("a"))).outcome == V.CLEARED
    assert V.judge(None, health(deployment(updated=1, available=3, total=4), pod("a"))).outcome == V.UNCHANGED
    assert V.judge(None, health(deployment(updated=1, available=3, total=4, stalled=True), pod("a"))).outcome == V.UNCHANGED


def test_overall_is_the_worst_and_unhealthy_lists_what_is_not_available() -> None:
    judged = V.overall([V.Judgement(V.CLEARED, "a"), V.Judgement(V.UNCHANGED, "b")])
    assert judged is not None and judged.outcome == V.UNCHANGED and "a; b" == judged.detail
    assert V.overall([]) is None
    assert V.unhealthy([deployment(), deployment(available=1) | {"metadata": {"name": "api"}}, daemonset(available=3)]) \
        == {"Deployment/api", "DaemonSet/agent"}


# ---------------------------------------------------------------- the journal's assessment


def test_assessment_of_a_verified_action() -> None:
    started = NOW
    judged = V.Judgement(V.CLEARED, "Deployment/web: 3/3 available")
    a = assessment_of(judged, True, started, NOW + dt.timedelta(seconds=42), ["Deployment/api"])
    assert a.cleared and a.effect == Effect.CLEARED and a.time_to_clear_seconds == 42
    assert a.side_effects == ["Deployment/api"] and "newly unhealthy" in a.detail
    kube = a.to_kube()
    assert kube["timeToClearSeconds"] == 42 and kube["sideEffects"] == ["Deployment/api"]


def test_assessment_of_a_reverted_or_unjudged_action() -> None:
    a = assessment_of(V.Judgement(V.WORSE, "fewer available"), False, NOW, None, [])
    assert not a.cleared and a.effect == Effect.WORSE and a.time_to_clear_seconds is None and a.side_effects is None
    cordoned = assessment_of(None, True, NOW, NOW + dt.timedelta(seconds=3), [])
    assert cordoned.cleared and cordoned.time_to_clear_seconds == 3
    assert assessment_of(None, False, NOW, None, []).effect == Effect.UNCHANGED


# ---------------------------------------------------------------- setResources from the peak


def test_new_memory_limit_from_the_peak_or_the_limit_bounded_and_rounded() -> None:
    assert sizing.new_memory_limit(128 * MI) == 192 * MI  # × 1.5 without metrics
    assert sizing.new_memory_limit(128 * MI, peak=128 * MI) == 192 * MI  # a peak censored by the kill
    assert sizing.new_memory_limit(300 * MI, peak=400 * MI) == 512 * MI  # peak × 1.3 = 520Mi, down to the 16Mi step
    assert sizing.new_memory_limit(64 * MI, peak=200 * MI) == 128 * MI  # never above × 2 in one action
    assert sizing.new_memory_limit(100 * MI, percent=50) == 144 * MI  # down to the step: never past the factor
    assert sizing.new_memory_limit(3 * 2**30, percent=50) == 4608 * MI  # 64Mi steps above 1Gi
    assert sizing.quantity(2 * 2**30) == "2Gi" and sizing.quantity(144 * MI) == "144Mi"
    for current in (10 * MI, 100 * MI, 999 * MI, 5 * 2**30):
        for peak in (None, current // 2, current, current * 3):
            new = sizing.new_memory_limit(current, peak)
            assert current < new <= 2 * current
    with pytest.raises(ValueError):
        sizing.new_memory_limit(0)


def deploy(memory="128Mi", request=None):
    resources = {"limits": {"memory": memory}}
    if request:
        resources["requests"] = {"memory": request}
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "resources": resources}]}}}}


def act(type_: str, kind: str = "Deployment", **params) -> RecommendedAction:
    return RecommendedAction(id=f"{type_}-1", type=type_, target=ResourceRef(kind=kind, name="web" if kind != "Node" else "n1",
                             namespace=None if kind == "Node" else "ns"), parameters=params or None)


def test_set_resources_plans_the_limit_from_the_peak() -> None:
    plan = set_resources.plan(deploy(), act("setResources", container="app", memoryPeakBytes=400 * MI), "m")
    resources = next(op["value"] for op in plan.body if op["path"].endswith("/resources"))
    assert resources["limits"]["memory"] == "256Mi"  # × 2 at most
    plan = set_resources.plan(deploy(request="128Mi"), act("setResources", memoryIncreasePercent=50), "m")
    resources = next(op["value"] for op in plan.body if op["path"].endswith("/resources"))
    assert resources["limits"]["memory"] == "192Mi" and resources["requests"]["memory"] == "128Mi"
    assert plan.undo == {"container": "app", "resources": {"limits": {"memory": "128Mi"}, "requests": {"memory": "128Mi"}}}
    with pytest.raises(PreconditionFailed):
        set_resources.plan({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {
            "containers": [{"name": "app"}]}}}}, act("setResources", memoryPeakBytes=MI), "m")


def policy(**fields) -> RemediationPolicySpec:
    fields.setdefault("actions", [{"type": "setResources", "mode": "auto"}])
    return RemediationPolicySpec.model_validate(fields)


def decided(a: RecommendedAction, s: RemediationPolicySpec, target: TargetState, operator_namespace=None, name="ns/p"):
    return decide(DecisionInput(a, "ns", name, s, target, NOW, operator_namespace=operator_namespace))


def test_the_derived_limit_stays_within_the_policys_bounds() -> None:
    small = TargetState(replicas=2, ready=2, memory_limit_bytes=128 * MI)
    assert decided(act("setResources", memoryPeakBytes=100 * MI), policy(), small).reason == P.AUTO  # 192Mi: +50 %
    # a peak that needs × 2: beyond the default 50 %, allowed by a policy that says 100 %
    v = decided(act("setResources", memoryPeakBytes=250 * MI), policy(), small)
    assert v.reason == P.OUT_OF_BOUNDS and "256Mi" in v.detail
    wide = policy(bounds={"resources": {"maxMemoryIncreasePercent": 100}})
    assert decided(act("setResources", memoryPeakBytes=250 * MI), wide, small).reason == P.AUTO
    capped = policy(bounds={"resources": {"maxMemoryIncreasePercent": 100, "maxMemory": "200Mi"}})
    v = decided(act("setResources", memoryPeakBytes=250 * MI), capped, small)
    assert v.reason == P.OUT_OF_BOUNDS and "exceeds 200Mi" in v.detail
    assert decided(act("setResources", memoryPeakBytes=100 * MI), policy(), TargetState(replicas=2, ready=2)).reason \
        == P.OUT_OF_BOUNDS  # no limit to derive from
    assert decided(act("setResources", memoryPeakBytes=-1), policy(), small).reason == P.OUT_OF_BOUNDS


def finding(kind: str, **data) -> Finding:
    return Finding(id=f"{kind}-1", agent="metrics", kind=kind, summary=kind, data=data)


def test_recommendation_sizes_from_the_observed_peak() -> None:
    oom = finding("ContainerTerminated", owner="Deployment/web", container="app", reason="OOMKilled")
    near = finding("MemoryNearLimit", owner="Deployment/web", container="app", values=[100e6, 130e6], recent=125e6)
    other = finding("MemoryNearLimit", owner="Deployment/api", container="app", values=[900e6])
    assert observed_peak([oom, near, other], "Deployment/web", "app") == 130_000_000
    assert observed_peak([oom, other], "Deployment/web", "app") is None
    with_metrics = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom, near], ["e1"]).actions[0]
    assert with_metrics.type == ActionType.SET_RESOURCES
    assert with_metrics.parameters == {"container": "app", "memoryPeakBytes": 130_000_000}
    without = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom], ["e1"]).actions[0]
    assert without.parameters == {"container": "app", "memoryIncreasePercent": 50}



def test_a_limit_the_last_rollout_cut_is_restored_within_the_cap() -> None:
    # The containers lived within the old limit: at least that much, never above × 2 in one action.
    assert sizing.new_memory_limit(64 * MI, percent=50, previous=128 * MI) == 128 * MI
    assert sizing.new_memory_limit(64 * MI, percent=50, previous=256 * MI) == 128 * MI
    assert sizing.new_memory_limit(64 * MI, percent=50, previous=80 * MI) == 96 * MI  # the factor asks for more
    oom = finding("ContainerTerminated", owner="Deployment/web", container="proxy", reason="OOMKilled")
    cut = Finding(id="t", agent="changes", kind="TemplateChange", summary="", data={
        "owner": "Deployment/web", "fields": ["resources"], "changes": {
            "containers[app].resources": {"before": {"limits": {"memory": "1Gi"}}, "after": {"limits": {"memory": "2Gi"}}},
            "containers[proxy].resources": {"before": {"limits": {"memory": "128Mi"}, "requests": {"memory": "64Mi"}},
                                            "after": {"limits": {"memory": "48Mi"}}}}})
    [action] = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom, cut], ["e1"]).actions[:1]
    assert action.parameters == {"container": "proxy", "memoryIncreasePercent": 50, "memoryPreviousLimitBytes": 128 * MI}
    assert "128 MiB it had before" in action.reason
    killed = TargetState(replicas=1, ready=0, memory_limit_bytes=48 * MI)
    wide = policy(bounds={"resources": {"maxMemoryIncreasePercent": 100}})
    assert decided(action, wide, killed).reason == P.AUTO  # 96Mi: +100 %
    assert decided(action, policy(), killed).reason == P.OUT_OF_BOUNDS  # beyond the default 50 %
    plan = set_resources.plan({"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"template": {
        "spec": {"containers": [{"name": "app"}, {"name": "proxy", "resources": {"limits": {"memory": "48Mi"}}}]}}}},
        action, "m")
    assert next(op["value"] for op in plan.body if op["path"].endswith("/resources"))["limits"]["memory"] == "96Mi"
    # A rollout that raised the limit, or one that changed another container, is no evidence.
    raised_cut = cut.model_copy(update={"data": {**cut.data, "changes": {"containers[proxy].resources": {
        "before": {"limits": {"memory": "32Mi"}}, "after": {"limits": {"memory": "48Mi"}}}}}})
    [action] = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom, raised_cut], ["e1"]).actions[:1]
    assert action.parameters == {"container": "proxy", "memoryIncreasePercent": 50}


def test_the_limit_makes_room_for_the_heap_the_flags_set() -> None:
    assert sizing.heap_bytes(["-Xms512m -Xmx1g -XX:+UseG1GC"]) == 1 * 2**30
    assert sizing.heap_bytes(["--max-old-space-size=3072", "-XX:MaxHeapSize=2048m"]) == 3072 * MI
    assert sizing.heap_bytes(["-XX:MaxRAMPercentage=75.0"]) is None  # a share of the limit grows with it
    assert sizing.heap_bytes(["-Xmx1gb"]) is None  # not a flag the JVM takes
    # the limit must hold the heap and what the program needs besides, within × 2
    assert sizing.new_memory_limit(768 * MI, percent=50, heap=2**30) == 1280 * MI  # not the factor's 1152Mi
    assert sizing.new_memory_limit(2 * 2**30, percent=50, heap=3072 * MI) == 3968 * MI
    jvm = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"template": {"spec": {
        "containers": [{"name": "app", "env": [{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"}],
                        "resources": {"limits": {"memory": "768Mi"}}}]}}}}
    plan = set_resources.plan(jvm, act("setResources", memoryIncreasePercent=50), "m")
    assert next(op["value"] for op in plan.body if op["path"].endswith("/resources"))["limits"]["memory"] == "1280Mi"
    # the policy's bounds judge the same limit: +67 % is beyond the default 50 %
    heap = TargetState(replicas=1, ready=0, memory_limit_bytes=768 * MI, heap_bytes=2**30)
    v = decided(act("setResources", memoryIncreasePercent=50), policy(), heap)
    assert v.reason == P.OUT_OF_BOUNDS and "1280Mi" in v.detail


def test_a_container_without_a_limit_is_raised_from_the_default_it_was_killed_at() -> None:
    from aisre.agents.workloads import memory_limit
    from aisre.operator.recommend import killed_at

    pod = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"memory": "384Mi"},
                                                                "limits": {"memory": "512Mi"}}}]}}
    assert memory_limit(pod, "app") == 512 * MI and memory_limit(pod, "other") is None
    oom = finding("ContainerTerminated", owner="Deployment/web", container="app", reason="OOMKilled",
                  memory_limit=512 * MI)
    assert killed_at([oom], "Deployment/web", "app") == 512 * MI
    [action] = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom], ["e1"]).actions[:1]
    assert action.parameters["memoryKilledAtBytes"] == 512 * MI
    template = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"template": {"spec": {
        "containers": [{"name": "app", "resources": {"requests": {"memory": "384Mi"}}}]}}}}
    plan = set_resources.plan(template, action, "m")
    # from the 512Mi the LimitRange gave the pods, not from the 384Mi request (which would lower it)
    assert next(op["value"] for op in plan.body if op["path"].endswith("/resources"))["limits"]["memory"] == "768Mi"


# ---------------------------------------------------------------- drainNode


def node_pod(name, owner_kind="ReplicaSet", namespace="shop", mirror=False, phase="Running", deleting=False):
    metadata = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if owner_kind:
        metadata["ownerReferences"] = [{"kind": owner_kind, "name": "x", "controller": True}]
    if mirror:
        metadata["annotations"] = {drain_node.MIRROR: "abc"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T10:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase}}


def test_drain_evicts_only_pods_a_controller_recreates() -> None:
    pods = [node_pod("web-1"), node_pod("db-0", "StatefulSet"), node_pod("agent", "DaemonSet"),
            node_pod("static", None, mirror=True), node_pod("bare", None), node_pod("done", phase="Succeeded"),
            node_pod("going", deleting=True), node_pod("a-web", namespace="pay")]
    evict, skipped = drain_node.evictable(pods)
    assert [p["name"] for p in evict] == ["a-web", "db-0", "web-1"]
    assert evict[0] == {"namespace": "pay", "name": "a-web", "uid": "uid-a-web", "owner": "ReplicaSet/x"}
    assert any("DaemonSet pod" in s for s in skipped) and any("mirror pod" in s for s in skipped)
    assert any("no controller" in s for s in skipped) and len(skipped) == 5


def test_drain_plan_cordons_and_lists_the_evictions() -> None:
    node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    plan = drain_node.plan(node, act("drainNode", "Node"), "m", {"pods": [node_pod("web-1"), node_pod("agent", "DaemonSet")]})
    assert {"op": "add", "path": "/spec/unschedulable", "value": True} in plan.body
    assert [p["name"] for p in plan.extra["evict"]] == ["web-1"] and plan.undo is None
    body = drain_node.eviction(plan.extra["evict"][0])
    assert body["kind"] == "Eviction" and body["deleteOptions"]["preconditions"]["uid"] == "uid-web-1"
    with pytest.raises(PreconditionFailed):
        drain_node.plan({**node, "spec": {"unschedulable": True}}, act("drainNode", "Node"), "m", {"pods": []})
    many = [node_pod(f"p{i:03d}") for i in range(drain_node.MAX_EVICTIONS + 5)]
    capped = drain_node.plan(node, act("drainNode", "Node"), "m", {"pods": many})
    assert len(capped.extra["evict"]) == drain_node.MAX_EVICTIONS and "the bound per drain" in capped.summary


def test_only_the_operators_policies_may_drain_and_within_the_blast_radius() -> None:
    s = RemediationPolicySpec.model_validate({"targets": {"kinds": ["Node"]}, "actions": [{"type": "drainNode", "mode": "auto"}],
                                              "limits": {"minHealthyPercent": 50}})
    nodes = TargetState(replicas=4, ready=4)
    own = decided(act("drainNode", "Node"), s, nodes, operator_namespace="aisre-system", name="shop/p")
    assert (own.decision, own.reason) == (Decision.DENIED, P.OUT_OF_SCOPE)
    central = decided(act("drainNode", "Node"), s, nodes, operator_namespace="aisre-system", name="aisre-system/p")
    assert central.reason == P.AUTO
    last = decided(act("drainNode", "Node"), s, TargetState(replicas=4, ready=2), operator_namespace="aisre-system",
                   name="aisre-system/p")
    assert last.reason == P.BLAST_RADIUS


def test_a_drain_is_verified_when_the_moved_pods_controllers_are_ready_again() -> None:
    assert drain_node.replicas_ready({"spec": {"replicas": 2}, "status": {"readyReplicas": 2}})
    assert not drain_node.replicas_ready({"spec": {"replicas": 2}, "status": {"readyReplicas": 1}})
    assert not drain_node.replicas_ready({"spec": {"replicas": 1}, "status": {}})
    assert drain_node.replicas_ready(None)  # gone: nothing left to recover
    assert drain_node.replicas_ready({"spec": {"replicas": 0}, "status": {}})  # an old ReplicaSet scaled away


def test_node_failure_recommends_a_drain_not_a_cordon_alone() -> None:
    # a cordon alone leaves the failing pods on the node: it cannot remove the cause
    actions = advise(C.NODE_FAILURE, "Node/n1", "ns", [], ["e1"]).actions
    assert [a.type for a in actions] == [ActionType.DRAIN_NODE]
    assert all(a.target.namespace is None for a in actions)


def cluster_node(name, ready="True", labels=None, taints=None, unschedulable=False):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def placed(pod, **spec):
    return {**pod, "spec": spec}


def test_a_pod_pinned_to_the_failing_node_is_not_drained_into_pending() -> None:
    nodes = [cluster_node("n1", ready="False"), cluster_node("n2", labels={"zone": "b"}),
             cluster_node("n3", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])]
    free = placed(node_pod("web-1"))
    pinned = placed(node_pod("ingest-1"), nodeSelector={"kubernetes.io/hostname": "n1"})
    zoned = placed(node_pod("zoned-1"), affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}})
    gpu = placed(node_pod("train-1"), nodeSelector={"kubernetes.io/hostname": "n3"},
                 tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    evict, skipped = drain_node.evictable([free, pinned, zoned, gpu], nodes, "n1")
    assert [p["name"] for p in evict] == ["train-1", "web-1"]  # n3 takes the GPU pod: it tolerates the taint
    assert any("ingest-1" in s and "nodeSelector kubernetes.io/hostname=n1" in s for s in skipped)
    assert any("zoned-1" in s and "required node affinity" in s for s in skipped)
    node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    with pytest.raises(PreconditionFailed, match="repair the node"):
        drain_node.plan(node, act("drainNode", "Node"), "m", {"pods": [pinned, zoned], "nodes": nodes})
    # no other Ready, schedulable node at all: nothing can move
    lonely = [cluster_node("n1"), cluster_node("n2", unschedulable=True), cluster_node("n3", ready="Unknown")]
    assert drain_node.evictable([free], lonely, "n1")[0] == []
    # only finished pods on it: a drain would be a cordon that moves nothing
    with pytest.raises(PreconditionFailed, match="nothing to drain"):
        drain_node.plan(node, act("drainNode", "Node"), "m", {"pods": [node_pod("done", phase="Failed")], "nodes": nodes})


def test_a_drain_is_refused_when_none_of_the_pods_it_is_for_could_move() -> None:
    nodes = [cluster_node("n1", ready="False"), cluster_node("n2")]
    db = placed(node_pod("orders-db-0", "StatefulSet"), nodeSelector={"kubernetes.io/hostname": "n1"})
    db["metadata"]["ownerReferences"][0]["name"] = "orders-db"
    web = placed(node_pod("web-7d9f-abcde"))
    web["metadata"]["ownerReferences"][0]["name"] = "web-7d9f"
    web["metadata"]["labels"] = {"pod-template-hash": "7d9f"}
    assert drain_node.workload_of(web) == "Deployment/web" and drain_node.workload_of(db) == "StatefulSet/orders-db"
    node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    for_db = act("drainNode", "Node", workloads=["StatefulSet/orders-db"], namespace="shop")
    with pytest.raises(PreconditionFailed, match="would not help them"):
        drain_node.plan(node, for_db, "m", {"pods": [db, web], "nodes": nodes})  # web could move; orders-db cannot
    for_web = act("drainNode", "Node", workloads=["Deployment/web"], namespace="shop")
    plan = drain_node.plan(node, for_web, "m", {"pods": [db, web], "nodes": nodes})
    assert [p["name"] for p in plan.extra["evict"]] == ["web-7d9f-abcde"]
    # the recommendation names the workloads the evidence shows failing on the node
    on_node = finding("ContainerNotReady", owner="StatefulSet/orders-db", node="n1")
    elsewhere = finding("ContainerNotReady", owner="Deployment/api", node="n2")
    [drain] = advise(C.NODE_FAILURE, "Node/n1", "shop", [on_node, elsewhere], ["e1"]).actions
    assert drain.parameters == {"workloads": ["StatefulSet/orders-db"], "namespace": "shop"}


def test_node_affinity_expressions_and_tolerations_follow_the_scheduler() -> None:
    from aisre.remediation import placement

    node = cluster_node("n2", labels={"zone": "b", "cores": "16"})
    holds = [{"key": "zone", "operator": "NotIn", "values": ["a"]}, {"key": "cores", "operator": "Gt", "values": ["8"]},
             {"key": "spot", "operator": "DoesNotExist"}]
    assert placement.term_selects({"matchExpressions": holds}, node)
    assert not placement.term_selects({"matchExpressions": [{"key": "zone", "operator": "Exists"},
                                                            {"key": "cores", "operator": "Lt", "values": ["8"]}]}, node)
    assert placement.term_selects({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}, node)
    taint = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    assert placement.tolerates([{"key": "dedicated", "operator": "Equal", "value": "db"}], taint)
    assert placement.tolerates([{"operator": "Exists"}], taint)
    assert not placement.tolerates([{"key": "dedicated", "operator": "Equal", "value": "web"}], taint)
    assert not placement.tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], taint)
    soft = cluster_node("n4", taints=[{"key": "x", "effect": "PreferNoSchedule"}])
    assert placement.unfit(placed(node_pod("p")), soft) is None  # a preference does not keep a pod off


# ---------------------------------------------------------------- memory prefers what worked


def incident(uid: str, remediations: list[dict]) -> dict:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "ns"},
            "status": {"case": {"category": "BadConfigChange", "kind": "Deployment", "resource": "Deployment/web",
                                "concludedAt": "2026-11-20T10:00:00Z"}, "remediations": remediations}}


def test_the_memory_records_whether_each_action_cleared_the_fault() -> None:
    case = case_of_incident(incident("u1", [
        {"type": "rollback", "decision": "Execute", "result": "Succeeded", "assessment": {"cleared": False, "effect": "Improved"}},
        {"type": "restoreConfig", "decision": "Execute", "result": "Succeeded", "assessment": {"cleared": True, "effect": "Cleared"}},
        {"type": "scale", "decision": "Suggested", "result": "Skipped"}]))
    assert case is not None and case.cleared == (("rollback", False), ("restoreConfig", True))
    assert action_record(case) == [("rollback", False), ("restoreConfig", True)]
    older = Case(uid="u2", namespace="ns", name="u2", concluded_at=NOW, category="X",
                 actions=(("rollback", "Reverted"), ("deletePod", "Succeeded"), ("scale", "Running")))
    assert action_record(older) == [("rollback", False), ("deletePod", True)]


def rec(type_: str) -> dict:
    return {"id": type_, "type": type_, "target": {"kind": "Deployment", "name": "web"}, "reason": "catalog"}


def test_recommendations_prefer_what_cleared_similar_faults_bounded_and_explained() -> None:
    actions = [rec("rollback"), rec("restoreConfig")]
    assert prefer_proven(actions, []) == actions  # no memory: the catalog's order
    ordered = prefer_proven(actions, [(0.9, [("rollback", False), ("restoreConfig", True)]), (0.8, [("restoreConfig", True)])])
    assert [a["type"] for a in ordered] == ["restoreConfig", "rollback"]
    assert "cleared the fault in 2 of 2 similar past Incident(s)" in ordered[0]["reason"]
    assert "tried after the others" in ordered[1]["reason"]
    # not a new action, and weak matches do not count
    assert {a["type"] for a in ordered} == {"rollback", "restoreConfig"}
    assert prefer_proven(actions, [(0.1, [("restoreConfig", True)])]) == actions
    # bounded: only the most similar cases count
    many = [(0.5, [("rollback", True)])] * 5 + [(0.4, [("restoreConfig", True)])] * 20
    assert prefer_proven(actions, many)[0]["type"] == "rollback"
