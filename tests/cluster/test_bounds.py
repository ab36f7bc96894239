"""Big inputs stay within bounds: thousands of events and a huge container log still give
a small status, and what was cut is said in status.truncated."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes

from aisre.bench import kwok
from aisre.operator.investigation import MAX_EVIDENCE

from conftest_helpers import deployment as _deployment
from conftest_helpers import investigate_and_wait as _investigate
from conftest_helpers import wait_pods as _wait_pods


def test_thousands_of_events_and_a_huge_log(operator, api_client, namespace: str, kubectl, kubeconfig: Path) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(_deployment("noisy", replicas=1)))
    _wait_pods(kubectl, namespace, "app=noisy", lambda pods: pods[0]["status"].get("phase") == "Running")
    pod = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=noisy", "-o", "json").stdout)["items"][0]

    # A 6 MB log (the agent reads a bounded tail of it).
    log_file = kubeconfig.parent / "test-logs" / f"{namespace}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"ERROR request {i} failed: dial tcp upstream-{i % 7}:8080: connect: connection refused" for i in range(60000)]
    log_file.write_text(kwok.cri_log(lines, dt.datetime.now(dt.UTC)))
    logs = kwok.logs_object(pod["metadata"]["name"], namespace, {"noisy": (str(log_file), None)}, run_id="test-bounds")
    kubectl("apply", "-f", "-", input=json.dumps(logs))

    # 2,600 Warning events with 400 distinct reasons on the pod.
    core = kubernetes.client.CoreV1Api(api_client)
    now = dt.datetime.now(dt.UTC)

    def post(i: int) -> None:
        core.create_namespaced_event(namespace, {
            "metadata": {"name": f"noise-{i}"},
            "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": namespace,
                               "uid": pod["metadata"]["uid"]},
            "reason": f"Noise{i % 400}", "message": f"noise {i}", "type": "Warning",
            "firstTimestamp": now.isoformat(), "lastTimestamp": now.isoformat(), "count": 1,
            "source": {"component": "test"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(2600)))

    started = time.monotonic()
    obj = _investigate(api_client, namespace, "big", {"selector": {}}, timeout=60)
    elapsed = time.monotonic() - started
    status = obj["status"]
    assert status["state"] == "Completed"
    assert len(status["evidence"]) <= MAX_EVIDENCE
    assert len(status["hypotheses"]) <= 10
    truncated = " ".join(status.get("truncated") or [])
    assert "events" in truncated, truncated
    assert len(json.dumps(status)) < 256 * 1024, "status must stay far below etcd's object size limit"
    agents = {a["name"]: a for a in status["agents"]}
    assert agents["logs"]["status"] == "SUCCESS" and agents["events"]["status"] == "SUCCESS"
    print(f"investigated 2600 events and a {log_file.stat().st_size // 1024} KiB log in {elapsed:.2f} s")
    kubectl("delete", "logs", pod["metadata"]["name"], "-n", namespace, "--ignore-not-found")
    log_file.unlink()
