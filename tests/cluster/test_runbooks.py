"""Runbooks on the real API server: the CRD refuses what cannot work, an Investigation lists
the runbooks of its namespace and of the operator's that match its root cause (never
another namespace's), and `aisre report` prints their steps under the root cause."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from conftest_helpers import deployment, investigate_and_wait, temporary_namespace, wait_pods

OPERATOR_NS = "aisre-system"  # the session operator's (OperatorConfig's default)


def runbook(name: str, match: dict[str, Any], **spec: Any) -> str:
    return json.dumps({"apiVersion": "aisre.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": name},
                       "spec": {"title": f"{name}: what to do", "match": match,
                                "steps": [f"{name} step one: `kubectl describe`", f"{name} step two"], **spec}})


def test_the_api_server_refuses_a_runbook_that_cannot_work(kubectl, namespace: str) -> None:
    for bad, why in (({"title": "t", "match": {}, "steps": ["s"]}, "match needs at least one of"),
                     ({"title": "t", "match": {"categories": ["Gremlins"]}, "steps": ["s"]}, "Unsupported value"),
                     ({"title": "t", "match": {"kinds": ["Deployment"]}, "steps": []}, "steps"),
                     ({"title": "t", "match": {"kinds": ["Deployment"]}, "steps": ["s"],
                       "actions": [{"type": "deleteNamespace"}]}, "Unsupported value")):
        done = kubectl("apply", "-n", namespace, "-f", "-", check=False, input=json.dumps(
            {"apiVersion": "aisre.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": "bad"}, "spec": bad}))
        assert done.returncode != 0 and why in done.stderr, (bad, done.stderr)
    assert "what a person should check and do" in kubectl("explain", "runbook.spec.steps").stdout.lower()


def test_matching_runbooks_are_listed_with_their_steps(operator, api_client, namespace: str, kubectl,
                                                       kubeconfig: Path) -> None:
    app = f"ledger-{uuid.uuid4().hex[:6]}"  # labels only this test's workload carries
    kubectl("create", "namespace", OPERATOR_NS, check=False)
    cluster_wide = f"rb-{app}"
    kubectl("apply", "-n", namespace, "-f", "-", input=runbook(
        "team-pending", {"categories": ["InsufficientResources"], "selector": {"matchLabels": {"app": app}}},
        priority=10, links=[{"title": "capacity dashboard", "url": "https://grafana.example/d/capacity"}],
        actions=[{"type": "scale", "parameters": {"replicas": 1}, "reason": "one replica fits"}]))
    kubectl("apply", "-n", namespace, "-f", "-", input=runbook("team-image", {"categories": ["BadImage"]}))
    kubectl("apply", "-n", OPERATOR_NS, "-f", "-", input=runbook(
        cluster_wide, {"kinds": ["Deployment"], "signalReasons": ["FailedScheduling", "Unschedulable"],
                       "selector": {"matchLabels": {"app": app}}}))
    try:
        with temporary_namespace(kubectl, "aisre-test-") as elsewhere:
            # someone else's runbook matches too, but only applies in its own namespace
            kubectl("apply", "-n", elsewhere, "-f", "-", input=runbook("theirs", {"kinds": ["Deployment"]}, priority=100))
            kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment(app, cpu="64")))
            wait_pods(kubectl, namespace, f"app={app}", lambda pods: all(
                any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
            obj = investigate_and_wait(api_client, namespace, "why-pending", {"kind": "Deployment", "name": app})
    finally:
        kubectl("delete", "runbook", cluster_wide, "-n", OPERATOR_NS, check=False)
    status = obj["status"]
    assert status["rootCause"]["category"] == "InsufficientResources"
    listed = {(r["namespace"], r["name"]): r for r in status["runbooks"]}
    # three fields held before two; a starter runbook others left in the operator's namespace
    # (one field, priority -10) may follow
    assert list(listed)[:2] == [(OPERATOR_NS, cluster_wide), (namespace, "team-pending")], list(listed)
    assert all(ns == OPERATOR_NS for ns, _ in list(listed)[2:])
    assert listed[(namespace, "team-pending")]["matchedOn"] == ["category InsufficientResources", f"labels of Deployment/{app}"]
    assert listed[(OPERATOR_NS, cluster_wide)]["matchedOn"][0] == "kind Deployment"
    assert listed[(namespace, "team-pending")]["steps"] == ["team-pending step one: `kubectl describe`", "team-pending step two"]
    proposed = [a for a in status["recommendedActions"] if a["type"] == "scale"]
    assert proposed and proposed[0]["target"] == {"kind": "Deployment", "name": app, "namespace": namespace}
    assert proposed[0]["reason"] == f"proposed by runbook {namespace}/team-pending: one replica fits"
    recalled = [e for e in status["timeline"] if e["event"] == "Recalled"]
    assert len(recalled) == 1 and recalled[0]["message"].startswith(f"{len(listed)} runbooks, 0 similar past Incidents (")
    assert status["timeline"][-1]["event"] == "Completed"
    wide = kubectl("get", "inv", "why-pending", "-n", namespace, "-o", "wide").stdout
    assert cluster_wide in wide
    aisre = Path(sys.executable).parent / "aisre"
    report = subprocess.run([aisre, "report", "investigation/why-pending", "-n", namespace, "--kubeconfig", str(kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    text = report.stdout
    assert f"### Runbook: team-pending: what to do (`{namespace}/team-pending`)" in text
    assert "1. team-pending step one: `kubectl describe`" in text and "[capacity dashboard]" in text
    assert text.index("## Root cause") < text.index("### Runbook") < text.index("## Hypotheses")
    assert "theirs" not in text and "team-image" not in text
