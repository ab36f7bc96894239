"""drainNode has a cluster-wide effect (it evicts pods of every namespace from a node):
only a RemediationPolicy in the operator's namespace may run it. An ordinary namespace
user trying to get a drain through a policy in their own namespace is stopped by the API
server (the chart's ``<release>-policy-authority``), and, were such a policy stored
anyway, by the policy chain's scope step (issue 19)."""

from __future__ import annotations

import json

from attack_helpers import OPERATOR_NS, aisre_object, as_user, detected, journal, refused_by_admission
from remediation_helpers import action, get, kwok_node, policy

DRAIN_AUTO = {"mode": "auto", "targets": {"kinds": ["Node"]}, "actions": [{"type": "drainNode"}]}


def test_a_namespace_user_cannot_get_a_drain_through_their_own_policy(kubectl, user_kubeconfig, user_ns) -> None:
    for mode in ("auto", "approve"):
        spec = {**DRAIN_AUTO, "mode": mode, **({"approvers": {"users": ["aisre-dev"]}} if mode == "approve" else {})}
        result = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-",
                         input=aisre_object("RemediationPolicy", f"drain-{mode}", spec))
        assert refused_by_admission(result, "aisre-policy-authority"), result.stderr
        assert "only a RemediationPolicy in the namespace of the operator" in result.stderr
    # nor by escalating a policy admitted in observe mode
    quiet = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-",
                    input=aisre_object("RemediationPolicy", "drain-later", {**DRAIN_AUTO, "mode": "observe"}))
    assert quiet.returncode == 0, quiet.stderr
    escalated = as_user(kubectl, user_kubeconfig, "patch", "remediationpolicy", "drain-later", "-n", user_ns, "--type=merge",
                        "-p", json.dumps({"spec": {"mode": "auto"}}))
    assert refused_by_admission(escalated, "aisre-policy-authority"), escalated.stderr
    # nor a Runbook proposing it (the author may not patch nodes nor evict pods cluster-wide)
    runbook = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=aisre_object(
        "Runbook", "drain", {"title": "t", "match": {"kinds": ["Node"]}, "steps": ["drain it"], "actions": [{"type": "drainNode"}]}))
    assert refused_by_admission(runbook, "aisre-policy-authority"), runbook.stderr


def test_the_namespace_rule_holds_whatever_rights_the_author_has(kubectl, user_ns) -> None:
    """The admin may patch nodes and evict pods anywhere, and still cannot put a drain into a
    namespace's policy; in the operator's namespace it may."""
    result = kubectl("apply", "-n", user_ns, "-f", "-", input=aisre_object("RemediationPolicy", "drain", DRAIN_AUTO),
                     check=False)
    assert refused_by_admission(result, "aisre-policy-authority"), result.stderr
    central = kubectl("apply", "-n", OPERATOR_NS, "--dry-run=server", "-f", "-",
                      input=aisre_object("RemediationPolicy", "drain", DRAIN_AUTO), check=False)
    assert central.returncode == 0, central.stderr


async def test_the_policy_chain_never_lets_a_namespaces_policy_drain(kubectl, user_ns, remediator, key) -> None:
    """A namespace's policy that lists drainNode (in dryRun, the one way it is admitted there)
    and a signed drain recommendation: the scope step drops that policy before any mode
    applies, so no policy governs the node and nothing happens to it."""
    node = f"aisre-sec-drain-{user_ns[-8:]}"
    kwok_node(kubectl, node)
    try:
        policy(kubectl, user_ns, targets={"kinds": ["Node"]}, actions=[{"type": "drainNode", "mode": "dryRun"}],
               limits={"minHealthyPercent": 0, "cooldown": "1s"})
        detected(kubectl, user_ns, "inc", {"kind": "Node", "name": node}, [action("drain-1", "drainNode", "Node", node)],
                 key=key)
        await remediator.remediate(user_ns, "inc")
        entry = journal(kubectl, user_ns, "inc")["drain-1"]
        # out of scope, the namespace's policy does not govern the node at all: no policy does
        assert entry["decision"] == "Observed" and entry["reason"].startswith("NoMatchingPolicy"), entry
        assert not get(kubectl, "node", node)["spec"].get("unschedulable")
    finally:
        kubectl("delete", "node", node, "--wait=false", check=False)
