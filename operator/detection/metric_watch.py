"""Faults that only metrics show (CPU saturation, a memory leak, memory at its limit, an
error-rate or latency rise): no Kubernetes object changes, so detection asks Prometheus.

Every ``metrics_interval`` seconds each watched namespace with pods is looked at the way
an Investigation would look at it, with only the agents that read series and services
(metrics; then topology and changes where it found series): their findings are ranked by the same ranking, and a namespace whose
best hypothesis is a metric-borne cause at or above ``metrics_confidence`` becomes one
Signal on the resource that hypothesis names, once the next sweep names it again. The ranking already keeps noisy but normal
series (a traffic peak, a high but flat heap) at NoFault, so no separate alert rules are
needed. The Investigation the Incident starts then gathers everything else.

A namespace whose sweep fails (Prometheus down) keeps its previous signals: an outage of
the monitoring is not a recovery of the workload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

import structlog

from aisre.agents.base import AgentContext, PrometheusSettings
from aisre.api.investigation import AgentStatus
from aisre.api.signal import Severity, Signal, SignalSource
from aisre.api.taxonomy import AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.reader import ClusterReader
from aisre.kube.scope import TargetNotFound, resolve_scope
from aisre.operator.detection.signals import make_signal
from aisre.operator.investigation import run_agent
from aisre.ranking.rank import rank

log = structlog.get_logger("aisre.detection")

METRIC_CAUSES = {C.CPU_SATURATION, C.MEMORY_LEAK, C.MEMORY_LIMIT_TOO_LOW, C.DEPENDENCY_FAILURE, C.APPLICATION_ERROR}
# Read only when the metrics agent found series: the dependency graph and the rollouts
# ("after a rollout") the ranking needs to place what the series show.
CONTEXT_AGENTS = (AgentName.TOPOLOGY, AgentName.CHANGES)
LOOKBACK = dt.timedelta(hours=1)  # the baseline an Investigation compares with by default
AGENT_DEADLINE_S = 10.0
CONCURRENCY = 4


@dataclass(frozen=True)
class Verdict:
    """What one namespace's series say: a signal, nothing (``None``), or no answer."""

    namespace: str
    signal: Signal | None
    answered: bool
    why: str = ""  # what the series said, for the log when it changes


async def look_at(reader: ClusterReader, prometheus: PrometheusSettings, namespace: str, now: dt.datetime,
                  confidence: float) -> Verdict:
    try:
        scope = await resolve_scope(reader, namespace, selector={})
    except TargetNotFound:
        return Verdict(namespace, None, True, "namespace gone")
    if not scope.pods:
        return Verdict(namespace, None, True, "no pods")
    context = AgentContext(reader=reader, scope=scope, window_start=now - LOOKBACK, now=now, prometheus=prometheus)
    metrics = await run_agent(AgentName.METRICS, context, AGENT_DEADLINE_S)
    if metrics.status == AgentStatus.ERROR:
        return Verdict(namespace, None, False, f"metrics failed: {metrics.message}")
    if metrics.status != AgentStatus.SUCCESS:
        return Verdict(namespace, None, True, f"metrics {metrics.status.value}: {metrics.message}")  # nothing to say
    others = await asyncio.gather(*(run_agent(name, context, AGENT_DEADLINE_S) for name in CONTEXT_AGENTS))
    hypotheses = rank([f for r in (metrics, *others) for f in r.findings], namespace)
    top = hypotheses[0] if hypotheses else None
    if top is None:
        return Verdict(namespace, None, True, "no hypothesis")
    seen = f"{top.category.value} {top.resource} {top.confidence:.2f}"
    if top.category not in METRIC_CAUSES or top.confidence < confidence or "/" not in top.resource:
        return Verdict(namespace, None, True, f"below the bar: {seen}")
    kind, name = top.resource.split("/", 1)
    target = {"metadata": {"name": name, "namespace": namespace}}
    signal = make_signal(SignalSource.METRICS, top.category.value, target, kind, now, severity=Severity.HIGH,
                     message=top.summary, confidence=round(top.confidence, 2), evidence=list(top.evidence_ids[:8]))
    return Verdict(namespace, signal, True, seen)


def held(verdicts: Iterable[Verdict], first_seen: dict[str, tuple[str, dt.datetime]]) -> list[Verdict]:
    """A metric-borne signal counts once two sweeps in a row raise it, like an alert rule's
    ``for``: one look can catch series mid-ingestion or a scrape gap, and an Incident opened
    on it would be a false alarm. The first look is kept pending (``first_seen`` maps a
    namespace to the signal's key and when it was first raised; updated in place); the
    second makes it count from the first. A namespace whose sweep was not answered keeps its
    entry, as it keeps its signals."""
    out = []
    for verdict in verdicts:
        signal = verdict.signal
        if not verdict.answered:
            out.append(verdict)
        elif signal is None:
            first_seen.pop(verdict.namespace, None)
            out.append(verdict)
        elif (seen := first_seen.get(verdict.namespace)) is not None and seen[0] == signal.key:
            out.append(replace(verdict, signal=signal.model_copy(update={"since": seen[1]})))
        else:
            first_seen[verdict.namespace] = (signal.key, signal.time)
            out.append(replace(verdict, signal=None, why=f"{verdict.why}, to be confirmed by the next sweep"))
    return out


async def sweep(reader: ClusterReader, prometheus: PrometheusSettings, namespaces: Iterable[str], now: dt.datetime,
                confidence: float) -> list[Verdict]:
    """Every namespace looked at, at most ``CONCURRENCY`` at a time."""
    return await sweep_with(lambda ns: look_at(reader, prometheus, ns, now, confidence), namespaces, "metric sweep failed")


async def sweep_with(look: Callable[[str], Awaitable[Verdict]], namespaces: Iterable[str], failure: str) -> list[Verdict]:
    """``look`` at every namespace, at most ``CONCURRENCY`` at a time; one that fails is
    reported unanswered (its previous signals stay) and does not stop the others."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(namespace: str) -> Verdict:
        async with gate:
            try:
                return await look(namespace)
            except Exception as error:  # one namespace's trouble must not stop the sweep
                log.warning(failure, namespace=namespace, error=f"{type(error).__name__}: {error}"[:300])
                return Verdict(namespace, None, False, f"sweep failed: {type(error).__name__}")

    return list(await asyncio.gather(*(one(ns) for ns in sorted(set(namespaces)))))
