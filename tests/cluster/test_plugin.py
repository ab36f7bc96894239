"""kubectl-aisre on the real control plane, with the session operator: the installed
console script, and the same through `kubectl aisre` (kubectl finds plugins on the PATH).
The fault is one the control plane makes itself: pods that ask for more CPU than any
node has stay Pending."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest_helpers import KUBECTL, REPO, temporary_namespace
from conftest_helpers import deployment, wait_pods
from remediation_helpers import awaiting

BIN = REPO / ".venv" / "bin"
PLUGIN = BIN / "kubectl-aisre"


@pytest.fixture(scope="module")
def ns(kubectl, crds) -> Iterator[str]:
    with temporary_namespace(kubectl, "aisre-plugin-") as name:
        yield name


@pytest.fixture(scope="module")
def pending_deployment(kubectl, ns: str) -> str:
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("ledger", cpu="64")))
    wait_pods(kubectl, ns, "app=ledger",
              lambda pods: all(any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
    return "ledger"


def plugin(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLUGIN), *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=120)


def kubectl_with_plugin(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([str(KUBECTL), *args], capture_output=True, text=True, timeout=120, env=env)


def via_kubectl(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """`kubectl aisre …`: kubectl finds kubectl-aisre on the PATH and passes the rest on."""
    return kubectl_with_plugin("aisre", *args, kubeconfig=kubeconfig)


def test_investigate_waits_and_prints_the_root_cause(operator, kubeconfig, ns, pending_deployment) -> None:
    out = plugin("investigate", "deploy/ledger", "-n", ns, "--question", "why is ledger pending?", "--wait",
                 "--timeout", "60s", kubeconfig=kubeconfig)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("investigation.aisre.dev/ledger-")
    assert "State:       Completed" in out.stdout
    assert "Root cause:  InsufficientResources on Deployment/ledger" in out.stdout
    confidence = float(out.stdout.split("Confidence:")[1].split()[0])
    assert 0.5 < confidence <= 1.0
    assert "Summary:     " in out.stdout


def test_kubectl_finds_the_plugin_and_explains(operator, kubeconfig, ns, pending_deployment) -> None:
    assert str(PLUGIN) in kubectl_with_plugin("plugin", "list", kubeconfig=kubeconfig).stdout
    out = via_kubectl("investigate", "deployment/ledger", "-n", ns, "--name", "via-kubectl", "--agents",
                      "workloads,events", "--wait", "-o", "json", kubeconfig=kubeconfig)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["metadata"]["name"] == "via-kubectl"
    assert obj["spec"]["agents"] == ["workloads", "events"]
    assert obj["status"]["rootCause"]["category"] == "InsufficientResources"

    explained = via_kubectl("explain", "investigation/via-kubectl", "-n", ns, kubeconfig=kubeconfig)
    assert explained.returncode == 0, explained.stderr
    assert "1. InsufficientResources on Deployment/ledger" in explained.stdout
    for evidence_id in obj["status"]["hypotheses"][0]["evidenceIds"]:
        assert evidence_id in explained.stdout
    data = json.loads(via_kubectl("explain", "inv/via-kubectl", "-n", ns, "-o", "json", kubeconfig=kubeconfig).stdout)
    assert data["hypotheses"][0]["category"] == "InsufficientResources"
    assert [e["id"] for e in data["hypotheses"][0]["evidence"]] == obj["status"]["hypotheses"][0]["evidenceIds"]
    assert all(e["agent"] in ("workloads", "events") for e in data["hypotheses"][0]["evidence"])

    report = via_kubectl("report", "investigation/via-kubectl", "-n", ns, kubeconfig=kubeconfig)
    assert report.returncode == 0 and "**InsufficientResources** on `Deployment/ledger`" in report.stdout
    as_yaml = yaml.safe_load(via_kubectl("report", "inv/via-kubectl", "-n", ns, "-o", "yaml", kubeconfig=kubeconfig).stdout)
    assert as_yaml["status"]["rootCause"]["category"] == "InsufficientResources"


def test_namespace_and_context_from_the_kubeconfig(operator, kubeconfig, ns, pending_deployment, tmp_path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    base = config["contexts"][0]
    config["contexts"].append({"name": "plugin-test", "context": {**base["context"], "namespace": ns}})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    out = plugin("investigate", "deploy/ledger", "--name", "in-context", "-o", "yaml", "--context", "plugin-test",
                 kubeconfig=path)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["metadata"]["namespace"] == ns
    listed = plugin("get", "investigations", "-A", kubeconfig=path)
    assert listed.returncode == 0 and any(line.split()[:2] == [ns, "in-context"] for line in listed.stdout.splitlines())


def test_missing_objects_fail_clearly(operator, kubeconfig, ns) -> None:
    out = plugin("investigate", "deploy/ghost", "-n", ns, "--wait", kubeconfig=kubeconfig)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == 'Error from server (NotFound): deployments.apps "ghost" not found'
    out = via_kubectl("explain", "investigation/ghost", "-n", ns, kubeconfig=kubeconfig)
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): investigations.aisre.dev "ghost" not found'
    out = plugin("approve", "incident/ghost", "a-1", "-n", ns, kubeconfig=kubeconfig)
    assert out.returncode == 1 and "(NotFound)" in out.stderr and '"ghost" not found' in out.stderr
    out = plugin("investigate", "configmap/x", "-n", ns, kubeconfig=kubeconfig)
    assert out.returncode == 1 and out.stderr.startswith('error: cannot investigate "configmap/x"')


def test_approve_records_the_current_user(kubectl, kubeconfig, ns) -> None:
    incident = {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "inc"},
                "spec": {"title": "by hand", "resource": {"kind": "Deployment", "name": "ledger"}, "investigate": False}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(incident))
    out = via_kubectl("approve", "incident/inc", "scale-1", "-n", ns, kubeconfig=kubeconfig)
    assert out.returncode == 1 and "no action scale-1 awaits approval" in out.stderr  # nothing to approve yet
    revision = awaiting(kubectl, ns, "inc", "scale-1")
    out = via_kubectl("approve", "incident/inc", "scale-1", "-n", ns, "--comment", "ok", kubeconfig=kubeconfig)
    assert out.returncode == 0, out.stderr
    approvals = json.loads(kubectl("get", "incident", "inc", "-n", ns, "-o", "json").stdout)["spec"]["approvals"]
    assert [(a["actionId"], a["comment"], a["revision"]) for a in approvals] == [("scale-1", "ok", revision)]
    assert out.stdout.strip() == f"incident.aisre.dev/inc action scale-1 approved by {approvals[0]['approvedBy']}"
    # explain follows an Incident to its Investigation; this one was told not to start any.
    out = via_kubectl("explain", "incident/inc", "-n", ns, kubeconfig=kubeconfig)
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): incident "inc" has no Investigation yet'
