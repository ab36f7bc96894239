"""Issue 19 on the real local control plane: verification that follows the workload's own
rollout (a StatefulSet's ordered update outlasting the policy's timeout is not a failure),
setResources sized from the observed peak with its effect assessed in the journal, a
change whose new pods fail judged "not better" and reverted, and drainNode on a KWOK node
of our own: the pods of a Deployment evicted through the Eviction API until a
PodDisruptionBudget refuses one, where the drain stops and says so (never forced)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from aisre.kube.reader import connect
from aisre.remediation.executor import Remediator
from conftest_helpers import deployment
from remediation_helpers import (EXECUTOR, action, apply, available, detected, get, install_chart, journal, kwok_node,
                                 policy, reapply_crds, signing_key, statefulset_rolled_out, wait)

DRAIN_EXECUTOR = "system:serviceaccount:aisre-system:aisre-executor-drain"
AUTO = [{"type": t, "mode": "auto"} for t in ("rollback", "setResources", "scale", "rolloutRestart")]


@pytest.fixture
def namespace(own_namespace: str) -> str:
    return own_namespace


@pytest.fixture(autouse=True)
def this_branch_crds(kubectl, crds) -> None:
    reapply_crds(kubectl)


@pytest.fixture(scope="module")
def chart(kubectl, crds) -> None:
    install_chart(kubectl)
    # drainNode is not in the chart's default actions: a release that enables it (and only it).
    install_chart(kubectl, "aisre-drain", "remediation.executor.serviceAccount=aisre-executor-drain",
                  "remediation.executor.actions={drainNode}", "remediation.approvals.enabled=false")


async def remediator_as(kubeconfig, kubectl, user: str, max_verify: float | None) -> Remediator:
    client, executor = connect(str(kubeconfig)), connect(str(kubeconfig))
    executor.headers["Impersonate-User"] = user
    return Remediator(client, executor, max_verify_seconds=max_verify, signing_key=signing_key(kubectl))


@pytest.fixture
async def remediator(kubeconfig, kubectl, chart) -> AsyncIterator[Remediator]:
    # No test cap on the window: the workload's own rollout decides how long it is.
    r = await remediator_as(kubeconfig, kubectl, EXECUTOR, None)
    yield r
    await r.client.aclose()
    await r.executor.aclose()


async def test_a_statefulsets_ordered_rollback_outlasting_the_policy_timeout_is_not_failed(kubectl, namespace, remediator) -> None:
    """The policy's timeout (1 s) is far shorter than three pods replaced one after another,
    each available for minReadySeconds before the next:
    the window is the StatefulSet's own, so the rollback completes, is kept and assessed."""
    manifest = deployment("db", replicas=3)
    manifest["kind"] = "StatefulSet"
    manifest["spec"]["serviceName"] = "db"
    manifest["spec"]["minReadySeconds"] = 2  # each pod available 2 s before the next is replaced
    apply(kubectl, namespace, manifest)
    wait(lambda: statefulset_rolled_out(kubectl, namespace, "db", 3), timeout=90, what="statefulset ready")
    kubectl("set", "image", "statefulset/db", "db=registry.local/db:v2-typo", "-n", namespace)
    wait(lambda: statefulset_rolled_out(kubectl, namespace, "db", 3), timeout=120, what="rollout of v2")
    policy(kubectl, namespace, actions=AUTO, verification={"timeout": "1s", "revertOnFailure": True})
    detected(kubectl, namespace, "inc", {"kind": "StatefulSet", "name": "db"},
             [action("rollback-1", "rollback", "StatefulSet", "db")])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["rollback-1"]
    assert entry["result"] == "Succeeded", entry
    assessment = entry["assessment"]
    assert assessment["cleared"] is True and assessment["effect"] == "Cleared", assessment
    assert assessment["timeToClearSeconds"] >= 4  # far longer than the policy's timeout, and not a failure
    assert get(kubectl, "statefulset", "db", namespace)["spec"]["template"]["spec"]["containers"][0]["image"] \
        == "registry.local/db:1.0"


