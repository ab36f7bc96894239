"""The memory of past incidents on the real API server: a concluded Incident records its
case; after the operator restarts (its index rebuilt from the Incidents), the same fault
on a new revision of the workload is shown as seen before, with the earlier Incident, why
it is alike, and a recurrence on the Incident's printer column."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aisre.api import GROUP, VERSION
from aisre.bench.operator_thread import OperatorThread, free_port
from conftest_helpers import deployment, wait_pods


def incident(name: str, workload: str) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name},
                       "spec": {"title": f"{workload} pods pending", "source": "manual",
                                "resource": {"kind": "Deployment", "name": workload}}})


def concluded(kubectl, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        obj = json.loads(kubectl("get", "incident", name, "-n", namespace, "-o", "json").stdout)
        if (obj.get("status") or {}).get("case"):
            return obj
        time.sleep(0.3)
    raise AssertionError(f"incident {name} recorded no case within {timeout} s: {obj.get('status')}")


def pending_rollout(kubectl, namespace: str, cpu: str) -> None:
    """The Deployment `ledger` asking for more CPU than any node has (a new revision each time)."""
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment("ledger", cpu=cpu)))
    wait_pods(kubectl, namespace, "app=ledger", lambda pods: any(
        any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))


def test_a_recurrence_is_recognised_after_a_restart(kubeconfig, kubectl, own_namespace: str) -> None:
    ns = own_namespace
    pending_rollout(kubectl, ns, "64")
    with OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns):
        kubectl("apply", "-n", ns, "-f", "-", input=incident("ledger-pending-1", "ledger"))
        first = concluded(kubectl, ns, "ledger-pending-1")
    case = first["status"]["case"]
    assert case["category"] == "InsufficientResources" and case["resource"] == "Deployment/ledger"
    assert "name:ledger" in case["identity"] and "app:ledger" in case["identity"]
    assert any(token.startswith("reason:") for token in case["signature"])
    assert first["status"]["recurrences"] == 0

    # the fault comes back on the next revision (other pods, other ReplicaSet)
    pending_rollout(kubectl, ns, "65")
    with OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns):
        kubectl("apply", "-n", ns, "-f", "-", input=incident("ledger-pending-2", "ledger"))
        second = concluded(kubectl, ns, "ledger-pending-2")
    assert second["status"]["recurrences"] == 1
    assert second["status"]["seenBefore"].startswith("seen once in 30 days; last ")
    inv = json.loads(kubectl("get", "investigation", second["status"]["investigationRef"]["name"], "-n", ns, "-o", "json").stdout)
    [past] = inv["status"]["similarIncidents"]
    assert (past["name"], past["category"]) == ("ledger-pending-1", "InsufficientResources")
    assert past["similarity"] >= 0.9 and "same workload (app:ledger, name:ledger)" in past["matchedOn"]
    row = kubectl("get", "incidents", "-n", ns).stdout.splitlines()
    assert "RECURRENCES" in row[0]
    recurrences = row[0].index("RECURRENCES")
    assert [line[recurrences:].split()[0] for line in row[1:] if line.startswith("ledger-pending-2")] == ["1"]

    # people's verdicts: what the cluster's own calibration is judged and refitted on
    aisre = Path(sys.executable).parent / "aisre"
    for name, verdict in (("ledger-pending-1", "--correct"), ("ledger-pending-2", "--correct")):
        done = subprocess.run([aisre, "feedback", f"incident/{name}", "-n", ns, verdict, "--kubeconfig", str(kubeconfig)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    report = subprocess.run([aisre, "calibration", "-n", ns, "-o", "json", "--kubeconfig", str(kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)
    assert (figures["verdicts"], figures["confirmed"]) == (2, 2) and figures["knots"][0] == [0.0, 0.0]

