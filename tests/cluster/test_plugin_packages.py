"""A third-party plugin package, end to end: the example in examples/plugin/ is installed
with pip into a fresh virtual environment beside aisre, the operator runs from that
environment with the plugin turned on, and an Investigation on the real control plane
shows the plugin agent's findings (read from a loopback HTTP endpoint of deploy events) and
its pattern's candidate in the ranking.

Offline-safe and quick: the fresh environment reuses the test environment's installed
dependencies through a .pth file, and aisre and the example are installed with --no-deps
--no-index --no-build-isolation (hatchling comes from the same dependencies).
(tests/cluster/test_plugin.py is about the kubectl plugin, a different thing.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aisre.bench.operator_thread import free_port
from conftest_helpers import REPO
from conftest_helpers import deployment as _deployment
from conftest_helpers import investigate_and_wait as _investigate
from conftest_helpers import wait_pods as _wait_pods

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with aisre (this checkout) and the example plugin installed by pip."""
    root = tmp_path_factory.mktemp("plugin-venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies (kopf, pydantic, hatchling, ...) from the test environment, after the venv's own packages.
    Path(purelib, "aisre_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = _clean_env()
    for source in (REPO, REPO / "examples" / "plugin"):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
                        "--disable-pip-version-check", str(source)], check=True, timeout=300, env=env, cwd=root)
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (the venv must use its own install) or AISRE_*."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AISRE_")}
    env.update(extra)
    return env


@pytest.fixture
def deploy_events(plugin_venv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The example package's own loopback endpoint (``python -m aisre_deploy_events.testing``),
    run from the plugin's venv; it serves the JSON file the test writes, read per request."""
    events = tmp_path / "deploys.json"
    events.write_text("[]")
    server = subprocess.Popen([str(plugin_venv / "bin" / "python"), "-m", "aisre_deploy_events.testing", str(events)],
                              stdout=subprocess.PIPE, text=True, env=_clean_env())
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip(), events
    finally:
        server.terminate()
        server.wait(10)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_aisre_plugins_in_the_fresh_venv_lists_the_example(plugin_venv: Path) -> None:
    env = _clean_env(AISRE_PLUGINS_ENABLED="deploy-events,deploy-broke-it")
    listed = json.loads(subprocess.run([str(plugin_venv / "bin" / "aisre"), "plugins", "--json"], check=True,
                                       capture_output=True, text=True, env=env, timeout=60).stdout)
    by_name = {(p["group"], p["name"]): p for p in listed}
    assert by_name[("agents", "deploy-events")]["source"] == "aisre-deploy-events"
    assert by_name[("agents", "deploy-events")]["state"] == "PrerequisitesMissing"  # no url configured
    assert by_name[("patterns", "deploy-broke-it")]["state"] == "Enabled"
    assert by_name[("agents", "workloads")]["state"] == "Enabled" and by_name[("agents", "workloads")]["source"] == "builtin"


def test_an_installed_plugins_findings_and_candidate_reach_the_investigation(
        plugin_venv: Path, deploy_events: tuple[str, Path], api_client: Any, own_namespace: str,
        kubectl: Any, tmp_path: Path, kubeconfig: Path) -> None:
    url, events_file = deploy_events
    namespace = own_namespace
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("ledger", cpu="64")))
    _wait_pods(kubectl, namespace, "app=ledger", lambda pods: all(
        any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
    events_file.write_text(json.dumps([
        {"namespace": namespace, "workload": "Deployment/ledger", "version": "2.0", "change": "image", "author": "ci-bot",
         "time": now},
        {"namespace": "elsewhere", "workload": "Deployment/ledger", "version": "9", "time": now}]))
    key = tmp_path / "signing-key"
    key.write_text("k" * 64)
    port = free_port()
    env = _clean_env(AISRE_DETECTION="false", AISRE_PLUGINS_ENABLED="deploy-events,deploy-broke-it",
                     AISRE_PLUGINS_SETTINGS=json.dumps({"deploy-events": {"url": url, "namespaces": [namespace]}}),
                     AISRE_SIGNING_KEY_FILE=str(key), AISRE_LOG_LEVEL="WARNING")
    log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen([str(plugin_venv / "bin" / "aisre"), "run", "--kubeconfig", str(kubeconfig), "-n", namespace,
                                 "--http-port", str(port), "--log-format", "console"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        status, body = 0, ""
        while time.monotonic() - started < 60 and status != 200:
            assert operator.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
            status, body = (_get(f"http://127.0.0.1:{port}/readyz") if _port_open(port) else (0, ""))
            time.sleep(0.3)
        assert status == 200, body
        ready = json.loads(body)
        assert ready["plugins"]["counts"].get("Enabled", 0) >= 2 and not ready["plugins"]["notRunning"]

        obj = _investigate(api_client, namespace, "why-pending", {"kind": "Deployment", "name": "ledger"}, timeout=60)
        status_ = obj["status"]
        assert status_["state"] == "Completed", status_
        agents = {a["name"]: a for a in status_["agents"]}
        assert agents["deploy-events"]["status"] == "SUCCESS" and agents["deploy-events"]["findings"] == 1, agents
        deploys = [e for e in status_["evidence"] if e["agent"] == "deploy-events"]
        assert [(e["kind"], e["data"]["version"], e["data"]["author"]) for e in deploys] == [("DeployEvent", "2.0", "ci-bot")]
        # The plugin pattern's candidate is ranked, citing the plugin's finding; the built-in
        # mechanism (the scheduler's refusal) still ranks first.
        assert status_["rootCause"]["category"] == "InsufficientResources"
        mine = [h for h in status_["hypotheses"] if h["category"] == "BadImage"
                and h.get("resource", {}).get("name") == "ledger"]
        assert mine and deploys[0]["id"] in mine[0]["evidenceIds"], status_["hypotheses"]
        # Measured: the plugin's calls on the operator's /metrics.
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert 'aisre_plugin_calls_total{group="agents",outcome="success",plugin="deploy-events"} 1.0' in metrics
        assert 'aisre_plugin_calls_total{group="patterns",outcome="success",plugin="deploy-broke-it"}' in metrics
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(10)
        log.close()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
