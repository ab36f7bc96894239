"""The scenario runner on the real control plane: what the simulated kubelet shows through
kubectl (pod states, kubelet events, logs, node conditions), that everything is undone
afterwards, and a whole `aisre bench` run with its report."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aisre.bench import cluster, kwok
from aisre.bench.kube import Kube
from aisre.bench.loader import LoadedScenario, load_file
from aisre.bench.runner import Options, run
from aisre.bench.scenario_run import BenchContext, ScenarioRun

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "scenarios"


@pytest.fixture(scope="module")
def context(kubeconfig: Path, crds: None) -> Iterator[BenchContext]:
    kube = Kube(str(kubeconfig))
    ctx = BenchContext(kube, cluster.run_id(), kubeconfig.resolve().parent)
    ctx.kwok_problem = cluster.kwok_available(kube)
    assert ctx.kwok_problem is None, ctx.kwok_problem
    yield ctx
    kube.close()


def _load(name: str) -> LoadedScenario:
    item = load_file(SCENARIOS / name)
    assert isinstance(item, LoadedScenario), item
    return item


def _json(kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["containerStatuses"] if c["name"] == name)


def _kubelet_events(kubectl, namespace: str, pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = _json(kubectl, "-n", namespace, "get", "events", f"--field-selector=involvedObject.name={pod['metadata']['name']}")["items"]
    return {e["reason"]: e for e in items if e["source"].get("component") == "kubelet"}


def _assert_cleaned_up(kubectl, context: BenchContext, namespace: str) -> None:
    # Deleted (the namespace controller takes 5-10 s to finish; the end-to-end test below
    # waits for the namespaces to be gone, as `aisre bench` does).
    got = kubectl("get", "namespace", namespace, "-o", "json", check=False)
    assert got.returncode != 0 or json.loads(got.stdout)["metadata"].get("deletionTimestamp"), f"{namespace} not deleted"
    stages = _json(kubectl, "get", "stages", "-l", f"{kwok.NAMESPACE_LABEL}={namespace}")["items"]
    assert stages == [], [s["metadata"]["name"] for s in stages]
    assert not (context.log_root / namespace).exists()
    assert not (context.journal_dir / f"{namespace}.json").exists()


def test_rollout_to_a_bad_image_shows_image_pull_back_off(kubectl, context: BenchContext) -> None:
    with ScenarioRun(context, _load("bad-image-rollout.yaml")) as scenario:
        ns = scenario.namespace
        scenario.setup()
        before = {p["metadata"]["uid"] for p in _json(kubectl, "-n", ns, "get", "pods")["items"]}
        assert len(before) == 2
        scenario.fault()
        assert scenario.problems == []

        pods = _json(kubectl, "-n", ns, "get", "pods")["items"]
        old = [p for p in pods if p["metadata"]["uid"] in before]
        new = [p for p in pods if p["metadata"]["uid"] not in before]
        # The new pod never became ready, so the rollout stalled with both old pods serving.
        assert len(old) == 2 and all(p["status"]["phase"] == "Running" for p in old)
        assert all(c["ready"] for p in old for c in p["status"]["containerStatuses"])
        assert len(new) == 1
        pod = new[0]
        name = pod["metadata"]["name"]
        assert pod["status"]["phase"] == "Pending" and pod["status"]["podIP"]
        web, proxy = _container(pod, "web"), _container(pod, "proxy")
        assert web["state"]["waiting"]["reason"] == "ImagePullBackOff"
        assert "1.4.3-rc" in web["state"]["waiting"]["message"]
        assert web["restartCount"] == 0 and not web["ready"] and not web["started"]
        assert proxy["state"]["running"] and proxy["ready"]
        conditions = {c["type"]: c for c in pod["status"]["conditions"]}
        assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["message"] == "containers with unready status: [web]"
        assert conditions["ContainersReady"]["status"] == "False" and conditions["PodScheduled"]["status"] == "True"
        row = kubectl("-n", ns, "get", "pod", name, "--no-headers").stdout.split()
        assert row[1:3] == ["1/2", "ImagePullBackOff"]
        # Nothing on the scenario's objects gives the answer away.
        annotations = {**(pod["metadata"].get("annotations") or {}), **(pod["metadata"].get("labels") or {})}
        assert not any("sim.aisre.dev" in k or "kwok" in k for k in annotations), annotations

        events = _kubelet_events(kubectl, ns, pod)
        assert set(events) == {"Pulling", "Failed", "BackOff"}
        for event in events.values():
            assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
            assert event["involvedObject"]["fieldPath"] == "spec.containers{web}"
            assert event["source"]["host"] == pod["spec"]["nodeName"] and event["count"] >= 1
            assert event["firstTimestamp"] and event["lastTimestamp"]
        assert events["Failed"]["type"] == "Warning"

        logs = kubectl("-n", ns, "logs", name, "-c", "proxy").stdout.splitlines()
        assert logs == ["[2026-01-01 00:00:01.000][1][info][main] starting main dispatch loop",
                        "[2026-01-01 00:00:01.002][1][info][upstream] cds: add 1 cluster(s)"]
        # The container never started: like a real kubelet, there is no log to show.
        assert kubectl("-n", ns, "logs", name, "-c", "web", check=False).returncode != 0
        assert _json(kubectl, "get", "stages", "-l", f"{kwok.NAMESPACE_LABEL}={ns}")["items"]
    assert scenario.cleanup_problems == []
    _assert_cleaned_up(kubectl, context, ns)


def test_node_not_ready_is_shown_then_restored(kubectl, context: BenchContext) -> None:
    with ScenarioRun(context, _load("db-node-not-ready.yaml")) as scenario:
        ns = scenario.namespace
        scenario.setup()
        scenario.fault()
        assert scenario.problems == []

        db = _json(kubectl, "-n", ns, "get", "pods", "-l", "app=db")["items"][0]
        node_name = db["spec"]["nodeName"]
        assert scenario.expected.resources == (f"Node/{node_name}",)
        node = _json(kubectl, "get", "node", node_name)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
        assert ready["message"].startswith("container runtime is down")
        assert kubectl("get", "node", node_name, "--no-headers").stdout.split()[1] == "NotReady"
        assert db["status"]["phase"] == "Running" and not _container(db, "postgres")["ready"]

        worker = _json(kubectl, "-n", ns, "get", "pods", "-l", "app=worker")["items"][0]
        name = worker["metadata"]["name"]
        w = _container(worker, "worker")
        assert w["state"]["waiting"]["reason"] == "CrashLoopBackOff" and w["restartCount"] == 3
        assert w["state"]["waiting"]["message"] == (
            f"back-off 1m20s restarting failed container=worker pod={name}_{ns}({worker['metadata']['uid']})"
        )
        assert w["lastState"]["terminated"]["exitCode"] == 1 and w["lastState"]["terminated"]["reason"] == "Error"
        assert kubectl("-n", ns, "get", "pod", name, "--no-headers").stdout.split()[2] == "CrashLoopBackOff"

        assert kubectl("-n", ns, "logs", name).stdout.splitlines() == [
            f"2026-01-01T00:00:03Z ERROR could not connect to db.{ns}.svc:5432: connection refused"
        ]
        assert kubectl("-n", ns, "logs", name, "--previous").stdout.splitlines() == [
            "2026-01-01T00:00:01Z INFO worker 2.0.1 starting",
            f"2026-01-01T00:00:02Z ERROR could not connect to db.{ns}.svc:5432: connection refused",
        ]
        events = _kubelet_events(kubectl, ns, worker)
        assert events["BackOff"]["type"] == "Warning" and events["BackOff"]["count"] == 4  # one per run
        assert events["Pulled"]["involvedObject"]["fieldPath"] == "spec.containers{worker}"
        assert (context.journal_dir / f"{ns}.json").exists()  # what to undo, should the run die now

    assert scenario.cleanup_problems == []
    node = _json(kubectl, "get", "node", node_name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    taints = [t["key"] for t in node["spec"].get("taints") or []]
    assert not any(t.startswith("node.kubernetes.io/") for t in taints), taints
    _assert_cleaned_up(kubectl, context, ns)


METRICS_SCENARIO = """
apiVersion: aisre.dev/scenario-v1
name: web-memory-leak
tags: [metrics]
setup: |
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec: {containers: [{name: web, image: registry.local/web:1}]}
fault:
  - metrics:
      - series: container_memory_working_set_bytes
        selector: {app: web}
        shape: {kind: ramp, start: 1.0e8, end: 5.2e8, at: -20m}
