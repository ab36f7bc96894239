"""Policies cannot grant more than their author has; approvals mean what they say
(issue 13, second and third parts)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from attack_helpers import (
    OPERATOR_NS,
    SECURITY_PREFIX,
    USER,
    aisre_object,
    as_user,
    detected,
    grant_namespace_user,
    journal,
    refused_by_admission,
    replicas,
)
from conftest_helpers import deployment, temporary_namespace
from remediation_helpers import action, apply, available, get, kwok_node, policy, wait

APPROVE_SCALE = [{"type": "scale", "mode": "approve"}]


def rpol(name: str, **spec) -> str:
    return aisre_object("RemediationPolicy", name, spec)


@pytest.fixture
def aisre_only_ns(kubectl, boundary) -> Iterator[str]:
    """A namespace where the user may write aisre's objects but not the workloads."""
    with temporary_namespace(kubectl, SECURITY_PREFIX) as name:
        grant_namespace_user(kubectl, name, workloads=False)
        yield name


def web(kubectl, namespace: str, count: int = 2) -> None:
    apply(kubectl, namespace, deployment("web", replicas=count))
    wait(lambda: available(kubectl, namespace, "web", count), what="deployment available")


# ---------------------------------------------------------------- policies


def test_a_user_cannot_grant_aisre_node_actions(kubectl, user_kubeconfig, user_ns) -> None:
    result = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=rpol(
        "nodes", mode="auto", targets={"kinds": ["Node"]}, actions=[{"type": "cordonNode"}]))
    assert refused_by_admission(result, "aisre-policy-authority"), result.stderr
    assert "may not patch nodes" in result.stderr


def test_a_user_cannot_have_aisre_act_in_another_namespace(kubectl, user_kubeconfig, user_ns, victim_ns) -> None:
    result = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=rpol(
        "reach", mode="auto", targets={"namespaces": [user_ns, victim_ns]}, actions=[{"type": "rollback"}]))
    assert refused_by_admission(result, "aisre-policy-authority"), result.stderr


def test_a_user_without_workload_rights_cannot_enable_auto_or_approve(kubectl, user_kubeconfig, aisre_only_ns) -> None:
    for mode in ("auto", "approve"):
        result = as_user(kubectl, user_kubeconfig, "apply", "-n", aisre_only_ns, "-f", "-", input=rpol(
            "p", mode=mode, actions=[{"type": "scale"}], approvers={"users": [USER]}))
        assert refused_by_admission(result, "aisre-policy-authority"), (mode, result.stderr)
    # what does not act is theirs to write
    ok = as_user(kubectl, user_kubeconfig, "apply", "-n", aisre_only_ns, "-f", "-",
                 input=rpol("p", mode="suggest", actions=[{"type": "scale"}]))
    assert ok.returncode == 0, ok.stderr


def test_escalating_an_existing_policy_is_refused(kubectl, user_kubeconfig, aisre_only_ns) -> None:
    kubectl("apply", "-n", aisre_only_ns, "-f", "-", input=rpol("p", mode="auto", actions=[{"type": "scale"}, {"type": "rollback", "mode": "observe"}]))
    wider = as_user(kubectl, user_kubeconfig, "patch", "remediationpolicy", "p", "-n", aisre_only_ns, "--type=json", "-p",
                    json.dumps([{"op": "replace", "path": "/spec/actions/1/mode", "value": "auto"}]))
    assert refused_by_admission(wider, "aisre-policy-authority"), wider.stderr
    # pausing what an admin enabled grants nothing, and is admitted
    pause = as_user(kubectl, user_kubeconfig, "patch", "remediationpolicy", "p", "-n", aisre_only_ns, "--type=merge",
                    "-p", '{"spec": {"paused": true}}')
    assert pause.returncode == 0, pause.stderr


def runbook(name: str, **spec) -> str:
    return aisre_object("Runbook", name, {"title": "t", "match": {"kinds": ["Deployment"]}, "steps": ["s"], **spec})


