"""Remediation on the real local control plane: each action end to end (the
controller-manager and KWOK make the rollouts visible), dry run, verification failure
with revert, refusals recorded, approval mode, and least privilege (a verb the chart does
not enable fails closed). The Remediator runs in the test's event loop here; the Kopf
wiring and the crash test are in test_remediation_operator.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from aisre.kube.reader import connect
from aisre.remediation.executor import Remediator
from conftest_helpers import OWN_PREFIX, deployment, temporary_namespace
from remediation_helpers import reapply_crds, grant_approver, EXECUTOR, action, apply, available, detected, get, install_chart, journal, kwok_node, policy, signing_key, statefulset_rolled_out, wait


@pytest.fixture
def namespace(own_namespace: str) -> str:
    """Here the test (or its own operator) remediates: the session operator stays out."""
    return own_namespace


@pytest.fixture(autouse=True)
def this_branch_crds(kubectl, crds) -> None:
    reapply_crds(kubectl)

@pytest.fixture(scope="module")
def chart(kubectl, crds) -> None:
    install_chart(kubectl)
    # A narrow executor: only the node actions are enabled (no patch of workloads, no pod delete).
    install_chart(kubectl, "aisre-narrow", "remediation.executor.serviceAccount=aisre-executor-narrow",
                  "remediation.executor.actions={cordonNode,uncordonNode}", "remediation.approvals.enabled=false")


@pytest.fixture
async def remediator(kubeconfig, kubectl, chart) -> AsyncIterator[Remediator]:
    client, executor = connect(str(kubeconfig)), connect(str(kubeconfig))
    executor.headers["Impersonate-User"] = EXECUTOR
    yield Remediator(client, executor, max_verify_seconds=30, signing_key=signing_key(kubectl))
    await client.aclose()
    await executor.aclose()


def healthy_deployment(kubectl, namespace: str, name: str = "web", replicas: int = 2, **extra) -> None:
    manifest = deployment(name, replicas=replicas)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "64Mi"}
    for key, value in extra.items():
        manifest["spec"]["template"]["spec"][key] = value
    apply(kubectl, namespace, manifest)
    wait(lambda: available(kubectl, namespace, name, replicas), what="deployment available")


AUTO = [{"type": t, "mode": "auto"} for t in ("deletePod", "rolloutRestart", "scale", "rollback", "setResources")]


async def test_scale_executes_and_verifies(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    policy(kubectl, namespace, actions=AUTO)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert (entry["decision"], entry["result"]) == ("Execute", "Succeeded"), entry
    assert entry["startedAt"] and entry["finishedAt"] and entry["policy"] == f"{namespace}/p"
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 3
    assert available(kubectl, namespace, "web", 3)
    # settled: running again changes nothing
    generation = get(kubectl, "deployment", "web", namespace)["metadata"]["generation"]
    await remediator.remediate(namespace, "inc")
    assert get(kubectl, "deployment", "web", namespace)["metadata"]["generation"] == generation
    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "RemediationStarted" in events and "RemediationSucceeded" in events
    status = get(kubectl, "remediationpolicy", "p", namespace)["status"]
    assert status["lastAction"]["id"] == "scale-1" and status["decisionsTotal"] >= 1 and status["executedLastHour"] == 1


async def test_rollout_restart_makes_new_pods(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    before = {p["metadata"]["uid"] for p in json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]}
    policy(kubectl, namespace, actions=AUTO)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("restart-1", "rolloutRestart", "Deployment", "web")])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["restart-1"]
    assert entry["result"] == "Succeeded", entry
    template = get(kubectl, "deployment", "web", namespace)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)["items"]
    live = {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    assert live and not (live & before)


async def test_rollback_restores_previous_template(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    kubectl("set", "image", "deployment/web", "web=registry.local/web:v2-typo", "-n", namespace)
    wait(lambda: available(kubectl, namespace, "web", 2), what="rollout of v2")
    policy(kubectl, namespace, actions=AUTO)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("rollback-1", "rollback", "Deployment", "web")])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["rollback-1"]
    assert entry["result"] == "Succeeded", entry
    d = get(kubectl, "deployment", "web", namespace)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1.0"
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert "was revision 2" in entry["detail"]


async def test_rollback_of_a_statefulset_follows_its_controller_revisions(kubectl, namespace, remediator) -> None:
    manifest = deployment("db", replicas=2)
    manifest["kind"] = "StatefulSet"
    manifest["spec"]["serviceName"] = "db"
    apply(kubectl, namespace, manifest)
    wait(lambda: statefulset_rolled_out(kubectl, namespace, "db", 2), what="statefulset ready")
    kubectl("set", "image", "statefulset/db", "db=registry.local/db:v2-typo", "-n", namespace)
    wait(lambda: statefulset_rolled_out(kubectl, namespace, "db", 2), timeout=90, what="rollout of v2")
    policy(kubectl, namespace, actions=AUTO)
    detected(kubectl, namespace, "inc", {"kind": "StatefulSet", "name": "db"}, [action("rollback-1", "rollback", "StatefulSet", "db")])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["rollback-1"]
    assert entry["result"] == "Succeeded", entry
    s = get(kubectl, "statefulset", "db", namespace)
    assert s["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/db:1.0"
    assert "was revision 2" in entry["detail"] and "template of revision 1" in entry["detail"]


async def test_set_resources_raises_the_limit(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    policy(kubectl, namespace, actions=AUTO, bounds={"resources": {"maxMemoryIncreasePercent": 50}})
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("res-1", "setResources", "Deployment", "web", container="web", memoryIncreasePercent=50),
              action("res-2", "setResources", "Deployment", "web", container="web", memoryIncreasePercent=80)])
    await remediator.remediate(namespace, "inc")
    entries = journal(kubectl, namespace, "inc")
    assert entries["res-1"]["result"] == "Succeeded", entries["res-1"]
    assert (entries["res-2"]["decision"], entries["res-2"]["reason"].split(":")[0]) == ("Denied", "OutOfBounds")
    limits = get(kubectl, "deployment", "web", namespace)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "96Mi"


async def test_delete_pod_is_replaced(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    pods = [p for p in json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)["items"]
            if not p["metadata"].get("deletionTimestamp")]
    victim = pods[0]["metadata"]["name"]
    policy(kubectl, namespace, actions=AUTO)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("del-1", "deletePod", "Pod", victim)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["del-1"]
    assert entry["result"] == "Succeeded", entry
    assert f"(uid {pods[0]['metadata']['uid']})" in entry["detail"]
    assert kubectl("get", "pod", victim, "-n", namespace, check=False).returncode != 0
    assert available(kubectl, namespace, "web", 2)


async def test_cordon_and_uncordon_a_node(kubectl, namespace, remediator) -> None:
    node = f"aisre-fake-{namespace[-8:]}"
    kwok_node(kubectl, node)
    # Node-level Incidents live in the operator's namespace, and only its policies govern nodes:
    # this test's namespace plays that part.
    remediator.operator_namespace = namespace
    try:
        policy(kubectl, namespace, targets={"kinds": ["Node"]},
               actions=[{"type": "cordonNode", "mode": "auto"}, {"type": "uncordonNode", "mode": "auto"}])
        for incident, type_, unschedulable in (("inc", "cordonNode", True), ("inc2", "uncordonNode", False)):
            detected(kubectl, namespace, incident, {"kind": "Node", "name": node}, [action(type_, type_, "Node", node)])
            await remediator.remediate(namespace, incident)
            assert journal(kubectl, namespace, incident)[type_]["result"] == "Succeeded"
            assert bool(get(kubectl, "node", node)["spec"].get("unschedulable")) is unschedulable
    finally:
        kubectl("delete", "node", node, "--wait=false", check=False)


async def test_dry_run_records_the_diff_and_changes_nothing(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "dryRun"}])
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=4)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert entry["decision"] == "DryRun" and "/spec/replicas: 2 -> 4" in entry["detail"], entry
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 2


async def test_verification_failure_reverts(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace, replicas=1)
    # A quota of one pod: the scale-up is never available, so verification fails and it is reverted.
    policy(kubectl, namespace, actions=AUTO, verification={"timeout": "5s", "revertOnFailure": True})
    kubectl("create", "quota", "pods", "--hard=pods=1", "-n", namespace)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert entry["result"] == "Reverted" and "VerificationFailed" in entry["detail"], entry
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 1


async def test_two_incidents_at_once_respect_max_concurrent(kubectl, namespace, remediator, monkeypatch) -> None:
    """Two Incidents remediated at the same moment under a policy allowing one action at a
    time: one executes, the other is refused TooManyConcurrent (decisions are serialised
    with the claim, so both cannot see room for one more)."""
    healthy_deployment(kubectl, namespace, "web")
    healthy_deployment(kubectl, namespace, "api")
    policy(kubectl, namespace, actions=AUTO,
           limits={"actionsPerHour": 100, "maxConcurrent": 1, "cooldown": "1s", "minHealthyPercent": 0})
    detected(kubectl, namespace, "inc-web", {"kind": "Deployment", "name": "web"},
             [action("restart-web", "rolloutRestart", "Deployment", "web")])
    detected(kubectl, namespace, "inc-api", {"kind": "Deployment", "name": "api"},
             [action("restart-api", "rolloutRestart", "Deployment", "api")])
    monkeypatch.setenv("AISRE_TEST_PAUSE_AFTER_CLAIM", "2")  # the first stays Running a while
    await asyncio.gather(remediator.remediate(namespace, "inc-web"), remediator.remediate(namespace, "inc-api"))
    entries = [journal(kubectl, namespace, "inc-web")["restart-web"], journal(kubectl, namespace, "inc-api")["restart-api"]]
    decisions = sorted((e["decision"], e["reason"].split(":")[0]) for e in entries)
    assert decisions == [("Denied", "TooManyConcurrent"), ("Execute", decisions[1][1])], entries
    assert [e["result"] for e in entries if e["decision"] == "Execute"] == ["Succeeded"], entries


async def test_a_policy_in_the_operators_namespace_governs_the_namespaces_it_names(kubectl, namespace, remediator) -> None:
    """A central policy (operator's namespace, targets.namespaces) governs a team's namespace;
    the same policy in any other namespace does not."""
    healthy_deployment(kubectl, namespace)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    with temporary_namespace(kubectl, OWN_PREFIX) as central, temporary_namespace(kubectl, OWN_PREFIX) as elsewhere:
        policy(kubectl, elsewhere, targets={"namespaces": [namespace]}, actions=AUTO)
        remediator.operator_namespace = central
        await remediator.remediate(namespace, "inc")
        assert journal(kubectl, namespace, "inc")["scale-1"]["reason"].startswith("NoMatchingPolicy")
        policy(kubectl, central, targets={"namespaces": [namespace]}, actions=[{"type": "scale"}], mode="auto")
        await remediator.remediate(namespace, "inc")
        entry = journal(kubectl, namespace, "inc")["scale-1"]
        assert (entry["decision"], entry["result"], entry["policy"]) == ("Execute", "Succeeded", f"{central}/p"), entry
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 3


async def test_refusals_are_recorded(kubectl, namespace, remediator) -> None:
    healthy_deployment(kubectl, namespace)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3), action("rb-1", "rollback", "Deployment", "web")])
    await remediator.remediate(namespace, "inc")  # no policy yet
    entries = journal(kubectl, namespace, "inc")
    assert {(e["decision"], e["reason"].split(":")[0]) for e in entries.values()} == {("Observed", "NoMatchingPolicy")}
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "auto"}],
           bounds={"scale": {"minReplicas": 1, "maxReplicas": 2}})
    await remediator.remediate(namespace, "inc")
    entries = journal(kubectl, namespace, "inc")
    assert entries["scale-1"]["reason"].startswith("OutOfBounds") and entries["scale-1"]["decision"] == "Denied"
    assert entries["rb-1"]["reason"].startswith("ActionNotAllowed")
    kubectl("label", "deployment", "web", "-n", namespace, "kustomize.toolkit.fluxcd.io/name=apps")
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "auto"}])
    await remediator.remediate(namespace, "inc")
    assert journal(kubectl, namespace, "inc")["scale-1"]["decision"] == "Suggested"
    assert journal(kubectl, namespace, "inc")["scale-1"]["reason"].startswith("GitOpsManaged")
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 2


async def test_approve_mode_waits_then_executes(kubectl, namespace, remediator, user_kubeconfig) -> None:
    healthy_deployment(kubectl, namespace)
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev"]})
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert (entry["decision"], entry["result"]) == ("AwaitingApproval", "Pending"), entry
    grant_approver(kubectl, namespace)
    kubectl("patch", "incident", "inc", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"approvals": [{"actionId": "scale-1", "approvedBy": "aisre-dev",
                                                "revision": entry["revision"]}]}}),
            kubeconfig=user_kubeconfig)
    with capture_logs() as logs:
        await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert (entry["decision"], entry["result"], entry["approvedBy"]) == ("Execute", "Succeeded", "aisre-dev"), entry
    # the audit trail: the execution and its verification, with the approver's identity
    trail = [log["audit"] for log in logs if log.get("event") == "audit"]
    assert [a["decision"] for a in trail] == ["RemediationStarted", "RemediationSucceeded"], trail
    assert all(a["object"]["name"] == "inc" and a["detail"]["approvedBy"] == "aisre-dev" for a in trail)


async def test_a_verb_outside_the_enabled_set_fails_closed(kubectl, namespace, kubeconfig, chart) -> None:
    healthy_deployment(kubectl, namespace)
    client, executor = connect(str(kubeconfig)), connect(str(kubeconfig))
    executor.headers["Impersonate-User"] = "system:serviceaccount:aisre-system:aisre-executor-narrow"
    narrow = Remediator(client, executor, max_verify_seconds=20, signing_key=signing_key(kubectl))
    try:
        policy(kubectl, namespace, actions=AUTO)
        detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
                 [action("restart-1", "rolloutRestart", "Deployment", "web")])
        pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)["items"]
        detected(kubectl, namespace, "inc2", {"kind": "Deployment", "name": "web"},
                 [action("del-1", "deletePod", "Pod", pods[0]["metadata"]["name"])])
        generation = get(kubectl, "deployment", "web", namespace)["metadata"]["generation"]
        await narrow.remediate(namespace, "inc")
        await narrow.remediate(namespace, "inc2")
    finally:
        await client.aclose()
        await executor.aclose()
    for inc, id_ in (("inc", "restart-1"), ("inc2", "del-1")):
        entry = journal(kubectl, namespace, inc)[id_]
        assert entry["result"] == "Failed" and entry["detail"].startswith("ExecutorForbidden"), entry
        assert "aisre-executor-narrow" in entry["detail"]
    assert get(kubectl, "deployment", "web", namespace)["metadata"]["generation"] == generation
    assert kubectl("get", "pod", pods[0]["metadata"]["name"], "-n", namespace, check=False).returncode == 0


async def test_policies_stay_gitops_friendly(kubectl, namespace, remediator) -> None:
    """The operator writes only the policy's status: applying the same YAML again after
    decisions were recorded changes nothing."""
    healthy_deployment(kubectl, namespace)
    manifest = {"apiVersion": "aisre.dev/v1alpha1", "kind": "RemediationPolicy", "metadata": {"name": "p"},
                "spec": {"actions": [{"type": "scale", "mode": "suggest"}]}}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    await remediator.remediate(namespace, "inc")
    assert journal(kubectl, namespace, "inc")["scale-1"]["decision"] == "Suggested"
    again = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    assert "unchanged" in again.stdout
    obj = get(kubectl, "remediationpolicy", "p", namespace)
    assert obj["metadata"]["generation"] == 1 and obj["status"]["lastAction"]["decision"] == "Suggested"