async def test_set_resources_from_the_peak_is_assessed(kubectl, namespace, remediator, monkeypatch) -> None:
    from aisre.remediation import verification

    monkeypatch.setattr(verification, "SOAK_SECONDS", 2.0)  # a short look for new OOM kills after the rollout
    manifest = deployment("web", replicas=2)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "128Mi"}
    apply(kubectl, namespace, manifest)
    apply(kubectl, namespace, deployment("api", replicas=1))  # a bystander, healthy throughout
    wait(lambda: available(kubectl, namespace, "web", 2) and available(kubectl, namespace, "api", 1), what="deployments")
    policy(kubectl, namespace, actions=AUTO, bounds={"resources": {"maxMemoryIncreasePercent": 100, "maxMemory": "1Gi"}})
    # the metrics agent saw a 200 MiB working set: × 1.3 headroom = 260 MiB, down to the 16 MiB step
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("res-1", "setResources", "Deployment", "web", container="web", memoryPeakBytes=200 * 2**20)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["res-1"]
    assert entry["result"] == "Succeeded", entry
    limits = get(kubectl, "deployment", "web", namespace)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "256Mi"
    assert entry["assessment"]["cleared"] is True and not entry["assessment"].get("sideEffects"), entry["assessment"]
    assert "no new OOM kill" in entry["detail"]


async def test_a_change_whose_new_pods_cannot_run_is_reverted_after_the_workloads_deadline(kubectl, namespace,
                                                                                          remediator) -> None:
    """A memory limit a LimitRange forbids: the new pods are never created, the old one keeps
    serving (maxUnavailable 0). The Deployment's own progress deadline (10 s) passes and it
    reports ProgressDeadlineExceeded; nothing got better, so the change is reverted."""
    manifest = deployment("web", replicas=1)
    manifest["spec"]["progressDeadlineSeconds"] = 10
    manifest["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "128Mi"}
    apply(kubectl, namespace, manifest)
    wait(lambda: available(kubectl, namespace, "web", 1), what="deployment available")
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "mem"},
                               "spec": {"limits": [{"type": "Container", "max": {"memory": "200Mi"}}]}})
    policy(kubectl, namespace, actions=AUTO, verification={"timeout": "1s", "revertOnFailure": True},
           bounds={"resources": {"maxMemoryIncreasePercent": 100}})
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("res-1", "setResources", "Deployment", "web", container="web", memoryIncreasePercent=100)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["res-1"]
    assert entry["result"] == "Reverted" and "Unchanged" in entry["detail"], entry
    assert "rollout Stalled" in entry["detail"]
    assert entry["assessment"]["effect"] == "Unchanged" and entry["assessment"]["cleared"] is False
    limits = get(kubectl, "deployment", "web", namespace)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "128Mi"


# ---------------------------------------------------------------- drainNode


def pinned(name: str, node: str, replicas: int) -> dict:
    manifest = deployment(name, replicas=replicas)
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {"aisre.dev/drain-test": node}
    pod_spec["tolerations"] = [{"key": "aisre.dev/test", "operator": "Exists", "effect": "NoSchedule"}]
    return manifest


def spare_node(kubectl, node: str, runs_pods: bool = True) -> str:
    """A second Ready node the pinned pods' selector admits: where a drain can move them.
    ``runs_pods=False``: Ready, but no kubelet (nor KWOK) starts what lands on it, so the
    replacements never become Ready (a budget's count stays where it is)."""
    spare = f"{node}-spare"
    if runs_pods:
        kwok_node(kubectl, spare, **{"aisre.dev/drain-test": node})
    else:
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spare, "labels": {"aisre.dev/drain-test": node}},
            "spec": {"taints": [{"key": "aisre.dev/test", "effect": "NoSchedule"}]}}))
        kubectl("patch", "node", spare, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Test", "message": "spare"}]}}))
    wait(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                     for c in (get(kubectl, "node", spare).get("status") or {}).get("conditions") or []),
         what="the spare node Ready")
    return spare