def test_a_runbook_cannot_propose_what_its_author_may_not_do(kubectl, user_kubeconfig, aisre_only_ns, user_ns) -> None:
    """A policy in auto mode runs what a matching runbook proposes: a runbook's actions need
    its author's own rights, like an acting policy's, and adding them later is checked too."""
    for proposed in ("scale", "rollback", "deletePod", "cordonNode"):
        result = as_user(kubectl, user_kubeconfig, "apply", "-n", aisre_only_ns, "-f", "-",
                         input=runbook("rb", actions=[{"type": proposed}]))
        assert refused_by_admission(result, "aisre-policy-authority"), (proposed, result.stderr)
    # steps alone grant nothing, and are theirs to write
    ok = as_user(kubectl, user_kubeconfig, "apply", "-n", aisre_only_ns, "-f", "-", input=runbook("rb"))
    assert ok.returncode == 0, ok.stderr
    added = as_user(kubectl, user_kubeconfig, "patch", "runbook", "rb", "-n", aisre_only_ns, "--type=merge", "-p",
                    json.dumps({"spec": {"actions": [{"type": "rollback"}]}}))
    assert refused_by_admission(added, "aisre-policy-authority"), added.stderr
    # where they may patch workloads themselves, proposing a rollback is theirs; a node is not
    own = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=runbook("rb", actions=[{"type": "rollback"}]))
    assert own.returncode == 0, own.stderr
    node = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=runbook("n", actions=[{"type": "cordonNode"}]))
    assert refused_by_admission(node, "aisre-policy-authority"), node.stderr


async def test_a_namespaces_policy_never_governs_a_node(kubectl, user_ns, remediator, key) -> None:
    """A policy in a namespace (written by someone who could) with cordonNode in auto mode
    and a signed cordon recommendation: the node is not cordoned."""
    node = f"aisre-sec-{user_ns[-8:]}"
    kwok_node(kubectl, node)
    try:
        policy(kubectl, user_ns, targets={"kinds": ["Node"]}, actions=[{"type": "cordonNode", "mode": "auto"}],
               limits={"minHealthyPercent": 0, "cooldown": "1s"})
        detected(kubectl, user_ns, "inc", {"kind": "Node", "name": node}, [action("cordon-1", "cordonNode", "Node", node)],
                 key=key)
        await remediator.remediate(user_ns, "inc")
        entry = journal(kubectl, user_ns, "inc")["cordon-1"]
        assert entry["decision"] != "Execute", entry
        assert not get(kubectl, "node", node)["spec"].get("unschedulable")
    finally:
        kubectl("delete", "node", node, "--wait=false", check=False)


async def test_a_namespaces_policy_cannot_switch_off_the_blast_radius(kubectl, user_ns, remediator, key) -> None:
    """minHealthyPercent: 0 in a namespace's policy does not let aisre delete the only
    healthy pod of a Deployment: the floor holds."""
    web(kubectl, user_ns, 1)
    pod = json.loads(kubectl("get", "pods", "-n", user_ns, "-o", "json").stdout)["items"][0]["metadata"]["name"]
    policy(kubectl, user_ns, actions=[{"type": "deletePod", "mode": "auto"}], limits={"minHealthyPercent": 0, "cooldown": "1s"})
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [action("del-1", "deletePod", "Pod", pod)], key=key)
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["del-1"]
    assert (entry["decision"], entry["reason"].split(":")[0]) == ("Denied", "BlastRadius"), entry
    assert kubectl("get", "pod", pod, "-n", user_ns, check=False).returncode == 0


# ---------------------------------------------------------------- approvals


def approve_as_user(kubectl, user_kubeconfig, namespace: str, entry: dict, **extra) -> object:
    approval = {"actionId": entry["id"], "approvedBy": USER, **({"revision": entry["revision"]} if "revision" in entry else {}),
                **extra}
    return as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", namespace, "--type=merge", "-p",
                   json.dumps({"spec": {"approvals": [approval]}}))


