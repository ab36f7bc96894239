"""Remediation through the operator as users run it (`aisre run`, a separate process):
detection's contract (an Incident whose status links an Investigation and names a root
cause) triggers it, and an operator killed with SIGKILL mid-action, then restarted, never
runs the action twice and never leaves it unrecorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aisre.bench.operator_thread import free_port
from conftest_helpers import deployment
from remediation_helpers import reapply_crds, grant_approver, EXECUTOR, REPO, action, apply, available, detected, get, install_chart, journal, policy, wait

AISRE = REPO / ".venv" / "bin" / "aisre"


@pytest.fixture
def namespace(own_namespace: str) -> str:
    """Here the test (or its own operator) remediates: the session operator stays out."""
    return own_namespace


class OperatorProcess:
    """`aisre run` for one namespace, started and SIGKILLed by the test."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        environment = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "AISRE_NAMESPACES": self.namespace,
                       "AISRE_HTTP_PORT": str(self.port), "AISRE_EXECUTOR_USER": EXECUTOR,
                       "AISRE_MAX_VERIFY_SECONDS": "30", "AISRE_LOG_LEVEL": "INFO",
                       "AISRE_DETECTION": "false", **env}  # the Incidents here are the test's
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([str(AISRE), "run", "--log-format", "console"], env=environment,
                                            stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def metrics(self) -> str:
        def fetch() -> str | None:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
            except OSError:
                return None
        return wait(fetch, 30, "metrics endpoint")


@pytest.fixture(autouse=True)
def this_branch_crds(kubectl, crds) -> None:
    reapply_crds(kubectl)

@pytest.fixture
def operator_process(kubeconfig, namespace, tmp_path, crds) -> Iterator[OperatorProcess]:
    install_chart_once(kubeconfig)
    running = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log")
    yield running
    running.stop()


_chart_installed: list[bool] = []


def install_chart_once(kubeconfig: Path) -> None:
    if not _chart_installed:
        from conftest_helpers import Kubectl
        install_chart(Kubectl(kubeconfig))
        _chart_installed.append(True)


def setup_restart(kubectl, namespace: str) -> int:
    apply(kubectl, namespace, deployment("web", replicas=2))
    wait(lambda: available(kubectl, namespace, "web", 2), what="deployment available")
    policy(kubectl, namespace, actions=[{"type": "rolloutRestart", "mode": "auto"}])
    return get(kubectl, "deployment", "web", namespace)["metadata"]["generation"]


def entry(kubectl, namespace: str) -> dict | None:
    return journal(kubectl, namespace, "inc").get("restart-1")


def test_the_operator_remediates_what_detection_identified(kubectl, namespace, operator_process) -> None:
    generation = setup_restart(kubectl, namespace)
    operator_process.start()
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("restart-1", "rolloutRestart", "Deployment", "web")])
    done = wait(lambda: (e := entry(kubectl, namespace)) and e["result"] not in ("Running", "Pending") and e, 60, "journal result")
    assert (done["decision"], done["result"]) == ("Execute", "Succeeded"), done
    assert get(kubectl, "deployment", "web", namespace)["metadata"]["generation"] == generation + 1
    metrics = operator_process.metrics()
    assert 'aisre_remediations_total{action="rolloutRestart",decision="Execute",result="Succeeded"} 1.0' in metrics
    reasons = {e["reason"] for e in json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]}
    assert {"RemediationStarted", "RemediationSucceeded"} <= reasons


@pytest.mark.parametrize("kill_at", ["after-claim", "after-execute"])
def test_killed_mid_action_runs_it_exactly_once(kubectl, namespace, operator_process, kill_at) -> None:
    generation = setup_restart(kubectl, namespace)
    pause = "AISRE_TEST_PAUSE_AFTER_CLAIM" if kill_at == "after-claim" else "AISRE_TEST_PAUSE_AFTER_EXECUTE"
    operator_process.start(**{pause: "120"})
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("restart-1", "rolloutRestart", "Deployment", "web")])
    wait(lambda: (e := entry(kubectl, namespace)) and e["result"] == "Running", 60, "a Running journal entry")
    if kill_at == "after-execute":
        wait(lambda: get(kubectl, "deployment", "web", namespace)["metadata"]["generation"] == generation + 1, 30, "the change")
    time.sleep(0.5)
    operator_process.kill()
    # Killed: the action is on record (Running, with its marker) before anything else.
    recorded = entry(kubectl, namespace)
    assert recorded["result"] == "Running" and recorded["startedAt"], recorded
    changed = generation + (1 if kill_at == "after-execute" else 0)
    assert get(kubectl, "deployment", "web", namespace)["metadata"]["generation"] == changed
    operator_process.start()
    final = wait(lambda: (e := entry(kubectl, namespace)) and e["result"] != "Running" and e, 60, "a final result")
    if kill_at == "after-claim":
        assert final["result"] == "Failed" and final["detail"].startswith("Interrupted"), final
    else:
        assert final["result"] == "Succeeded" and "resumed after a restart" in final["detail"], final
    assert final["startedAt"] == recorded["startedAt"], final
    time.sleep(2)  # give a wrong second run the time to show
    d = get(kubectl, "deployment", "web", namespace)
    assert d["metadata"]["generation"] == changed, "the action ran twice (or ran after being recorded Interrupted)"
    assert len(journal(kubectl, namespace, "inc")) == 1


def test_an_approval_through_the_api_server_lets_the_operator_act(kubectl, namespace, operator_process, user_kubeconfig) -> None:
    apply(kubectl, namespace, deployment("web", replicas=2))
    wait(lambda: available(kubectl, namespace, "web", 2), what="deployment available")
    policy(kubectl, namespace, actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["aisre-dev"]})
    grant_approver(kubectl, namespace)
    operator_process.start()
    detected(kubectl, namespace, "inc", {"kind": "Deployment", "name": "web"}, [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    waiting = wait(lambda: journal(kubectl, namespace, "inc").get("scale-1"), 60, "a decision")
    assert (waiting["decision"], waiting["result"]) == ("AwaitingApproval", "Pending"), waiting
    assert get(kubectl, "incident", "inc", namespace)["status"]["state"] == "Identified"
    approved = subprocess.run([str(AISRE), "approve", "incident/inc", "scale-1", "-n", namespace, "--kubeconfig", str(user_kubeconfig)],
                              capture_output=True, text=True, timeout=60)
    assert approved.returncode == 0, approved.stderr
    done = wait(lambda: (e := journal(kubectl, namespace, "inc")["scale-1"])["result"] in ("Succeeded", "Failed", "Reverted") and e,
                60, "the approved action's result")
    assert (done["decision"], done["result"], done["approvedBy"]) == ("Execute", "Succeeded", "aisre-dev"), done
    assert get(kubectl, "deployment", "web", namespace)["spec"]["replicas"] == 3
