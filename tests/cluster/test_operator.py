"""The operator, run in-process against the real API server, accepts specs."""

from __future__ import annotations

import time
from typing import Any

import httpx
import kubernetes

from aisre.api import GROUP, VERSION


def _wait_for(fetch, predicate, timeout: float) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        last = fetch()
        if predicate(last):
            return last, time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s; last seen: {last.get('status')}")


def _accepted(generation: int):
    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        accepted = conditions.get("Accepted")
        return bool(
            accepted
            and accepted["status"] == "True"
            and accepted["observedGeneration"] == generation
            and status.get("observedGeneration") == generation
        )

    return check


def test_new_investigation_is_accepted_within_5s(operator, api_client, namespace: str, kubectl) -> None:
    api = kubernetes.client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Investigation",
        "metadata": {"name": "web-down"},
        "spec": {"target": {"kind": "Deployment", "name": "web"}},
    }
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", body)

    def fetch() -> dict[str, Any]:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", "web-down")

    obj, elapsed = _wait_for(fetch, _accepted(1), timeout=5.0)
    # Accepted first; the investigation itself may already be running or done.
    assert obj["status"]["state"] in ("Pending", "Running", "Completed", "Failed")
    assert obj["status"]["target"] == "Deployment/web"
    print(f"accepted in {elapsed:.2f} s")

    row = kubectl("get", "inv", "web-down", "-n", namespace, "--no-headers").stdout
    assert "Deployment/web" in row

    # A spec change bumps the generation; the operator follows it.
    api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "investigations", "web-down", {"spec": {"question": "why?"}}
    )
    _wait_for(fetch, _accepted(2), timeout=5.0)


def test_incident_and_policy_are_accepted(operator, api_client, namespace: str, kubectl) -> None:
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    kubectl("apply", "-n", namespace, "-f", str(examples / "incident.yaml"))
    kubectl("apply", "-n", namespace, "-f", str(examples / "remediation-policy.yaml"))
    api = kubernetes.client.CustomObjectsApi(api_client)
    incident, _ = _wait_for(
        lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "checkout-crashloop"),
        lambda obj: _accepted(1)(obj) and bool((obj.get("status") or {}).get("investigationRef")),
        timeout=10.0,
    )
    # A person's Incident starts its Investigation too (spec.investigate defaults to true).
    assert incident["status"]["state"] in ("Investigating", "Identified")
    assert incident["status"]["investigationRef"]["name"] == "checkout-crashloop"
    policy, _ = _wait_for(
        lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, "remediationpolicies", "default"),
        _accepted(1),
        timeout=5.0,
    )
    assert policy["status"]["actionsSummary"].startswith("deletePod=auto,rolloutRestart=auto")
    # The operator wrote status only: applying the same policy from Git changes nothing.
    assert "unchanged" in kubectl("apply", "-n", namespace, "-f", str(examples / "remediation-policy.yaml")).stdout


def test_operator_serves_health_and_metrics(operator) -> None:
    base = f"http://127.0.0.1:{operator.http_port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert "aisre_handler_calls_total" in httpx.get(f"{base}/metrics").text
