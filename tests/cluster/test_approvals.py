"""Approvals with a verified identity, checked by the API server itself: the chart's
ValidatingAdmissionPolicies admit an approval only from a policy approver naming
themselves. Two real users: the admin kubeconfig and the non-admin `aisre-dev`
(group `aisre-devs`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from remediation_helpers import reapply_crds, grant_approver, REPO, action, awaiting, detected, get, install_chart, policy

AISRE = REPO / ".venv" / "bin" / "aisre"


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


@pytest.fixture
def incident(kubectl, namespace, chart) -> str:
    grant_approver(kubectl, namespace)
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    awaiting(kubectl, namespace, "inc", "scale-1")  # what `aisre approve` names: the journaled decision
    return "inc"


def approve(kubeconfig: Path, namespace: str, action_id: str = "scale-1") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AISRE), "approve", "incident/inc", action_id, "-n", namespace, "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def approvals(kubectl, namespace: str) -> list[dict]:
    return get(kubectl, "incident", "inc", namespace)["spec"].get("approvals") or []


def test_the_right_user_approves_with_aisre_approve(kubectl, namespace, incident, user_kubeconfig) -> None:
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev"]})
    result = approve(user_kubeconfig, namespace)
    assert result.returncode == 0, result.stderr
    assert "approved by aisre-dev" in result.stdout
    assert [(a["actionId"], a["approvedBy"]) for a in approvals(kubectl, namespace)] == [("scale-1", "aisre-dev")]


def test_group_membership_counts(kubectl, namespace, incident, user_kubeconfig) -> None:
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"groups": ["aisre-devs"]})
    result = approve(user_kubeconfig, namespace)
    assert result.returncode == 0, result.stderr


def test_a_user_outside_the_approvers_is_refused(kubectl, kubeconfig, namespace, incident) -> None:
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev"]})
    result = approve(kubeconfig, namespace)  # the admin: allowed by RBAC, not an approver
    assert result.returncode == 1
    assert "is not an approver of RemediationPolicy p" in result.stderr
    assert approvals(kubectl, namespace) == []


def test_a_forged_approver_is_refused(kubectl, namespace, incident, user_kubeconfig) -> None:
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev", "alice"]})
    # aisre-dev writes an approval in alice's name with plain kubectl
    forged = kubectl("patch", "incident", "inc", "-n", namespace, "--type=merge", "-p",
                     json.dumps({"spec": {"approvals": [{"actionId": "scale-1", "approvedBy": "alice"}]}}),
                     kubeconfig=user_kubeconfig, check=False)
    assert forged.returncode != 0
    assert "approvedBy must be aisre-dev" in forged.stderr
    assert approvals(kubectl, namespace) == []


def test_unrelated_writes_and_existing_approvals_pass(kubectl, namespace, incident, user_kubeconfig) -> None:
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev"]})
    assert approve(user_kubeconfig, namespace).returncode == 0
    # the admin (no approver) may still edit the Incident, keeping aisre-dev's approval as it is
    kubectl("label", "incident", "inc", "-n", namespace, "team=payments")
    kubectl("patch", "incident", "inc", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"title": "renamed"}}))
    assert approvals(kubectl, namespace)[0]["approvedBy"] == "aisre-dev"