expect:
  incident: true
  rootCause: {category: MemoryLeak, resource: {kind: Deployment, name: web}}
"""


def test_aisre_bench_end_to_end(kubectl, kubeconfig: Path, crds, prometheus: str, tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    (scenarios / "memory-leak.yaml").write_text(METRICS_SCENARIO)
    (scenarios / "broken.yaml").write_text("apiVersion: aisre.dev/scenario-v1\nname: broken\nexpect: {incident: true}\n")
    out, err = io.StringIO(), io.StringIO()
    options = Options(scenarios=scenarios, json_out=tmp_path / "report.json", kubeconfig=kubeconfig,
                      mode="investigate", timeout=20, prometheus_url=prometheus)
    assert run(options, out=out, err=err) == 0, err.getvalue()

    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("scenarios", "top1", "top3", "false_positive_rate", "ece", "latency_p50_s", "latency_p95_s"):
        assert key in report
    results = {r["name"]: r for r in report["results"]}
    assert report["scenarios"] == 4 and set(results) == {"bad-image-rollout", "db-node-not-ready", "web-memory-leak", "broken"}
    assert results["broken"]["error"].startswith("invalid scenario") and not results["broken"]["top1"]
    leak = results["web-memory-leak"]  # series written to Prometheus, found by the metrics agent
    assert leak["error"] is None and leak["top1"], leak
    for name in ("bad-image-rollout", "db-node-not-ready"):
        r = results[name]
        # The investigation pipeline decides what is ranked; the runner must have played the
        # scenario without trouble of its own (at worst the Investigation timed out).
        assert r["error"] is None or r["error"].startswith("timeout"), r["error"]
        assert r["detect_s"] is None
        if r["error"] is None:
            assert r["investigate_s"] is not None and r["latency_s"] == r["investigate_s"] and r["ranked"]
    assert results["bad-image-rollout"]["expected"] == {"category": "BadImage", "resource": "Deployment/web"}
    assert results["db-node-not-ready"]["expected"]["resource"].startswith("Node/kwok-node-")
    table = out.getvalue()
    assert "bad-image-rollout" in table and "top1" in table

    # The run waited for its namespaces to go, and left nothing else behind.
    run_label = f"{kwok.RUN_LABEL}={cluster.run_id()}"
    assert _json(kubectl, "get", "namespaces", "-l", run_label)["items"] == []
    assert _json(kubectl, "get", "stages", "-l", run_label)["items"] == []
    nodes = _json(kubectl, "get", "nodes")["items"]
    assert all(next(c for c in n["status"]["conditions"] if c["type"] == "Ready")["status"] == "True" for n in nodes)
