"""Attack paths through notifications, as the namespace user ``aisre-dev``: a route it
writes in its own namespace never receives another team's Incidents (whatever its selector
names), cannot name a Secret in another namespace (the API server refuses the field), and
a Secret of the same name in the victim's namespace is never used for it. The real operator
runs in-process (as the admin, the boundary's operator) with loopback Slack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from aisre.bench.operator_thread import OperatorThread, free_port
from attack_helpers import OPERATOR_NS, SECURITY_PREFIX, aisre_object, as_user
from remediation_helpers import get, wait
from tests.sink_servers import SLACK_TOKEN, SinkServers


@pytest.fixture(scope="module")
def servers() -> Iterator[SinkServers]:
    with SinkServers() as running:
        yield running


@pytest.fixture(scope="module")
def operator(kubeconfig, boundary) -> Iterator[OperatorThread]:
    with OperatorThread(kubeconfig, free_port(), namespaces=(f"{SECURITY_PREFIX}*",), detection=False,
                        operator_namespace=OPERATOR_NS) as running:
        yield running


def slack_route(url: str, **selector: object) -> str:
    return aisre_object("NotificationRoute", "mine", {"selector": selector, "sinks": [{"name": "chat", "slack": {
        "channel": "#oncall", "apiUrl": f"{url}/slack/api",
        "tokenSecretRef": {"name": "aisre-notifications", "key": "slack"}}}]})


def concluded_incident(kubectl, namespace: str, name: str) -> None:
    """An Incident with a root cause, as the operator (the admin here) would record it."""
    kubectl("create", "-n", namespace, "-f", "-", input=aisre_object(
        "Incident", name, {"title": f"{name} is down", "severity": "critical", "investigate": False,
                           "resource": {"kind": "Deployment", "name": "web"}}))
    kubectl("patch", "incident", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"state": "Identified", "rootCause": {"category": "BadImage", "confidence": 0.9, "summary": "bad tag",
                                                        "resource": {"kind": "Deployment", "name": "web"}}}}))


def posts_about(servers: SinkServers, namespace: str) -> list:
    return [r for r in servers.to("/slack/") if namespace in json.dumps(r.body)]


def test_a_route_never_receives_another_namespaces_incidents(kubectl, user_kubeconfig, user_ns, victim_ns, operator,
                                                            servers: SinkServers) -> None:
    assert as_user(kubectl, user_kubeconfig, "create", "secret", "generic", "aisre-notifications", "-n", user_ns,
                   f"--from-literal=slack={SLACK_TOKEN}").returncode == 0
    # the selector names the victim's namespace: a route outside the operator's namespace sees its own only
    made = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-",
                   input=slack_route(servers.url, namespaces=[victim_ns, user_ns]))
    assert made.returncode == 0, made.stderr
    concluded_incident(kubectl, victim_ns, "theirs")
    concluded_incident(kubectl, user_ns, "ours")  # the control: the route works
    wait(lambda: posts_about(servers, user_ns), 60, "the user's own Incident sent")
    time.sleep(2)  # the victim's Incident was created first; give a leak time to show
    assert posts_about(servers, victim_ns) == []
    assert not (get(kubectl, "incident", "theirs", victim_ns).get("status") or {}).get("notifications")


def test_a_route_cannot_use_a_secret_of_another_namespace(kubectl, user_kubeconfig, user_ns, victim_ns, operator,
                                                          servers: SinkServers) -> None:
    # no namespace field: the API server refuses the reference outright
    elsewhere = json.loads(slack_route(servers.url))
    elsewhere["spec"]["sinks"][0]["slack"]["tokenSecretRef"]["namespace"] = victim_ns
    refused = as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=json.dumps(elsewhere))
    assert refused.returncode != 0 and 'unknown field "spec.sinks[0].slack.tokenSecretRef.namespace"' in refused.stderr
    # the name alone resolves in the route's namespace: the victim's Secret of that name is never read for it
    kubectl("create", "secret", "generic", "aisre-notifications", "-n", victim_ns, f"--from-literal=slack={SLACK_TOKEN}")
    assert as_user(kubectl, user_kubeconfig, "apply", "-n", user_ns, "-f", "-", input=slack_route(servers.url)).returncode == 0
    concluded_incident(kubectl, user_ns, "ours")
    record = wait(lambda: ((get(kubectl, "incident", "ours", user_ns).get("status") or {}).get("notifications") or [None])[-1],
                  60, "the delivery recorded")
    assert record["result"] == "Failed" and record["error"] == f"Secret {user_ns}/aisre-notifications not found"
    assert posts_about(servers, user_ns) == []