async def pending(kubectl, namespace: str, remediator, key, approvers: dict) -> dict:
    """A scale awaiting approval, as the operator journals it."""
    web(kubectl, namespace)
    policy(kubectl, namespace, actions=APPROVE_SCALE, approvers=approvers)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    await remediator.remediate(namespace, "inc")
    entry = journal(kubectl, namespace, "inc")["scale-1"]
    assert entry["decision"] == "AwaitingApproval" and entry["revision"], entry
    return entry


def test_an_approval_in_someone_elses_name_is_refused(kubectl, user_kubeconfig, user_ns) -> None:
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [])
    policy(kubectl, user_ns, actions=APPROVE_SCALE, approvers={"users": [USER, "alice"]})
    result = as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", user_ns, "--type=merge", "-p",
                     json.dumps({"spec": {"approvals": [{"actionId": "scale-1", "approvedBy": "alice"}]}}))
    assert refused_by_admission(result, "aisre-approval-identity"), result.stderr


def test_feedback_in_someone_elses_name_is_refused(kubectl, user_kubeconfig, user_ns) -> None:
    """A verdict on a root cause feeds memory and the confirmed-share metric: it must be its
    author's. Forged, refused; through `aisre feedback`, recorded as the user."""
    import subprocess
    import sys
    from pathlib import Path

    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [])
    forged = as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", user_ns, "--type=merge", "-p",
                     json.dumps({"spec": {"feedback": {"verdict": "wrong", "category": "BadImage", "by": "alice"}}}))
    assert refused_by_admission(forged, "aisre-approval-identity"), forged.stderr
    aisre = Path(sys.executable).parent / "aisre"
    done = subprocess.run([aisre, "feedback", "incident/inc", "-n", user_ns, "--wrong", "--category", "BadImage",
                           "--resource", "Deployment/web", "--kubeconfig", str(user_kubeconfig)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    feedback = get(kubectl, "incident", "inc", user_ns)["spec"]["feedback"]
    assert feedback == {"verdict": "wrong", "category": "BadImage", "resource": {"kind": "Deployment", "name": "web"},
                        "by": USER, "comment": ""}
    # someone else's verdict stays theirs: rewriting it under their name is refused too
    rewrite = as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", user_ns, "--type=merge", "-p",
                      json.dumps({"spec": {"feedback": {"verdict": "correct", "by": "alice", "category": None, "resource": None}}}))
    assert refused_by_admission(rewrite, "aisre-approval-identity"), rewrite.stderr


async def test_an_approval_claiming_a_group_one_is_not_in_is_refused(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    entry = await pending(kubectl, user_ns, remediator, key, {"users": [USER], "groups": ["sre-leads"]})
    result = approve_as_user(kubectl, user_kubeconfig, user_ns, entry, groups=["sre-leads"])
    assert refused_by_admission(result, "aisre-approval-identity"), result.stderr


async def test_approvers_of_the_operators_policies_are_checked_too(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """The namespace has no policy of its own; a policy in the operator's namespace governs
    it and names alice alone: the user's approval is refused."""
    name = f"central-{user_ns[-8:]}"
    policy(kubectl, OPERATOR_NS, name, targets={"namespaces": [user_ns]}, actions=APPROVE_SCALE, approvers={"users": ["alice"]})
    try:
        remediator_central = remediator
        web(kubectl, user_ns)
        detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
                 [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
        await remediator_central.remediate(user_ns, "inc")
        entry = journal(kubectl, user_ns, "inc")["scale-1"]
        assert entry["decision"] == "AwaitingApproval", entry
        result = approve_as_user(kubectl, user_kubeconfig, user_ns, entry)
        assert refused_by_admission(result, "aisre-approval-approvers"), result.stderr
        assert f"RemediationPolicy {name}" in result.stderr
    finally:
        kubectl("delete", "remediationpolicy", name, "-n", OPERATOR_NS, check=False)


async def test_a_group_approver_needs_the_group_recorded_by_the_api_server(kubectl, user_kubeconfig, user_ns, remediator,
                                                                           key) -> None:
    """The policy's approvers are a group the user is not in. The user deletes the policy,
    approves while nothing governs (admitted), and GitOps puts the policy back: the
    approval names no group of the policy, so nothing runs."""
    entry = await pending(kubectl, user_ns, remediator, key, {"groups": ["sre-leads"]})
    manifest = get(kubectl, "remediationpolicy", "p", user_ns)
    assert as_user(kubectl, user_kubeconfig, "delete", "remediationpolicy", "p", "-n", user_ns).returncode == 0
    assert approve_as_user(kubectl, user_kubeconfig, user_ns, entry).returncode == 0
    policy(kubectl, user_ns, **manifest["spec"])
    await remediator.remediate(user_ns, "inc")
    after = journal(kubectl, user_ns, "inc")["scale-1"]
    assert after["decision"] != "Execute" and after["reason"].startswith("NotAnApprover"), after
    assert replicas(kubectl, user_ns) == 2


async def test_an_approval_recorded_before_the_action_exists_does_nothing(kubectl, user_kubeconfig, user_ns, remediator,
                                                                          key) -> None:
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=APPROVE_SCALE, approvers={"users": [USER]})
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [], key=key)
    assert approve_as_user(kubectl, user_kubeconfig, user_ns, {"id": "scale-1"}).returncode == 0
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["scale-1"]
    assert entry["decision"] == "AwaitingApproval", entry
    assert replicas(kubectl, user_ns) == 2


async def test_an_approval_of_an_older_revision_does_nothing(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """Approved, then the Deployment changes before the executor acts: what was approved is
    not what would run."""
    entry = await pending(kubectl, user_ns, remediator, key, {"users": [USER]})
    assert approve_as_user(kubectl, user_kubeconfig, user_ns, entry).returncode == 0
    kubectl("set", "env", "deployment/web", "-n", user_ns, "CHANGED=1")
    await remediator.remediate(user_ns, "inc")
    after = journal(kubectl, user_ns, "inc")["scale-1"]
    assert after["decision"] == "AwaitingApproval" and after["revision"] != entry["revision"], after
    assert replicas(kubectl, user_ns) == 2


async def test_an_expired_approval_does_nothing(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """The decision awaited approval past approvers.expireAfter (the journal says when; the
    operator, the only status writer, moves it into the past here instead of waiting)."""
    entry = await pending(kubectl, user_ns, remediator, key, {"users": [USER], "expireAfter": "1m"})
    assert approve_as_user(kubectl, user_kubeconfig, user_ns, entry).returncode == 0
    expired = {**entry, "expiresAt": "2020-01-01T00:00:00Z"}
    kubectl("patch", "incident", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"remediations": [expired]}}))
    await remediator.remediate(user_ns, "inc")
    after = journal(kubectl, user_ns, "inc")["scale-1"]
    assert after["decision"] == "AwaitingApproval" and after["revision"] != entry["revision"], after
    assert replicas(kubectl, user_ns) == 2


async def test_the_approval_of_the_pending_revision_runs(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """The legitimate path still works (so the refusals above are not a broken mechanism):
    `aisre approve` names the revision and the user's groups."""
    import subprocess

    from remediation_helpers import REPO

    entry = await pending(kubectl, user_ns, remediator, key, {"groups": ["aisre-devs"]})
    done = subprocess.run([str(REPO / ".venv" / "bin" / "aisre"), "approve", "incident/inc", "scale-1", "-n", user_ns,
                           "--kubeconfig", str(user_kubeconfig)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    approval = get(kubectl, "incident", "inc", user_ns)["spec"]["approvals"][0]
    assert approval["revision"] == entry["revision"] and approval["groups"] == ["aisre-devs"], approval
    await remediator.remediate(user_ns, "inc")
    after = journal(kubectl, user_ns, "inc")["scale-1"]
    assert (after["decision"], after["result"], after["approvedBy"]) == ("Execute", "Succeeded", USER), after
    assert replicas(kubectl, user_ns) == 3
