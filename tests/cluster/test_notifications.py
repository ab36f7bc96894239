"""NotificationRoutes on the real API server: the CRD refuses routes that cannot work (and
inline credentials); an Incident that concludes is sent to Slack (one thread) and PagerDuty
(one trigger) served on loopback by tests/sink_servers.py; its resolution is a reply in the
same thread and a resolve with the same dedup_key; every delivery is recorded in the
Incident's status; and an operator restart sends nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aisre.api import GROUP, VERSION
from aisre.bench.operator_thread import OperatorThread, free_port
from conftest_helpers import deployment, wait_pods
from remediation_helpers import get, wait
from tests.sink_servers import PD_ROUTING_KEY, SLACK_TOKEN, SinkServers


def route(name: str, sinks: list[dict[str, Any]], **spec: Any) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationRoute", "metadata": {"name": name},
                       "spec": {"sinks": sinks, **spec}})


def secret(namespace: str, **values: str) -> list[str]:
    return ["create", "secret", "generic", "aisre-notifications", "-n", namespace,
            *[f"--from-literal={k}={v}" for k, v in values.items()]]


SLACK = {"name": "chat", "slack": {"channel": "#oncall", "tokenSecretRef": {"name": "aisre-notifications", "key": "slack"}}}


@pytest.fixture(scope="module")
def servers() -> Iterator[SinkServers]:
    with SinkServers() as running:
        yield running


@pytest.mark.parametrize("sinks, why", [
    ([], "should have at least 1 items"),
    ([{"name": "x"}], "a sink has exactly one of"),
    ([{**SLACK, "webhook": {"url": "https://example.com/hook"}}], "a sink has exactly one of"),
    ([SLACK, SLACK], "sink names must be unique"),
    ([{"name": "w", "webhook": {"url": "https://user:pw@example.com/hook"}}], "no credentials in a URL"),
    ([{"name": "w", "webhook": {"url": "https://example.com/a", "urlSecretRef": {"name": "s", "key": "k"}}}],
     "exactly one of url and urlSecretRef"),
    ([{"name": "s", "slack": {"channel": "#c", "token": "xoxb-1", "tokenSecretRef": {"name": "s", "key": "k"}}}],
     'unknown field "spec.sinks[0].slack.token"'),
    ([{"name": "s", "slack": {"channel": "#c", "tokenSecretRef": {"name": "s", "key": "k", "namespace": "other"}}}],
     'unknown field "spec.sinks[0].slack.tokenSecretRef.namespace"'),
])
def test_the_api_server_refuses_a_route_that_cannot_work(kubectl, namespace: str, sinks: list[Any], why: str) -> None:
    done = kubectl("apply", "-n", namespace, "-f", "-", check=False, input=route("bad", sinks))
    assert done.returncode != 0 and why in done.stderr, (sinks, done.stderr)


def test_a_route_explains_itself_and_shows_its_sinks(kubectl, namespace: str, operator) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=route("ok", [SLACK, {"name": "p", "pagerDuty": {
        "routingKeySecretRef": {"name": "aisre-notifications", "key": "pd"}}}], selector={"minSeverity": "high"}))
    wait(lambda: (get(kubectl, "nr", "ok", namespace).get("status") or {}).get("sinks"), 30, "the route accepted")
    table = kubectl("get", "nr", "ok", "-n", namespace).stdout.split()
    assert table[:4] == ["NAME", "SINKS", "SEVERITY", "AGE"] and table[5:7] == ["slack,pagerDuty", "high"]
    explained = " ".join(kubectl("explain", "notificationroute.spec.sinks.slack.tokenSecretRef").stdout.lower().split())
    assert "the bot token" in explained and "name of the secret, in the route's namespace" in explained


def incident(name: str, workload: str) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name},
                       "spec": {"title": f"{workload} pods pending", "source": "manual", "severity": "high",
                                "resource": {"kind": "Deployment", "name": workload}}})


def test_one_thread_one_page_recorded_and_nothing_twice_after_a_restart(kubeconfig, kubectl, own_namespace: str,
                                                                          servers: SinkServers) -> None:
    ns = own_namespace
    kubectl(*secret(ns, slack=SLACK_TOKEN, pd=PD_ROUTING_KEY))
    kubectl("apply", "-n", ns, "-f", "-", input=route("oncall", [
        {**SLACK, "slack": {**SLACK["slack"], "apiUrl": f"{servers.url}/slack/api"}},
        {"name": "pager", "pagerDuty": {"routingKeySecretRef": {"name": "aisre-notifications", "key": "pd"},
                                        "apiUrl": f"{servers.url}/pagerduty"}}]))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("ledger", cpu="64")))
    wait_pods(kubectl, ns, "app=ledger", lambda pods: any(
        any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))

    def delivered(sinks: int) -> dict[str, Any] | None:
        obj = get(kubectl, "incident", "ledger-pending", ns)
        records = (obj.get("status") or {}).get("notifications") or []
        return obj if len([r for r in records if r["result"] == "Sent"]) >= sinks else None

    def mine(prefix: str) -> list[Any]:
        return [r for r in servers.to(prefix) if ns in json.dumps(r.body)]

    with OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns):
        kubectl("apply", "-n", ns, "-f", "-", input=incident("ledger-pending", "ledger"))
        obj = wait(lambda: delivered(2), 90, "the root cause sent to Slack and PagerDuty")
    status = obj["status"]
    assert status["rootCause"]["category"] == "InsufficientResources"
    records = {(r["sink"], r["event"]): r for r in status["notifications"]}
    assert set(records) == {("chat", "Identified"), ("pager", "Identified")}
    assert all(r["route"] == f"{ns}/oncall" and r["result"] == "Sent" and r["attempts"] >= 1 and r["time"]
               for r in records.values())
    [first] = mine("/slack/")
    assert "thread_ts" not in first.body and "InsufficientResources" in json.dumps(first.body["blocks"])
    assert f"kubectl get incident ledger-pending -n {ns} -o yaml" in json.dumps(first.body)
    thread = next(s for s in status["notified"] if s["sink"] == "chat")["thread"]
    [trigger] = mine("/pagerduty/")
    assert trigger.body["event_action"] == "trigger" and trigger.body["dedup_key"] == f"aisre-{obj['metadata']['uid']}"

    def paged() -> list[Any]:  # a resolve carries only the key
        return [r for r in servers.to("/pagerduty/") if r.body.get("dedup_key") == trigger.body["dedup_key"]]

    # a restart: the route and the Incident are seen again (initial listing, the route's
    # sweep); nothing was new, so nothing is sent. Then the Incident resolves.
    with OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns):
        # A negative check needs time: the initial listings and the route's sweep run at
        # once after the operator is ready; give them a few seconds to post a duplicate.
        time.sleep(4)
        assert len(mine("/slack/")) == 1 and len(paged()) == 1, "a restart sent something again"
        kubectl("patch", "incident", "ledger-pending", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"state": "Resolved", "resolvedAt": "2030-01-01T00:00:00Z"}}))
        obj = wait(lambda: delivered(4), 60, "the resolution sent")
    slack, pager = mine("/slack/"), paged()
    assert len(slack) == 2 and slack[1].body["thread_ts"] == thread, "one thread: the update is a reply in it"
    assert len(servers.threads[thread]) == 1
    assert [p.body["event_action"] for p in pager] == ["trigger", "resolve"]
    assert pager[1].body["dedup_key"] == trigger.body["dedup_key"]
    events = [(r["sink"], r["event"], r["result"]) for r in obj["status"]["notifications"]]
    assert sorted(events) == sorted([("chat", "Identified", "Sent"), ("pager", "Identified", "Sent"),
                                     ("chat", "Resolved", "Sent"), ("pager", "Resolved", "Sent")])
