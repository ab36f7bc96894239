"""The metrics agent: Prometheus series of the scope's pods, compared with their own
baseline, as findings the fault patterns read (CPU saturation, memory growth and memory
near its limit, error-rate and latency rises, with when each began).

Who it talks to: the Prometheus named by ``ctx.prometheus`` (through the synchronous
``prometheus-api-client``, run in threads, each query bounded by its own timeout, so the
agent's deadline holds even when Prometheus hangs). Series are mapped to the
investigation's objects by their ``namespace`` and ``pod`` labels; the pods' own specs
give the limits when kube-state-metrics does not.

Statuses: no series for the scope → NO_DATA (never a finding made up from nothing);
Prometheus unreachable, slow or answering errors on every query → ERROR with the reason;
some queries failing → the rest is used and the failures are listed in ``truncated``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aisre.agents import anomaly
from aisre.agents.base import AgentContext, Findings, PrometheusSettings, resource_of
from aisre.api.evidence import AgentResult
from aisre.api.investigation import AgentStatus
from aisre.kube.scope import ref

AGENT = "metrics"
MAX_POINTS = 300  # per series and query; the step grows with the window
MIN_STEP_S = 15
RATE_WINDOW = "2m"
MAX_SERIES = 400  # per query; more is cut and reported
CONCURRENCY = 4
# Sane defaults, not tuned to any scenario: saturation is the last five minutes at or over
# 90 % of the CPU limit or a quarter of CFS periods throttled; "near the limit" is 90 %.
RECENT_S = 300.0
CPU_SATURATED = 0.9
THROTTLED = 0.25
MEMORY_NEAR_LIMIT = 0.9
ERROR_RATIO_MIN = 0.05
LATENCY_MIN_RELATIVE = 0.5


@dataclass(frozen=True)
class Query:
    metric: str  # memory | cpu | throttling | memory_limit | cpu_limit | restarts | requests | error_ratio | latency
    promql: str
    by_container: bool = True


# HTTP request counters and latency histograms under the names the common instrumentations
# use: the Prometheus client convention, Micrometer (Spring Boot), OpenTelemetry semconv.
REQUESTS = "http_requests_total|http_server_requests_seconds_count|http_server_request_duration_seconds_count"
LATENCY_BUCKETS = "http_request_duration_seconds_bucket|http_server_requests_seconds_bucket" \
    "|http_server_request_duration_seconds_bucket"
STATUS_LABELS = ("code", "status", "http_response_status_code")


def queries(namespace: str) -> list[Query]:
    """The standard series (cAdvisor, kube-state-metrics, HTTP RED) for one namespace."""
    ns = f'namespace="{namespace}"'
    requests = f'{{__name__=~"{REQUESTS}", {ns}}}'
    errors = " or ".join(f'sum by (pod) (rate({{__name__=~"{REQUESTS}", {ns}, {label}=~"5.."}}[{RATE_WINDOW}]))'
                         for label in STATUS_LABELS)
    # Not `container!=""`: a series written without the label is still the pod's; the
    # pod-level cgroup (container="") is dropped later where per-container series exist.
    cont = f'{ns}, container!="POD"'
    return [
        Query("memory", f"max by (pod, container) (container_memory_working_set_bytes{{{cont}}})"),
        Query("cpu", f"sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{cont}}}[{RATE_WINDOW}]))"),
        Query("throttling", f"sum by (pod, container) (rate(container_cpu_cfs_throttled_periods_total{{{cont}}}[{RATE_WINDOW}]))"
                            f" / sum by (pod, container) (rate(container_cpu_cfs_periods_total{{{cont}}}[{RATE_WINDOW}]))"),
        Query("memory_limit", f'max by (pod, container) (kube_pod_container_resource_limits{{{ns}, resource="memory"}})'),
        Query("cpu_limit", f'max by (pod, container) (kube_pod_container_resource_limits{{{ns}, resource="cpu"}})'),
        Query("restarts", f"max by (pod, container) (kube_pod_container_status_restarts_total{{{ns}}})"),
        Query("requests", f"sum by (pod) (rate({requests}[{RATE_WINDOW}]))", by_container=False),
        Query("error_ratio", f"({errors}) / sum by (pod) (rate({requests}[{RATE_WINDOW}]))", by_container=False),
        Query("latency", f'histogram_quantile(0.99, sum by (pod, le) (rate({{__name__=~"{LATENCY_BUCKETS}", {ns}}}'
                         f'[{RATE_WINDOW}]))) or max by (pod) (http_request_duration_seconds{{{ns}, quantile="0.99"}})',
                         by_container=False),
    ]


class QueryFailed(Exception):
    """One query could not be answered (unreachable, timed out, HTTP or PromQL error)."""

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable  # timed out or no connection (not a bad query)


def _client(settings: PrometheusSettings) -> Any:
    # Imported here: the client pulls in requests, matplotlib-free but not light.
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    headers = {"Authorization": f"Bearer {settings.bearer_token}"} if settings.bearer_token else None
    auth = (settings.username, settings.password or "") if settings.username else None
    # No retries: a retry loop would outlast the deadline; the investigation is the retry.
    return PrometheusConnect(url=settings.url, headers=headers, disable_ssl=not settings.verify_tls,
                             retry=Retry(total=0, raise_on_status=False), auth=auth,
                             timeout=settings.query_timeout_s)


def _failure(error: Exception, timeout: float) -> QueryFailed:
    """A short reason a person can act on, instead of urllib3's nested retry message."""
    text = str(error)
    if "timed out" in text.lower() or "Timeout" in type(error).__name__:
        return QueryFailed(f"no answer within {timeout:g} s (timed out)", unreachable=True)
    refused = re.search(r"(Connection refused|Name or service not known|No route to host|Connection reset)", text)
    if refused:
        return QueryFailed(f"cannot connect ({type(error).__name__}: {refused.group(1)})", unreachable=True)
    return QueryFailed(f"{type(error).__name__}: {text[:200]}")


