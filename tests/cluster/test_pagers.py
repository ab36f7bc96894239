"""Pages on the real API server, through the operator's real HTTP endpoints: a signed
PagerDuty webhook opens an Incident about the workload it names and its resolve resolves
it (the page, closed at its source, is left alone); an Opsgenie alert opens one too, and
when that Incident resolves aisre closes the alert with the credentials of the
NotificationRoute that sees it (the Opsgenie Alert API served on loopback by
tests/sink_servers.py) and records it; a page that names nothing the cluster has is
answered 202 and counted, and opens nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx

from aisre.api import GROUP, VERSION
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.pagers import pagerduty_signature
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import Kubectl, deployment
from remediation_helpers import wait
from tests.sink_servers import OPSGENIE_KEY, SinkServers

PD_SECRET = "pd-webhook-signing-secret"
OG_TOKEN = "opsgenie-webhook-token"
THRESHOLDS = dataclasses.replace(Thresholds.compressed(), resolve_after=3.0, page_hold=6.0)


def _secrets(kubectl: Kubectl, namespace: str) -> None:
    for name, key, value in (("pd-webhook", "secret", f"old-secret-being-rotated\n{PD_SECRET}"),
                             ("og-webhook", "token", OG_TOKEN)):
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {key: base64.b64encode(value.encode()).decode()}}))


def _operator(kubeconfig: Path, namespace: str, port: int) -> OperatorThread:
    return OperatorThread(kubeconfig, port, namespaces=(namespace,), detection=True, operator_namespace=namespace,
                          thresholds=THRESHOLDS, pagerduty_secret_secret=f"{namespace}/pd-webhook",
                          opsgenie_token_secret=f"{namespace}/og-webhook")


def _incidents(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "incidents", "-n", namespace, "-o", "json").stdout)["items"]



def _pd(event_type: str, incident_id: str, **data: Any) -> bytes:
    return json.dumps({"event": {"id": f"evt-{incident_id}-{event_type}", "event_type": event_type,
                                 "resource_type": "incident", "occurred_at": "2026-11-24T12:00:00Z", "data": {
        "id": incident_id, "type": "incident", "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "status": "triggered", "incident_key": f"key-{incident_id}", "title": "checkout 5xx above SLO",
        "service": {"id": "PSVC", "summary": "Checkout"}, "urgency": "high", **data}}}).encode()


def _post_pd(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/pagerduty", content=body, headers={
        "Content-Type": "application/json", "X-PagerDuty-Signature": pagerduty_signature(body, PD_SECRET)})


def test_a_signed_pagerduty_page_opens_an_incident_and_its_resolve_resolves_it(kubectl, kubeconfig: Path,
                                                                               own_namespace: str) -> None:
    ns = own_namespace
    _secrets(kubectl, ns)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("web", replicas=1)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    named = {"custom_details": {"namespace": ns, "workload": "web"}}
    with _operator(kubeconfig, ns, port):
        # unsigned, or signed with another secret: refused, nothing opens
        body = _pd("incident.triggered", "Q1", **named)
        assert httpx.post(f"{url}/pagerduty", content=body).status_code == 401
        assert httpx.post(f"{url}/pagerduty", content=body, headers={
            "X-PagerDuty-Signature": pagerduty_signature(body, "not-ours")}).status_code == 401
        # a page about something the cluster does not have: 202, counted, nothing opens
        elsewhere = _pd("incident.triggered", "Q0", custom_details={"namespace": ns, "workload": "billing"})
        skipped = _post_pd(url, elsewhere)
        assert skipped.status_code == 202 and skipped.json()["accepted"] == 0, skipped.text
        metrics = httpx.get(f"{url}/metrics").text
        assert 'aisre_pages_total{outcome="unmatched",pager="pagerduty"}' in metrics
        time.sleep(2)
        assert _incidents(kubectl, ns) == []

        # the page, signed (PagerDuty signs with each active secret; either will do), names the workload
        taken = _post_pd(url, body)
        assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
        incident = wait(lambda: _incidents(kubectl, ns), what="an incident")[0]
        assert incident["spec"]["source"] == "pagerduty" and incident["spec"]["resource"]["name"] == "web"
        assert incident["spec"]["severity"] == "high"
        assert incident["spec"]["pages"] == [{"system": "pagerDuty", "id": "Q1", "key": "key-Q1", "closed": False,
                                              "url": "https://acme.pagerduty.com/incidents/Q1"}]
        assert _post_pd(url, body).status_code == 202  # a redelivery: the same signal, no second Incident

        assert _post_pd(url, _pd("incident.resolved", "Q1", **named)).status_code == 202
        done = wait(lambda: next((i for i in _incidents(kubectl, ns) if (i.get("status") or {}).get("state") == "Resolved"),
                                 None), 30, "the incident to resolve")
        assert [i["metadata"]["name"] for i in _incidents(kubectl, ns)] == [incident["metadata"]["name"]]
        assert done["spec"]["pages"][0]["closed"] is True  # PagerDuty resolved it: aisre leaves it alone
        time.sleep(1)
        assert not (_incidents(kubectl, ns)[0].get("status") or {}).get("pages")


def test_an_opsgenie_alert_opens_an_incident_that_closes_the_alert_when_it_resolves(kubectl, kubeconfig: Path,
                                                                                     own_namespace: str) -> None:
    ns = own_namespace
    _secrets(kubectl, ns)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("api", replicas=1)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    alert = {"action": "Create", "integrationType": "Webhook", "source": {"name": "", "type": "api"}, "alert": {
        "alertId": "70413a06-38d6", "alias": "api-latency", "message": "api latency p99 above 2 s", "priority": "P1",
        "tags": ["team:payments", f"namespace:{ns}", "workload:api"], "details": {}}}
    with SinkServers() as servers:
        kubectl("create", "secret", "generic", "og-sink", "-n", ns, f"--from-literal=key={OPSGENIE_KEY}")
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationRoute", "metadata": {"name": "pager"},
            "spec": {"selector": {"changes": ["Resolved"]}, "sinks": [{"name": "genie", "opsgenie": {
                "apiKeySecretRef": {"name": "og-sink", "key": "key"}, "apiUrl": f"{servers.url}/opsgenie"}}]}}))
        with _operator(kubeconfig, ns, port):
            auth = {"Authorization": f"Bearer {OG_TOKEN}"}
            assert httpx.post(f"{url}/opsgenie", json=alert).status_code == 401
            taken = httpx.post(f"{url}/opsgenie", json=alert, headers=auth)
            assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
            incident = wait(lambda: _incidents(kubectl, ns), what="an incident")[0]
            assert incident["spec"]["source"] == "opsgenie" and incident["spec"]["severity"] == "critical"
            # nobody closes the alert and the cluster shows nothing wrong with the workload: after the
            # page's hold the Incident resolves, and aisre closes the alert with the route's key
            done = wait(lambda: next((i for i in _incidents(kubectl, ns) if (i.get("status") or {}).get("pages")), None),
                        40, "the alert closed and recorded")
            assert done["status"]["state"] == "Resolved"
            (record,) = done["status"]["pages"]
            assert (record["system"], record["id"], record["result"], record["route"]) == (
                "opsgenie", "70413a06-38d6", "Resolved", f"{ns}/pager")
            closes = [r for r in servers.to("/opsgenie/v2/alerts/") if r.path.endswith("/close")]
            assert [(r.path, r.query, r.status) for r in closes] == [
                ("/opsgenie/v2/alerts/api-latency/close", {"identifierType": "alias"}, 202)]
            time.sleep(2)
            assert len([r for r in servers.to("/opsgenie/v2/alerts/") if r.path.endswith("/close")]) == 1  # once