def pods_on(kubectl, namespace: str, node: str) -> list[dict]:
    items = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json", "--field-selector",
                               f"spec.nodeName={node}").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def test_drain_evicts_until_a_pod_disruption_budget_refuses_and_stops(kubectl, kubeconfig, namespace, chart) -> None:
    node = f"aisre-drain-{namespace[-8:]}"
    kwok_node(kubectl, node, **{"aisre.dev/drain-test": node})
    drainer = await remediator_as(kubeconfig, kubectl, DRAIN_EXECUTOR, 20)
    drainer.operator_namespace = namespace  # this test's namespace plays the operator's: only its policies govern nodes
    try:
        apply(kubectl, namespace, pinned("web", node, 3))
        wait(lambda: available(kubectl, namespace, "web", 3), timeout=90, what="pods on the node")
        # a bare pod on the node: nothing would recreate it, so the drain leaves it
        bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
                "spec": {**pinned("x", node, 1)["spec"]["template"]["spec"], "nodeName": node}}
        apply(kubectl, namespace, bare)
        # two of three must stay available: one eviction is allowed, the next is refused
        apply(kubectl, namespace, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                                   "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
        wait(lambda: (get(kubectl, "pdb", "web", namespace).get("status") or {}).get("disruptionsAllowed") == 1,
             what="the budget allows one disruption")
        spare_node(kubectl, node, runs_pods=False)  # a moved pod never becomes Ready: the budget stays spent
        policy(kubectl, namespace, targets={"kinds": ["Node"]}, actions=[{"type": "drainNode", "mode": "auto"}],
               verification={"timeout": "10s", "revertOnFailure": True})
        detected(kubectl, namespace, "inc", {"kind": "Node", "name": node}, [action("drain-1", "drainNode", "Node", node)])
        await drainer.remediate(namespace, "inc")
        entry = journal(kubectl, namespace, "inc")["drain-1"]
        assert entry["decision"] == "Execute" and entry["result"] == "Failed", entry
        assert "DisruptionBudget" in entry["detail"] and "not forced" in entry["detail"], entry["detail"]
        assert "bare" in entry["detail"]  # named among the pods left alone (no controller)
        assert get(kubectl, "node", node)["spec"].get("unschedulable") is True  # cordoned, and left so
        left = {p["metadata"]["name"] for p in pods_on(kubectl, namespace, node)}
        assert "bare" in left and len([n for n in left if n.startswith("web-")]) == 2, left
        assert entry["assessment"]["cleared"] is False
    finally:
        kubectl("delete", "node", node, f"{node}-spare", "--wait=false", check=False)
        await drainer.client.aclose()
        await drainer.executor.aclose()


async def test_drain_of_a_node_without_budgets_moves_every_controlled_pod(kubectl, kubeconfig, namespace, chart) -> None:
    node = f"aisre-drain2-{namespace[-8:]}"
    kwok_node(kubectl, node, **{"aisre.dev/drain-test": node})
    drainer = await remediator_as(kubeconfig, kubectl, DRAIN_EXECUTOR, 20)
    drainer.operator_namespace = namespace
    try:
        apply(kubectl, namespace, pinned("web", node, 2))
        wait(lambda: available(kubectl, namespace, "web", 2), timeout=90, what="pods on the node")
        policy(kubectl, namespace, targets={"kinds": ["Node"]}, actions=[{"type": "drainNode", "mode": "auto"}])
        # no other node their selector admits: evicted, they would only be Pending, so no drain
        detected(kubectl, namespace, "stuck", {"kind": "Node", "name": node}, [action("drain-0", "drainNode", "Node", node)])
        await drainer.remediate(namespace, "stuck")
        refused = journal(kubectl, namespace, "stuck")["drain-0"]
        assert refused["decision"] == "Denied" and "could run on another node" in refused["reason"], refused
        assert not get(kubectl, "node", node)["spec"].get("unschedulable")
        assert len(pods_on(kubectl, namespace, node)) == 2
        spare = spare_node(kubectl, node)
        detected(kubectl, namespace, "inc", {"kind": "Node", "name": node}, [action("drain-1", "drainNode", "Node", node)])
        await drainer.remediate(namespace, "inc")
        entry = journal(kubectl, namespace, "inc")["drain-1"]
        assert entry["result"] == "Succeeded", entry
        assert "2 pod(s) evicted and gone" in entry["detail"]
        # the replacements run on the spare node, never on the cordoned one
        assert not [p for p in pods_on(kubectl, namespace, node) if p["metadata"]["name"].startswith("web-")]
        wait(lambda: len(pods_on(kubectl, namespace, spare)) == 2, timeout=60, what="replacements on the spare node")
        assert entry["assessment"]["cleared"] is True
    finally:
        kubectl("delete", "node", node, f"{node}-spare", "--wait=false", check=False)
        await drainer.client.aclose()
        await drainer.executor.aclose()