def _range(client: Any, promql: str, start: dt.datetime, end: dt.datetime, step: str,
           timeout: float) -> list[dict[str, Any]]:
    try:
        return list(client.custom_query_range(promql, start_time=start, end_time=end, step=step))
    except Exception as error:  # requests / client errors: all mean "no answer"
        raise _failure(error, timeout) from error


def _run_query(client: Any, query: Query, start: dt.datetime, end: dt.datetime, step: int,
               timeout: float) -> list[dict[str, Any]]:
    return _range(client, query.promql, start, end, str(step), timeout)


def range_query(settings: PrometheusSettings, promql: str, start: dt.datetime, end: dt.datetime,
                step_s: float) -> list[dict[str, Any]]:
    """One range query with this agent's client (auth, TLS, timeout, no retries), its series
    as Prometheus returns them (``metric``, ``values``); ``QueryFailed`` with a short reason
    when there is no answer. Blocking: run it in a thread. The seam other modules (the
    forecast loop) read Prometheus through."""
    return _range(_client(settings), promql, start, end, f"{step_s:g}s", settings.query_timeout_s)


@dataclass
class SeriesData:
    metric: str
    pod: str
    container: str
    times: list[float]
    values: list[float]
    query: str


@dataclass
class Fetched:
    series: list[SeriesData] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)
    unreachable: str = ""  # why the remaining queries were not sent


async def fetch(settings: PrometheusSettings, namespace: str, start: dt.datetime, end: dt.datetime) -> Fetched:
    span = max((end - start).total_seconds(), MIN_STEP_S)
    step = max(MIN_STEP_S, math.ceil(span / MAX_POINTS))
    client = _client(settings)
    gate = asyncio.Semaphore(CONCURRENCY)
    out = Fetched()

    async def one(query: Query) -> None:
        async with gate:
            if out.unreachable:  # one query timed out or could not connect: the rest would too
                out.failures[query.metric] = f"skipped: {out.unreachable}"
                return
            try:
                raw = await asyncio.wait_for(asyncio.to_thread(_run_query, client, query, start, end, step,
                                                               settings.query_timeout_s),
                                             timeout=settings.query_timeout_s + 0.5)
            except TimeoutError:
                out.failures[query.metric] = out.unreachable = f"no answer within {settings.query_timeout_s:g} s"
                return
            except QueryFailed as error:
                out.failures[query.metric] = str(error)
                if error.unreachable:
                    out.unreachable = str(error)
                return
        if len(raw) > MAX_SERIES:
            out.cut.append(f"metrics: {query.metric}: kept {MAX_SERIES} of {len(raw)} series")
            raw = raw[:MAX_SERIES]
        for item in raw:
            labels = item.get("metric") or {}
            points = [(float(t), float(v)) for t, v in item.get("values") or [] if _finite(v)]
            if not points or not labels.get("pod"):
                continue
            out.series.append(SeriesData(query.metric, labels["pod"], labels.get("container", "") if query.by_container else "",
                                         [p[0] for p in points], [p[1] for p in points], query.promql))

    try:
        await asyncio.gather(*(one(q) for q in queries(namespace)))
    finally:
        client.close()
    return out


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


