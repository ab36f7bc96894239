"""The metrics agent and the scenario metrics step against the real (Debian) Prometheus
that hack/prometheus.sh runs on loopback: series written by remote write in the past
relative to now, read back through the agent's own PromQL."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx

from aisre.agents import metrics
from aisre.agents.base import AgentContext, PrometheusSettings
from aisre.api.investigation import AgentStatus
from aisre.bench.metrics import write_step
from aisre.kube.scope import Scope
from aisre.ranking.rank import rank


def _scope(namespace: str, name: str, limits: dict[str, str]) -> Scope:
    dep = {"kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "uid": "d1"}}
    pods = [{"kind": "Pod", "metadata": {"name": f"{name}-abc-{i}", "namespace": namespace, "labels": {"app": name},
                                         "ownerReferences": [{"uid": "d1", "controller": True}]},
             "spec": {"containers": [{"name": name, "resources": {"limits": limits}}]}} for i in range(2)]
    return Scope(namespace=namespace, description=f"namespace {namespace}", pods=pods, workloads=[dep], whole_namespace=True)


def _context(scope: Scope, url: str) -> AgentContext:
    now = dt.datetime.now(dt.UTC)
    return AgentContext(reader=None, scope=scope, window_start=now - dt.timedelta(hours=1), now=now,  # type: ignore[arg-type]
                        prometheus=PrometheusSettings(url=url))


async def test_series_in_the_past_are_written_and_found(prometheus: str) -> None:
    namespace = f"metrics-{uuid.uuid4().hex[:8]}"
    scope = _scope(namespace, "api", {"cpu": "500m", "memory": "512Mi"})
    started = time.monotonic()
    written = write_step(prometheus, [
        {"series": "container_cpu_usage_seconds_total", "labels": {"container": "api"}, "selector": {"app": "api"},
         "from": "-40m", "shape": {"kind": "step", "start": 0.1, "end": 0.49, "at": "-10m", "noise": 0.01, "seed": 1}},
        {"series": "container_memory_working_set_bytes", "selector": {"app": "api"},  # no container label at all
         "from": "-40m", "shape": {"kind": "ramp", "start": 1.0e8, "end": 3.0e8, "at": "-30m", "noise": 2.0e6}},
        {"series": "http_request_duration_seconds_bucket", "labels": {"le": "0.1"}, "selector": {"app": "api"},
         "from": "-40m", "shape": {"kind": "step", "start": 50, "end": 5, "at": "-10m"}},
        {"series": "http_request_duration_seconds_bucket", "labels": {"le": "2"}, "selector": {"app": "api"},
         "from": "-40m", "shape": {"kind": "constant", "value": 50}},
        {"series": "http_request_duration_seconds_bucket", "labels": {"le": "+Inf"}, "selector": {"app": "api"},
         "from": "-40m", "shape": {"kind": "constant", "value": 50}},
    ], namespace, scope.pods, time.time())
    write_s = time.monotonic() - started
    assert written == 5 * 2 * 161 and write_s < 5.0
    # Readable at once: no block reload, no restart.
    got = httpx.get(f"{prometheus}/api/v1/query", params={
        "query": f'count(container_memory_working_set_bytes{{namespace="{namespace}"}})'}).json()
    assert got["data"]["result"][0]["value"][1] == "2"

    result = await metrics.gather(_context(scope, prometheus))
    assert result.status == AgentStatus.SUCCESS, result.message
    kinds = {f.kind for f in result.findings}
    assert {"CPUSaturated", "MemoryGrowing", "LatencyHigh"} <= kinds, result.findings
    latency = next(f for f in result.findings if f.kind == "LatencyHigh")
    assert "histogram_quantile" in latency.data["query"] and latency.data["recent"] > 0.5
    top3 = {(h.category.value, h.resource) for h in rank(result.findings, namespace)[:3]}
    assert {("CPUSaturation", "Deployment/api"), ("MemoryLeak", "Deployment/api")} <= top3


async def test_micrometer_names_and_status_label_are_read(prometheus: str) -> None:
    namespace = f"micrometer-{uuid.uuid4().hex[:8]}"
    scope = _scope(namespace, "shop", {})
    write_step(prometheus, [
        {"series": "http_server_requests_seconds_count", "labels": {"status": "200", "uri": "/cart"},
         "selector": {"app": "shop"}, "shape": {"kind": "constant", "value": 20}},
        {"series": "http_server_requests_seconds_count", "labels": {"status": "500", "uri": "/cart"},
         "selector": {"app": "shop"}, "shape": {"kind": "step", "start": 0.01, "end": 4, "at": "-4m"}},
    ], namespace, scope.pods, time.time())
    result = await metrics.gather(_context(scope, prometheus))
    errors = [f for f in result.findings if f.kind == "ErrorRateHigh"]
    assert errors and 0.1 < errors[0].data["recent"] < 0.2, result


async def test_a_namespace_without_series_is_no_data(prometheus: str) -> None:
    scope = _scope(f"empty-{uuid.uuid4().hex[:8]}", "web", {})
    result = await metrics.gather(_context(scope, prometheus))
    assert result.status == AgentStatus.NO_DATA and not result.findings


async def test_a_bad_query_is_reported_not_raised(prometheus: str, monkeypatch) -> None:
    scope = _scope(f"bad-{uuid.uuid4().hex[:8]}", "web", {})
    monkeypatch.setattr(metrics, "queries", lambda ns: [metrics.Query("memory", "sum(rate(x[5m]")])
    result = await metrics.gather(_context(scope, prometheus))
    assert result.status == AgentStatus.ERROR and "400" in result.message


def _hanging_prometheus() -> tuple[str, object]:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:  # accepts and never answers
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", server


async def test_investigation_completes_whatever_prometheus_does(kubeconfig, namespace: str, kubectl, prometheus: str) -> None:
    import json

    from aisre.api import InvestigationSpec
    from aisre.kube.reader import ClusterReader, connect
    from aisre.operator.investigation import investigate
    from conftest_helpers import deployment

    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment("web")))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")
    hanging, server = _hanging_prometheus()
    spec = InvestigationSpec.model_validate({"target": {"selector": {}}})
    client = connect(str(kubeconfig))
    try:
        outcomes = {}
        for label, url in (("real", prometheus), ("hanging", hanging), ("down", "http://127.0.0.1:9")):
            started = time.monotonic()
            outcome = await investigate(spec, namespace, ClusterReader(client), PrometheusSettings(url=url, query_timeout_s=1.0))
            outcomes[label] = (outcome, time.monotonic() - started)
    finally:
        await client.aclose()
        server.close()
    for label, (outcome, elapsed) in outcomes.items():
        assert outcome.ok and outcome.hypotheses[0].category.value == "NoFault", label
        agent = next(a for a in outcome.agents if a.agent == "metrics")
        if label == "real":
            assert agent.status == AgentStatus.NO_DATA  # a namespace without series: no finding
        else:
            assert agent.status == AgentStatus.ERROR and elapsed < 5.0, (label, elapsed)
            assert ("no answer within 1 s" if label == "hanging" else "cannot connect") in agent.message
