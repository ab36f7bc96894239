"""Investigations on the real control plane, with faults the control plane makes itself
(the scheduler, quota admission), so nothing is simulated."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import kubernetes

from aisre.api import GROUP, VERSION, InvestigationSpec
from aisre.kube.reader import ClusterReader, connect
from aisre.operator.investigation import investigate
from conftest_helpers import deployment as _deployment
from conftest_helpers import investigate_and_wait as _investigate
from conftest_helpers import wait_pods as _wait_pods


def test_insufficient_resources_found_with_events_and_status(operator, api_client, namespace: str, kubectl) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("ledger", cpu="64")))
    _wait_pods(kubectl, namespace, "app=ledger",
               lambda pods: all(any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
    obj = _investigate(api_client, namespace, "why-pending", {"kind": "Deployment", "name": "ledger"})
    status = obj["status"]
    assert status["state"] == "Completed"
    assert status["rootCause"]["category"] == "InsufficientResources"
    assert status["rootCause"]["resource"]["kind"] == "Deployment" and status["rootCause"]["resource"]["name"] == "ledger"
    assert 0.5 < status["rootCause"]["confidence"] <= 1.0
    evidence_ids = {e["id"] for e in status["evidence"]}
    assert status["hypotheses"][0]["evidenceIds"] and set(status["hypotheses"][0]["evidenceIds"]) <= evidence_ids
    assert any("Insufficient cpu" in e["summary"] for e in status["evidence"])
    assert {a["name"]: a["status"] for a in status["agents"]}["workloads"] == "SUCCESS"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Completed"]["status"] == "True" and conditions["Completed"]["reason"] == "RootCauseFound"
    assert conditions["Accepted"]["status"] == "True"
    row = kubectl("get", "inv", "why-pending", "-n", namespace, "--no-headers").stdout
    assert "InsufficientResources" in row and "Completed" in row
    # Events are posted asynchronously, shortly after the handler returns.
    reasons: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < 10 and not {"InvestigationStarted", "InvestigationCompleted"} <= reasons:
        events = kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=why-pending", "-o", "json")
        reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
        time.sleep(0.2)
    assert {"InvestigationStarted", "InvestigationCompleted"} <= reasons


def test_quota_refusal_points_at_the_quota(operator, api_client, namespace: str, kubectl) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "team-pods"}, "spec": {"hard": {"pods": "1"}}}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(quota))
    time.sleep(1)  # the quota controller fills status.used before admission counts against it
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("orders", replicas=3)))
    started = time.monotonic()
    while "exceeded quota" not in kubectl("get", "events", "-n", namespace).stdout and time.monotonic() - started < 30:
        time.sleep(0.3)
    obj = _investigate(api_client, namespace, "why-short", {"selector": {}})
    root = obj["status"]["rootCause"]
    assert root["category"] == "ResourceQuotaExceeded"
    assert root["resource"]["kind"] == "ResourceQuota" and root["resource"]["name"] == "team-pods"


def test_healthy_namespace_is_no_fault(operator, api_client, namespace: str, kubectl) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("web")))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    obj = _investigate(api_client, namespace, "all-good", {"selector": {}})
    assert obj["status"]["rootCause"]["category"] == "NoFault"
    assert obj["status"]["conditions"][-1]["reason"] == "NoFaultFound"


def test_missing_target_ends_with_a_condition_not_retries(operator, api_client, namespace: str, kubectl) -> None:
    obj = _investigate(api_client, namespace, "ghost", {"kind": "Deployment", "name": "does-not-exist"})
    status = obj["status"]
    assert status["state"] == "Failed"
    completed = {c["type"]: c for c in status["conditions"]}["Completed"]
    assert completed["status"] == "False" and completed["reason"] == "TargetNotFound"
    assert "does-not-exist" in completed["message"]
    version = obj["metadata"]["resourceVersion"]
    time.sleep(2)
    again = kubernetes.client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "investigations", "ghost")
    assert again["metadata"]["resourceVersion"] == version, "the operator kept retrying"


def test_forbidden_namespace_is_reported(user_kubeconfig: Path, namespace: str) -> None:
    async def run() -> Any:
        client = connect(str(user_kubeconfig))
        try:
            spec = InvestigationSpec.model_validate({"target": {"selector": {}}})
            return await investigate(spec, namespace, ClusterReader(client))
        finally:
            await client.aclose()

    outcome = asyncio.run(run())
    assert not outcome.ok and outcome.reason == "Forbidden"
    assert "forbidden" in outcome.message.lower()


def test_aisre_report_prints_the_investigation(operator, api_client, namespace: str, kubectl, kubeconfig: Path) -> None:
    import subprocess
    import sys

    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("ledger", cpu="64")))
    _wait_pods(kubectl, namespace, "app=ledger",
               lambda pods: all(any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
    obj = _investigate(api_client, namespace, "for-report", {"kind": "Deployment", "name": "ledger"})
    aisre = Path(sys.executable).parent / "aisre"
    out = subprocess.run([aisre, "report", "investigation/for-report", "-n", namespace, "--kubeconfig", str(kubeconfig)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"# Investigation {namespace}/for-report" in out.stdout
    assert "**InsufficientResources** on `Deployment/ledger`" in out.stdout
    for evidence_id in obj["status"]["hypotheses"][0]["evidenceIds"]:
        assert evidence_id in out.stdout
    missing = subprocess.run([aisre, "report", "investigation/nope", "-n", namespace, "--kubeconfig", str(kubeconfig)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "Not Found" in missing.stderr