_QUANTITY = re.compile(r"^([0-9.]+(?:e[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_quantity(text: Any) -> float | None:
    match = _QUANTITY.match(str(text or "").strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def spec_limits(pods: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """(pod, container, "memory"|"cpu") → limit, from the pods' specs."""
    out = {}
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            for resource in ("memory", "cpu"):
                value = parse_quantity(limits.get(resource))
                if value:
                    out[(pod["metadata"]["name"], container.get("name", ""), resource)] = value
    return out


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tail(values: list[float], n: int = 8) -> list[float]:
    return [float(f"{v:.4g}") for v in values[-n:]]


class Observer:
    """Turns fetched series into findings, one per (owner, container, signal)."""

    def __init__(self, ctx: AgentContext, fetched: Fetched, out: Findings, step_window: dict[str, Any]) -> None:
        self.ctx, self.out, self.window = ctx, out, step_window
        self.pods = {p["metadata"]["name"]: p for p in ctx.scope.pods}
        self.limits = spec_limits(ctx.scope.pods)
        self.by: dict[str, dict[tuple[str, str], SeriesData]] = {}
        for s in fetched.series:
            self.by.setdefault(s.metric, {})[(s.pod, s.container)] = s
        for per_metric in self.by.values():  # cAdvisor's pod-level cgroup repeats its containers' sum
            with_containers = {pod for pod, container in per_metric if container}
            for key in [k for k in per_metric if not k[1] and k[0] in with_containers]:
                del per_metric[key]
        self.mapped = 0

    def owner_of(self, pod: str) -> dict[str, Any] | None:
        obj = self.pods.get(pod)
        if obj is not None:
            return self.ctx.scope.top_owner(obj)
        # A pod that is gone (restarted, replaced): its name still starts with its owner's.
        for workload in self.ctx.scope.workloads:
            name = workload["metadata"]["name"]
            if workload["kind"] in ("Deployment", "StatefulSet", "DaemonSet") and pod.startswith(name + "-"):
                return workload
        return None

    def note(self, kind: str, series: SeriesData, summary: str, *, onset: float | None = None, **data: Any) -> None:
        """One finding per (owner, container, kind): the first pod that shows it speaks for its owner."""
        owner = self.owner_of(series.pod)
        if owner is None:
            return
        owner_ref = ref(owner)
        where = f"{owner_ref}{', container ' + series.container if series.container else ''}, pod {series.pod}"
        self.out.add(kind, f"{summary} ({where})", key=(owner_ref, series.container, kind), resource=resource_of(owner),
                     time=dt.datetime.fromtimestamp(onset, dt.UTC) if onset else None, owner=owner_ref, pod=series.pod,
                     container=series.container, query=series.query, window=self.window, values=_tail(series.values),
                     onset_at=_iso(onset), **data)

    def _limit(self, metric: str, s: SeriesData) -> float | None:
        resource = "memory" if metric == "memory" else "cpu"
        ksm = self.by.get(f"{resource}_limit", {}).get((s.pod, s.container))
        if ksm and ksm.values and ksm.values[-1] > 0:
            return ksm.values[-1]
        return self.limits.get((s.pod, s.container, resource))

    def observe(self) -> None:
        for metric in ("memory", "cpu", "throttling", "error_ratio", "latency", "requests", "restarts"):
            for s in self.by.get(metric, {}).values():
                if self.owner_of(s.pod) is not None:
                    self.mapped += 1
                getattr(self, f"_{metric}")(s)

    def _assess(self, s: SeriesData, **kw: Any) -> anomaly.Anomaly | None:
        return anomaly.assess(s.times, s.values, recent_s=RECENT_S, **kw)

    def _recent(self, s: SeriesData) -> float:
        return anomaly.current(s.times, s.values, RECENT_S)

    def _memory(self, s: SeriesData) -> None:
        a = self._assess(s)
        limit = self._limit("memory", s)
        recent = self._recent(s)
        ratio = recent / limit if limit else None
        growth = anomaly.sustained_growth(s.times, s.values, recent_s=RECENT_S)
        if growth is not None:
            to_limit = (limit - s.values[-1]) / growth.slope if limit else None
            began = a.onset if a is not None and a.kind != "none" else s.times[0]
            self.note("MemoryGrowing", s, f"working set climbs steadily ({growth.slope * 60:.4g} bytes/min, r² "
                      f"{growth.r2:.2f}, +{growth.rise:.4g} bytes in the window) to {recent:.4g} bytes", method="slope",
                      slope_per_s=growth.slope, r2=round(growth.r2, 3), rise=growth.rise, recent=recent,
                      z=round(a.z, 2) if a else None, limit=limit, ratio=round(ratio, 3) if ratio else None,
                      seconds_to_limit=round(to_limit) if to_limit is not None else None, onset=began)
        if ratio is not None and ratio >= MEMORY_NEAR_LIMIT:
            self.note("MemoryNearLimit", s, f"working set {recent:.4g} bytes is {ratio:.0%} of the {limit:.4g} byte limit",
                      method="usage_vs_limit", ratio=round(ratio, 3), limit=limit, recent=recent,
                      growing=growth is not None,
                      onset=a.onset if a and a.kind != "none" else None)

    def _batch(self, s: SeriesData) -> bool:
        # A Job using all the CPU it is given is doing its work; nobody waits on its latency.
        owner = self.owner_of(s.pod)
        return owner is not None and owner.get("kind") in ("Job", "CronJob")

    def _cpu(self, s: SeriesData) -> None:
        limit = self._limit("cpu", s)
        if not limit or self._batch(s):
            return
        recent = self._recent(s)
        ratio = recent / limit
        if ratio >= CPU_SATURATED:
            a = self._assess(s)
            self.note("CPUSaturated", s, f"CPU use {recent:.3g} cores is {ratio:.0%} of the {limit:.3g} core limit",
                      method="usage_vs_limit", ratio=round(ratio, 3), limit=limit, recent=recent,
                      onset=a.onset if a and a.kind != "none" else None)

    def _throttling(self, s: SeriesData) -> None:
        recent = self._recent(s)
        if recent >= THROTTLED and not self._batch(s):
            a = self._assess(s)
            self.note("CPUThrottled", s, f"{recent:.0%} of CPU periods are throttled", method="throttling_ratio",
                      ratio=round(recent, 3), onset=a.onset if a and a.kind != "none" else None)

    def _error_ratio(self, s: SeriesData) -> None:
        a = self._assess(s)
        if a is None or a.kind == "none" or a.z <= 0 or a.recent < ERROR_RATIO_MIN:
            return
        self.note("ErrorRateHigh", s, f"error ratio rose from {a.baseline.median:.2%} to {a.recent:.2%}",
                  method="robust_z_change_point", baseline=a.baseline.median, recent=a.recent, z=round(a.z, 2), onset=a.onset)

    def _latency(self, s: SeriesData) -> None:
        a = self._assess(s, min_relative=LATENCY_MIN_RELATIVE)
        if a is None or a.kind == "none" or a.z <= 0:
            return
        self.note("LatencyHigh", s, f"p99 latency rose from {a.baseline.median:.3g} s to {a.recent:.3g} s",
                  method="robust_z_change_point", baseline=a.baseline.median, recent=a.recent, z=round(a.z, 2), onset=a.onset)

    def _requests(self, s: SeriesData) -> None:
        a = self._assess(s, min_relative=0.5)
        if a is None or a.kind == "none" or a.z >= 0:
            return  # more traffic is not a fault; a collapse is worth knowing
        self.note("RequestRateDrop", s, f"request rate fell from {a.baseline.median:.3g}/s to {a.recent:.3g}/s",
                  method="robust_z_change_point", baseline=a.baseline.median, recent=a.recent, z=round(a.z, 2), onset=a.onset)

    def _restarts(self, s: SeriesData) -> None:
        rise = s.values[-1] - s.values[0]
        if rise >= 1:
            self.note("RestartsIncreasing", s, f"{rise:.0f} restarts in the window", method="counter_increase",
                      restarts=rise, onset=next((t for t, v in zip(s.times, s.values, strict=True) if v > s.values[0]), None))


async def gather(ctx: AgentContext) -> AgentResult:
    settings = ctx.prometheus
    if settings is None:
        return AgentResult(agent=AGENT, status=AgentStatus.NO_DATA, message="no Prometheus configured")
    if not ctx.scope.pods:
        return AgentResult(agent=AGENT, status=AgentStatus.NO_DATA, message="no pods in scope")
    start, end = ctx.window_start, ctx.now
    fetched = await fetch(settings, ctx.scope.namespace, start, end)
    total = len(queries(ctx.scope.namespace))
    if len(fetched.failures) == total:
        reason = next(iter(fetched.failures.values()))
        return AgentResult(agent=AGENT, status=AgentStatus.ERROR, message=f"Prometheus at {settings.url}: {reason}"[:500])
    out = Findings(AGENT, ctx.bounds.findings_per_agent)
    window = {"start": _iso(start.timestamp()), "end": _iso(end.timestamp()), "recent_s": RECENT_S}
    observer = Observer(ctx, fetched, out, window)
    observer.observe()
    cut = fetched.cut + [f"metrics: query {m} failed: {why}"[:256] for m, why in sorted(fetched.failures.items())]
    if not observer.mapped:
        return AgentResult(agent=AGENT, status=AgentStatus.NO_DATA, truncated=cut,
                           message=f"no series for the pods in scope in {ctx.scope.namespace}")
    result = out.result(message=f"{observer.mapped} series, {len(out.items)} anomalies", truncated=cut)
    result.status = AgentStatus.SUCCESS  # series were read: "nothing abnormal" is an answer
    return result
