"""Helpers shared by the cluster tests (plain functions; conftest.py puts this folder on
sys.path so test modules can import them)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes

from aisre.api import GROUP, VERSION


def deployment(name: str, replicas: int = 2, cpu: str = "100m") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": name, "image": f"registry.local/{name}:1.0",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}},
    }


def investigate_and_wait(api_client, namespace: str, name: str, target: dict[str, Any], timeout: float = 20.0,
                         **spec: Any) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(api_client)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Investigation", "metadata": {"name": name},
        "spec": {"target": target, **spec}})
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", name)
        if (obj.get("status") or {}).get("state") in ("Completed", "Failed"):
            return obj
        time.sleep(0.1)
    raise AssertionError(f"investigation {name} did not conclude within {timeout} s: {obj.get('status')}")


def wait_pods(kubectl, namespace: str, selector: str, predicate, timeout: float = 30.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]
        if pods and predicate(pods):
            return
        time.sleep(0.2)
    raise AssertionError(f"pods {selector} never reached the expected state")


# Tests that run an operator (or the remediation engine) of their own, tests/llm, and
# `aisre bench` runs use namespaces with this prefix; the session operator leaves them alone.
OWN_PREFIX = "aisre-own-"


@contextmanager
def temporary_namespace(kubectl: Any, prefix: str) -> Iterator[str]:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".tools" / "bin" / "kubectl"


class Kubectl:
    """kubectl against the test cluster, as the admin or as the non-admin user."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result
