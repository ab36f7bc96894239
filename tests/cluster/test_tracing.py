"""Traces against a real collector (Jaeger v2, hack/jaeger.sh): an Alertmanager webhook
request that carries a W3C traceparent opens an Incident whose Investigation's trace
continues the caller's; the Investigation's status names that trace, and Jaeger's query
API returns it with the Incident's creation, the Investigation and a span per agent that
ran and per ranking step, each under the right parent."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import Kubectl, deployment
from remediation_helpers import wait

TOKEN = "tracing-webhook-token"
THRESHOLDS = Thresholds.compressed()

CALLER_TRACE = secrets.token_hex(16)  # fresh per run: a collector kept running holds earlier runs' traces
CALLER_SPAN = secrets.token_hex(8)



def _items(kubectl: Kubectl, kind: str, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", kind, "-n", namespace, "-o", "json").stdout)["items"]


def test_an_investigation_is_one_trace_in_the_collector_that_continues_the_webhooks(
        kubectl, kubeconfig: Path, own_namespace: str, jaeger: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    ns = own_namespace
    service = f"aisre-test-{ns}"  # this test's spans only
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger["otlp"])
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within a tenth of a second
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "am-token", "namespace": ns},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("web", replicas=1)))
    port = free_port()
    with OperatorThread(kubeconfig, port, namespaces=(ns,), detection=True, operator_namespace=ns,
                        thresholds=THRESHOLDS, alertmanager_token_secret=f"{ns}/am-token"):
        alert = {"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": ns, "deployment": "web",
                                                "severity": "critical"}, "annotations": {"summary": "5xx above 5%"}}
        sent = httpx.post(f"http://127.0.0.1:{port}/alertmanager",
                          json={"version": "4", "status": "firing", "receiver": "aisre", "alerts": [alert]},
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
        assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
        done = wait(lambda: next((i for i in _items(kubectl, "investigations", ns)
                                  if (i.get("status") or {}).get("state") in ("Completed", "Failed")), None),
                    90, "the investigation to complete")
        status = done["status"]
        assert status["state"] == "Completed" and status["traceId"] == CALLER_TRACE  # it continues the caller's trace
        assert status["traceParent"].startswith(f"00-{CALLER_TRACE}-")

        def trace() -> dict[str, Any] | None:
            response = httpx.get(f"{jaeger['query']}/api/traces/{CALLER_TRACE}", timeout=5)
            if response.status_code != 200 or not response.json().get("data"):
                return None
            found = response.json()["data"][0]
            names = {s["operationName"] for s in found["spans"]}
            return found if {"incident open", "investigation", "rank", "recommend"} <= names else None

        found = wait(trace, 30, what="the trace in Jaeger")
    spans = {s["operationName"]: s for s in found["spans"]}
    processes = {p["serviceName"] for p in found["processes"].values()}
    assert processes == {service}

    def parent(name: str) -> str | None:
        refs = [r for r in spans[name].get("references") or [] if r["refType"] == "CHILD_OF"]
        return refs[0]["spanID"] if refs else None

    assert parent("incident open") == CALLER_SPAN  # the webhook caller's span
    assert parent("investigation") == spans["incident open"]["spanID"]
    assert status["traceParent"].split("-")[2] == spans["investigation"]["spanID"]
    for step in ("rank", "recommend", "rank llm", "runbooks"):
        assert parent(step) == spans["investigation"]["spanID"], step
    ran = {s["operationName"].removeprefix("agent ") for s in found["spans"] if s["operationName"].startswith("agent ")}
    assert ran <= {a["name"] for a in status["agents"]}  # the planned ones; a skipped agent has no span
    assert {"workloads", "events"} <= ran, ran
    for name in ran:
        assert parent(f"agent {name}") == spans["investigation"]["spanID"]
    tags = {t["key"]: t["value"] for t in spans["rank"]["tags"]}
    assert tags["aisre.findings"] >= 1 and tags["aisre.top.category"] == status["rootCause"]["category"]
    incident_tags = {t["key"]: t["value"] for t in spans["incident open"]["tags"]}
    assert incident_tags["aisre.source"] == "alertmanager" and incident_tags["aisre.root"] == "Deployment/web"
