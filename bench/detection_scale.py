"""Resident memory and keeping up, as the cluster grows: the real operator (``aisre run``,
detection on, a separate process) against the local control plane while this script
fills it with simulated pods across namespaces and Warning events.

At each step (500 → 5,000 pods by default, events growing to 20,000) it records the
operator's RSS (``/proc/PID/status``) once its watches have caught up, and the time from
creating a broken Deployment (a CPU request no node has) to its Incident — the detection
latency under that load. Pods are bound to the KWOK nodes directly (``spec.nodeName``),
so the scheduler is not the bottleneck being measured. Everything is deleted afterwards.

    .venv/bin/python bench/detection_scale.py [--steps 500,1000,2500,5000] [--events 20000]
                                              [--json bench/results/detection-scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
NAMESPACES = 50


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pod_manifest(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "filler"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.local/filler:1",
                                                       "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}}


def event_manifest(name: str, namespace: str, n: int) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": f"filler-{n}", "namespace": namespace, "apiVersion": "v1"},
            "type": "Warning", "reason": "BackOff", "message": f"Back-off restarting failed container app ({n})",
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "source": {"component": "kubelet"}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="500,1000,2500,5000")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--kubeconfig", default=str(REPO / ".cluster" / "kubeconfig"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=args.kubeconfig))
    apps = kubernetes.client.AppsV1Api(api.api_client)
    nodes = [n.metadata.name for n in api.list_node(label_selector="type=kwok").items]  # not the real node
    run = uuid.uuid4().hex[:5]
    namespaces = [f"scale-{run}-{i:02d}" for i in range(NAMESPACES)]
    for ns in namespaces:
        api.create_namespace({"metadata": {"name": ns, "labels": {"aisre-scale": run}}})
    env = {**os.environ, "KUBECONFIG": args.kubeconfig, "AISRE_HTTP_PORT": "18181", "AISRE_LOG_LEVEL": "WARNING",
           "AISRE_NAMESPACES": f"scale-{run}-*", "AISRE_OPERATOR_NAMESPACE": namespaces[0],
           "AISRE_DETECT_PENDING_GRACE": "1", "AISRE_DETECT_SETTLE": "0.5", "AISRE_DETECT_TICK": "0.25"}
    operator = subprocess.Popen([str(REPO / ".venv" / "bin" / "aisre"), "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    figures: list[dict[str, Any]] = []
    try:
        time.sleep(3)
        baseline = rss_mib(operator.pid)
        print(f"operator pid {operator.pid}: {baseline:.0f} MiB at start", file=sys.stderr)
        created = 0
        events = 0
        pool = ThreadPoolExecutor(16)
        for step, target in enumerate(steps):
            def make(n: int) -> None:
                ns = namespaces[n % NAMESPACES]
                api.create_namespaced_pod(ns, pod_manifest(f"filler-{n}", nodes[n % len(nodes)]))
            started = time.monotonic()
            list(pool.map(make, range(created, target)))
            created = target
            event_target = int(args.events * target / steps[-1])

            def emit(n: int) -> None:
                ns = namespaces[n % NAMESPACES]
                api.create_namespaced_event(ns, event_manifest(f"filler-{n}.{run}", ns, n))
            list(pool.map(emit, range(events, event_target)))
            events = event_target
            fill_s = time.monotonic() - started
            time.sleep(5)  # let the watches drain
            # Keeping up: a fresh fault must still become an Incident quickly.
            ns = namespaces[step + 1]
            probe = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"probe-{step}"},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"probe-{step}"}},
                              "template": {"metadata": {"labels": {"app": f"probe-{step}"}},
                                           "spec": {"containers": [{"name": "app", "image": "x",
                                                                    "resources": {"requests": {"cpu": "640"}}}]}}}}
            t0 = time.monotonic()
            apps.create_namespaced_deployment(ns, probe)
            custom = kubernetes.client.CustomObjectsApi(api.api_client)
            latency = None
            while time.monotonic() - t0 < 60:
                items = custom.list_namespaced_custom_object("aisre.dev", "v1alpha1", ns, "incidents")["items"]
                if any(i["spec"]["resource"]["name"] == f"probe-{step}" for i in items):
                    latency = time.monotonic() - t0
                    break
                time.sleep(0.1)
            row = {"pods": created, "events": events, "namespaces": NAMESPACES, "rss_mib": round(rss_mib(operator.pid), 1),
                   "fill_s": round(fill_s, 1), "incident_latency_s": None if latency is None else round(latency, 2),
                   "pending_grace_s": 1.0, "settle_s": 0.5}
            figures.append(row)
            print(json.dumps(row), file=sys.stderr)
        result = {"baseline_rss_mib": round(baseline, 1), "steps": figures, "operator_alive": operator.poll() is None}
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
        for ns in namespaces:
            try:
                api.delete_namespace(ns)
            except kubernetes.client.ApiException:
                pass


if __name__ == "__main__":
    sys.exit(main())
