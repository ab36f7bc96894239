"""Detection on the real control plane, with faults the control plane makes itself
(the scheduler, quota admission), an operator of the test's own (in-process, detection
on, grace times compressed), restarts of that operator, and the Alertmanager webhook
over real HTTP."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import Kubectl
from conftest_helpers import deployment as _deployment

TOKEN = "s3cret-webhook-token"
THRESHOLDS = dataclasses.replace(Thresholds.compressed(), resolve_after=4.0)


@pytest.fixture
def det_ns(kubectl: Kubectl, own_namespace: str) -> str:
    name = own_namespace
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "am-token", "namespace": name},
              "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    return name


def _operator(kubeconfig: Path, namespace: str, port: int | None = None) -> OperatorThread:
    return OperatorThread(kubeconfig, port or free_port(), namespaces=(namespace,), detection=True,
                          operator_namespace=namespace, thresholds=THRESHOLDS,
                          alertmanager_token_secret=f"{namespace}/am-token")


def _incidents(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "incidents", "-n", namespace, "-o", "json").stdout)["items"]


def _until(what: str, probe: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_an_unschedulable_deployment_is_one_incident_investigated_and_resolved(kubectl, kubeconfig: Path, det_ns: str) -> None:
    with _operator(kubeconfig, det_ns):
        kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(_deployment("ledger", replicas=3, cpu="64")))
        incident = _until("a root cause on the incident", lambda: next(
            (i for i in _incidents(kubectl, det_ns) if (i.get("status") or {}).get("rootCause")), None))
        time.sleep(2)  # more signals arrive meanwhile: they must fold in, not open more
        items = _incidents(kubectl, det_ns)
        assert len(items) == 1, [i["metadata"]["name"] for i in items]
        spec, status = incident["spec"], incident["status"]
        assert spec["resource"] == {"kind": "Deployment", "name": "ledger", "namespace": det_ns}
        assert spec["source"] == "detection" and spec["severity"] == "critical"  # every replica is down
        assert [s["reason"] for s in spec["signals"]] == ["Unschedulable"] and 1 <= spec["occurrences"] <= 3
        assert status["rootCause"]["category"] == "InsufficientResources"
        assert status["investigationRef"]["name"] == incident["metadata"]["name"]
        inv = json.loads(kubectl("get", "investigation", incident["metadata"]["name"], "-n", det_ns, "-o", "json").stdout)
        assert inv["spec"]["incidentRef"]["name"] == incident["metadata"]["name"]
        assert inv["metadata"]["ownerReferences"][0]["kind"] == "Incident"
        row = kubectl("get", "incidents", "-n", det_ns, "--no-headers").stdout
        assert "critical" in row and "Identified" in row and "InsufficientResources" in row

        # The fix: the pods schedule, the signals clear, the Incident resolves with a report.
        kubectl("-n", det_ns, "set", "resources", "deployment/ledger", "--requests=cpu=100m")
        resolved = _until("the incident to resolve", lambda: next(
            (i for i in _incidents(kubectl, det_ns) if (i.get("status") or {}).get("state") == "Resolved"), None), 60)
        assert resolved["status"]["resolvedAt"] and "InsufficientResources" in resolved["status"]["report"]
        printed = subprocess.run([sys.executable, "-m", "aisre.cli", "report", f"incident/{resolved['metadata']['name']}",
                                  "-n", det_ns, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=60)
        assert printed.returncode == 0, printed.stderr
        assert "## Root cause" in printed.stdout and "Resolved" in printed.stdout and "Unschedulable" in printed.stdout


def test_a_quota_refusing_pods_is_one_incident_about_the_quota(kubectl, kubeconfig: Path, det_ns: str) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods-cap"}, "spec": {"hard": {"pods": "1"}}}
    kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(quota))
    with _operator(kubeconfig, det_ns):
        kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(_deployment("api", replicas=3)))
        kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(_deployment("worker", replicas=2)))
        _until("an incident", lambda: _incidents(kubectl, det_ns))
        time.sleep(3)
        items = _incidents(kubectl, det_ns)
        assert len(items) == 1, [i["spec"]["resource"] for i in items]
        spec = items[0]["spec"]
        assert spec["resource"]["kind"] == "ResourceQuota" and spec["resource"]["name"] == "pods-cap"
        assert {a["name"] for a in spec.get("affected") or []} <= {"api", "worker"} and spec.get("affected")


def test_a_restarted_operator_neither_duplicates_nor_recounts(kubectl, kubeconfig: Path, det_ns: str) -> None:
    kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(_deployment("ledger", replicas=2, cpu="64")))
    with _operator(kubeconfig, det_ns):
        first = _until("an incident", lambda: _incidents(kubectl, det_ns))[0]
        _until("both pods counted", lambda: _incidents(kubectl, det_ns)[0]["spec"]["occurrences"] == 2)
    # Down: the trouble continues and grows.
    kubectl("-n", det_ns, "scale", "deployment/ledger", "--replicas=4")
    with _operator(kubeconfig, det_ns):
        _until("the new pods counted", lambda: _incidents(kubectl, det_ns)[0]["spec"]["occurrences"] >= 4)
        time.sleep(3)  # a few decision rounds later, still
        items = _incidents(kubectl, det_ns)
        assert [i["metadata"]["name"] for i in items] == [first["metadata"]["name"]]
        assert items[0]["spec"]["occurrences"] == 4  # one per pod: nothing lost, nothing counted twice
        assert items[0]["spec"]["firstSeen"] == first["spec"]["firstSeen"]


def _payload(status: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": status, "receiver": "aisre", "groupKey": '{}:{alertname="HighErrorRate"}',
            "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0, "alerts": list(alerts)}


def _alert(status: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "HighErrorRate", "namespace": namespace, "severity": "critical", **labels},
            "annotations": {"summary": "5xx above 5% for 5m"}, "startsAt": "2026-11-24T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-24T10:20:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"fp{labels.get('pod', labels.get('deployment', ''))}"}


def test_the_alertmanager_webhook(kubectl, kubeconfig: Path, det_ns: str) -> None:
    kubectl("apply", "-n", det_ns, "-f", "-", input=json.dumps(_deployment("web", replicas=2)))
    port = free_port()
    url = f"http://127.0.0.1:{port}/alertmanager"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _operator(kubeconfig, det_ns, port):
        # wrong or missing token: 401, and nothing happens
        assert httpx.post(url, json=_payload("firing", _alert("firing", det_ns, deployment="web"))).status_code == 401
        wrong = httpx.post(url, json=_payload("firing", _alert("firing", det_ns, deployment="web")),
                           headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # not Alertmanager's payload: 400 with a reason; a malformed alert in one is skipped alone, with its
        # reason; nothing happens either way
        not_v4 = httpx.post(url, json={"version": "3", "status": "firing", "alerts": [{"labels": {"a": "b"}}]}, headers=auth)
        assert not_v4.status_code == 400 and not_v4.json()["reasons"]
        bad = httpx.post(url, json={"version": "4", "status": "firing", "alerts": [{"labels": {}}]}, headers=auth)
        assert bad.status_code == 200 and bad.json()["accepted"] == 0 and bad.json()["skipped"], bad.text
        assert httpx.post(url, content=b"{not json", headers=auth).status_code == 400
        time.sleep(2)
        assert _incidents(kubectl, det_ns) == []

        # grouped: two firing alerts about pods of one deployment and one about the deployment → one Incident
        def web_pods() -> list[dict[str, Any]]:
            found = json.loads(kubectl("get", "pods", "-n", det_ns, "-l", "app=web", "-o", "json").stdout)["items"]
            return found if len(found) == 2 else []
        pods = _until("the pods to exist", web_pods)
        grouped = _payload("firing", *(_alert("firing", det_ns, pod=p["metadata"]["name"]) for p in pods),
                           _alert("firing", det_ns, deployment="web"))
        accepted = httpx.post(url, json=grouped, headers=auth)
        assert accepted.status_code == 200 and accepted.json()["accepted"] == 3
        incident = _until("an incident", lambda: _incidents(kubectl, det_ns))[0]
        time.sleep(2)
        items = _incidents(kubectl, det_ns)
        assert len(items) == 1
        assert incident["spec"]["source"] == "alertmanager" and incident["spec"]["resource"]["name"] == "web"
        assert incident["spec"]["severity"] == "critical"

        # resolved alerts resolve it
        resolved = _payload("resolved", *(_alert("resolved", det_ns, pod=p["metadata"]["name"]) for p in pods),
                            _alert("resolved", det_ns, deployment="web"))
        assert httpx.post(url, json=resolved, headers=auth).status_code == 200
        done = _until("the incident to resolve", lambda: next(
            (i for i in _incidents(kubectl, det_ns) if (i.get("status") or {}).get("state") == "Resolved"), None), 30)
        assert done["metadata"]["name"] == incident["metadata"]["name"] and not done["status"].get("remediations")
