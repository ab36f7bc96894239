"""The metrics agent against a fake Prometheus (a local HTTP server): findings with ids,
queries, windows and values; NO_DATA for absent series; ERROR within the deadline when
Prometheus is down, slow or failing; and the patterns that turn its findings into causes."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from aisre.agents import metrics
from aisre.agents.base import AgentContext, PrometheusSettings
from aisre.api.investigation import AgentStatus
from aisre.api.taxonomy import AgentName
from aisre.kube.scope import Scope
from aisre.operator import investigation
from aisre.ranking.rank import rank

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
START = NOW - dt.timedelta(hours=1)

Responder = Callable[[str, dict[str, list[str]]], tuple[int, Any]]


@pytest.fixture
def prometheus() -> Iterator[Callable[[Responder], str]]:
    servers: list[ThreadingHTTPServer] = []

    def serve(respond: Responder) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                status, body = respond(url.path, parse_qs(url.query))
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (the slow case)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()


def deployment(name: str, limits: dict[str, str] | None = None, pods: int = 2) -> tuple[dict, list[dict]]:
    dep = {"kind": "Deployment", "metadata": {"name": name, "namespace": "ns", "uid": f"d-{name}"}, "spec": {}}
    rs = {"kind": "ReplicaSet", "metadata": {"name": f"{name}-7f", "namespace": "ns", "uid": f"r-{name}",
                                             "ownerReferences": [{"uid": f"d-{name}", "controller": True}]}}
    pod_list = [{"kind": "Pod", "metadata": {"name": f"{name}-7f-{i}", "namespace": "ns", "labels": {"app": name},
                                             "ownerReferences": [{"uid": f"r-{name}", "controller": True}]},
                 "spec": {"containers": [{"name": name, "resources": {"limits": limits or {}}}]}} for i in range(pods)]
    return dep, [rs, *pod_list]


def context(url: str | None, *workloads: tuple[dict, list[dict]], timeout: float = 2.0) -> AgentContext:
    pods = [o for _, objs in workloads for o in objs if o["kind"] == "Pod"]
    owners = [d for d, _ in workloads] + [o for _, objs in workloads for o in objs if o["kind"] == "ReplicaSet"]
    scope = Scope(namespace="ns", description="namespace ns", pods=pods, workloads=owners, whole_namespace=True)
    settings = PrometheusSettings(url=url, query_timeout_s=timeout) if url else None
    return AgentContext(reader=None, scope=scope, window_start=START, now=NOW, prometheus=settings)  # type: ignore[arg-type]


def matrix(labels: dict[str, str], fn: Callable[[float], float], step: int = 15) -> dict[str, Any]:
    start = START.timestamp() + 1800  # the series begin half-way through the window
    times = [start + i * step for i in range(int(1800 / step) + 1)]
    return {"metric": labels, "values": [[t, str(fn(t - NOW.timestamp()))] for t in times]}


def answering(table: dict[str, list[dict[str, Any]]]) -> Responder:
    """Answers each query with the series of the first table key it mentions."""
    def respond(path: str, params: dict[str, list[str]]) -> tuple[int, Any]:
        query = params["query"][0]
        for needle, result in table.items():
            if needle in query:
                return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": []}}
    return respond


def leak(t: float) -> float:  # t: seconds from now (negative)
    return 2.0e8 if t < -1500 else 2.0e8 + (t + 1500) * 2.0e5


async def test_a_leak_is_found_with_its_query_window_and_values(prometheus) -> None:
    dep, objs = deployment("cart", {"memory": "1Gi"})
    url = prometheus(answering({"container_memory_working_set_bytes": [
        matrix({"pod": "cart-7f-0", "container": "cart"}, leak), matrix({"pod": "cart-7f-1", "container": "cart"}, leak)]}))
    result = await metrics.gather(context(url, (dep, objs)))
    assert result.status == AgentStatus.SUCCESS
    growing = [f for f in result.findings if f.kind == "MemoryGrowing"]
    assert len(growing) == 1  # the two pods of one owner fold into one finding
    finding = growing[0]
    assert finding.id.startswith("met-") and finding.data["owner"] == "Deployment/cart"
    assert "container_memory_working_set_bytes" in finding.data["query"] and 'namespace="ns"' in finding.data["query"]
    assert finding.data["window"]["start"] == "2026-03-01T11:00:00Z" and len(finding.data["values"]) == 8
    assert finding.data["slope_per_s"] > 0 and finding.data["limit"] == 2**30 and finding.time is not None
    hypotheses = rank(result.findings, "ns")
    assert (hypotheses[0].category.value, hypotheses[0].resource) == ("MemoryLeak", "Deployment/cart")
    assert finding.id in hypotheses[0].evidence_ids


async def test_cpu_at_its_limit_is_saturation(prometheus) -> None:
    dep, objs = deployment("api", {"cpu": "500m"})
    url = prometheus(answering({"container_cpu_usage_seconds_total": [
        matrix({"pod": "api-7f-0", "container": "api"}, lambda t: 0.15 if t < -600 else 0.49)]}))
    result = await metrics.gather(context(url, (dep, objs)))
    assert [f.kind for f in result.findings] == ["CPUSaturated"]
    assert result.findings[0].data["ratio"] >= 0.9
    assert rank(result.findings, "ns")[0].category.value == "CPUSaturation"


async def test_a_batch_job_at_its_cpu_limit_is_working_not_saturated(prometheus) -> None:
    job = {"kind": "Job", "metadata": {"name": "report", "namespace": "ns", "uid": "j1"}, "spec": {}}
    pod = {"kind": "Pod", "metadata": {"name": "report-x1", "namespace": "ns", "labels": {},
                                       "ownerReferences": [{"uid": "j1", "controller": True}]},
           "spec": {"containers": [{"name": "report", "resources": {"limits": {"cpu": "1"}}}]}}
    url = prometheus(answering({"container_cpu_usage_seconds_total": [
        matrix({"pod": "report-x1", "container": "report"}, lambda t: 0.99)]}))
    result = await metrics.gather(context(url, (job, [pod])))
    assert result.status == AgentStatus.SUCCESS and result.findings == []


async def test_latency_seen_first_at_the_dependency_points_at_it(prometheus) -> None:
    front, front_objs = deployment("front")
    back, back_objs = deployment("back")
    url = prometheus(answering({"http_request_duration_seconds": [
        matrix({"pod": "back-7f-0"}, lambda t: 0.05 if t < -540 else 1.2),
        matrix({"pod": "front-7f-0"}, lambda t: 0.1 if t < -480 else 1.4)]}))
    result = await metrics.gather(context(url, (front, front_objs), (back, back_objs)))
    assert sorted(f.data["owner"] for f in result.findings if f.kind == "LatencyHigh") == ["Deployment/back", "Deployment/front"]
    edges = [investigation.Finding(id=f"e{i}", agent="topology", kind="Edge", summary="", data=d) for i, d in enumerate([
        {"src": "Deployment/front", "dst": "Service/back", "relation": "dependsOn"},
        {"src": "Service/back", "dst": "Deployment/back", "relation": "routesTo"}])]
    top = rank(result.findings + edges, "ns")[0]
    assert (top.category.value, top.resource) == ("DependencyFailure", "Deployment/back")
    # Without the edge nothing says which called which: no dependency is invented.
    assert rank(result.findings, "ns")[0].category.value != "DependencyFailure"


async def test_noisy_but_normal_series_give_success_without_findings(prometheus) -> None:
    dep, objs = deployment("web", {"memory": "1Gi", "cpu": "1"})
    wobble = [0.9, 1.1, 1.0, 0.95, 1.05]
    url = prometheus(answering({
        "container_memory_working_set_bytes": [matrix({"pod": "web-7f-0", "container": "web"},
                                                      lambda t: 3e8 * wobble[int(-t / 15) % 5])],
        "container_cpu_usage_seconds_total": [matrix({"pod": "web-7f-0", "container": "web"},
                                                     lambda t: 0.3 * wobble[int(-t / 15) % 5])]}))
    result = await metrics.gather(context(url, (dep, objs)))
    assert result.status == AgentStatus.SUCCESS and result.findings == []
    assert "series" in result.message


async def test_absent_series_are_no_data_not_a_finding(prometheus) -> None:
    dep, objs = deployment("web")
    url = prometheus(answering({}))
    result = await metrics.gather(context(url, (dep, objs)))
    assert result.status == AgentStatus.NO_DATA and not result.findings
    # Series of pods that are not in scope (another workload's) are not mapped to it either.
    other = prometheus(answering({"container_memory_working_set_bytes": [
        matrix({"pod": "unrelated-0", "container": "x"}, leak)]}))
    assert (await metrics.gather(context(other, (dep, objs)))).status == AgentStatus.NO_DATA


async def test_no_prometheus_configured_is_no_data() -> None:
    dep, objs = deployment("web")
    result = await metrics.gather(context(None, (dep, objs)))
    assert result.status == AgentStatus.NO_DATA and "no Prometheus" in result.message


async def test_prometheus_errors_are_error_with_the_reason(prometheus) -> None:
    dep, objs = deployment("web")
    url = prometheus(lambda path, params: (503, {"status": "error", "error": "overloaded"}))
    result = await metrics.gather(context(url, (dep, objs)))
    assert result.status == AgentStatus.ERROR and "503" in result.message and url in result.message


async def test_prometheus_down_is_error(prometheus) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    dep, objs = deployment("web")
    result = await metrics.gather(context(f"http://127.0.0.1:{port}", (dep, objs)))
    assert result.status == AgentStatus.ERROR and "cannot connect" in result.message and "refused" in result.message


async def test_a_hanging_prometheus_costs_only_the_query_timeout(prometheus) -> None:
    def hang(path: str, params: dict[str, list[str]]) -> tuple[int, Any]:
        time.sleep(5)
        return 200, {"status": "success", "data": {"result": []}}
    dep, objs = deployment("web")
    url = prometheus(hang)
    started = time.monotonic()
    result = await metrics.gather(context(url, (dep, objs), timeout=0.5))
    elapsed = time.monotonic() - started
    assert result.status == AgentStatus.ERROR and "no answer within 0.5 s" in result.message
    assert elapsed < 1.5  # the first round of queries times out; the rest are not sent
    # And the investigation's own deadline holds whatever the agent's timeout is.
    started = time.monotonic()
    result = await investigation.run_agent(AgentName.METRICS, context(url, (dep, objs), timeout=30), deadline=1.0)
    assert result.status == AgentStatus.ERROR and "timed out after 1.0 s" in result.message
    assert time.monotonic() - started < 2.0


async def test_some_queries_failing_keeps_the_rest(prometheus) -> None:
    dep, objs = deployment("cart", {"memory": "1Gi"})
    good = answering({"container_memory_working_set_bytes": [matrix({"pod": "cart-7f-0", "container": "cart"}, leak)]})

    def respond(path: str, params: dict[str, list[str]]) -> tuple[int, Any]:
        if "http_request" in params["query"][0]:
            return 400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return good(path, params)
    url = prometheus(respond)
    result = await metrics.gather(context(url, (dep, objs)))
    assert result.status == AgentStatus.SUCCESS and any(f.kind == "MemoryGrowing" for f in result.findings)
    assert any("failed" in t and "400" in t for t in result.truncated)


def test_quantities_and_spec_limits() -> None:
    assert metrics.parse_quantity("512Mi") == 512 * 2**20 and metrics.parse_quantity("500m") == 0.5
    assert metrics.parse_quantity("1.5") == 1.5 and metrics.parse_quantity("bogus") is None
    _, objs = deployment("w", {"memory": "1Gi", "cpu": "2"}, pods=1)
    assert metrics.spec_limits(o for o in objs if o["kind"] == "Pod") == {
        ("w-7f-0", "w", "memory"): 2**30, ("w-7f-0", "w", "cpu"): 2.0}


def test_prometheus_settings_from_the_environment(tmp_path) -> None:
    from aisre.operator.config import OperatorConfig

    assert OperatorConfig.from_env({}).prometheus is None  # no URL: no metrics agent
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    settings = OperatorConfig.from_env({"AISRE_PROMETHEUS_URL": "https://prom.monitoring.svc:9090/",
                                        "AISRE_PROMETHEUS_BEARER_TOKEN_FILE": str(token),
                                        "AISRE_PROMETHEUS_INSECURE_SKIP_VERIFY": "true",
                                        "AISRE_PROMETHEUS_TIMEOUT": "2.5"}).prometheus
    assert settings is not None and settings.url == "https://prom.monitoring.svc:9090"
    assert settings.bearer_token == "s3cret" and not settings.verify_tls and settings.query_timeout_s == 2.5
    assert "s3cret" not in repr(settings)  # the token never reaches a log line


def test_auth_is_passed_to_the_client() -> None:
    bearer = metrics._client(PrometheusSettings(url="http://p:9090", bearer_token="abc"))
    assert bearer.headers == {"Authorization": "Bearer abc"}
    basic = metrics._client(PrometheusSettings(url="http://p:9090", username="u", password="p", verify_tls=False))
    assert basic.auth == ("u", "p") and basic._session.verify is False


def test_range_query_is_the_agents_public_seam_and_names_an_unreachable_prometheus() -> None:
    # The forecast loop reads Prometheus through this function, never through the agent's
    # private client: a refused connection comes back as the agent's own short reason.
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(metrics.QueryFailed) as failed:
        metrics.range_query(PrometheusSettings(url="http://127.0.0.1:9", query_timeout_s=2.0), "up",
                            now - dt.timedelta(minutes=5), now, 60.0)
    assert failed.value.unreachable and "cannot connect" in str(failed.value)
