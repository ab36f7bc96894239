"""Faults that only logs show: pods Running, even Ready, whose logs go on reporting that a
peer they name cannot be reached or refuses them (a NetworkPolicy, a Service that
selects nothing or targets the wrong port, a dependency that rejects their credentials).
No object's status changes, so detection reads the logs itself.

Every ``logs_interval`` seconds each watched namespace with pods is looked at the way an
Investigation would look at it, with the agents that need no Prometheus (logs, then
workloads, topology and changes where the logs show errors to a named peer that go on to
the end of the current log). The findings are ranked by the same ranking; a namespace
whose best hypothesis is a fault at or above ``logs_confidence`` becomes one Signal on the
resource that hypothesis names. Errors that stopped (a retry that succeeded) leave a clean
log tail and raise nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aisre.agents.base import AgentContext
from aisre.api.investigation import AgentStatus
from aisre.api.signal import Severity, SignalSource
from aisre.api.taxonomy import AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.reader import ClusterReader
from aisre.kube.scope import TargetNotFound, resolve_scope
from aisre.operator.detection.metric_watch import AGENT_DEADLINE_S, LOOKBACK, Verdict
from aisre.operator.detection.signals import make_signal
from aisre.operator.investigation import run_agent
from aisre.ranking.evidence import EvidenceIndex
from aisre.ranking.rank import rank

CONTEXT_AGENTS = (AgentName.WORKLOADS, AgentName.TOPOLOGY, AgentName.CHANGES)


async def look_at(reader: ClusterReader, namespace: str, now: dt.datetime, confidence: float) -> Verdict:
    try:
        scope = await resolve_scope(reader, namespace, selector={})
    except TargetNotFound:
        return Verdict(namespace, None, True, "namespace gone")
    if not scope.pods:
        return Verdict(namespace, None, True, "no pods")
    context = AgentContext(reader=reader, scope=scope, window_start=now - LOOKBACK, now=now)
    logs = await run_agent(AgentName.LOGS, context, AGENT_DEADLINE_S)
    if logs.status == AgentStatus.ERROR:
        return Verdict(namespace, None, False, f"logs failed: {logs.message}")
    persistent = [f for f in logs.findings if EvidenceIndex.persistent_peer_errors(f)]
    if not persistent:
        return Verdict(namespace, None, True, "no lasting errors to a named peer")
    others = await asyncio.gather(*(run_agent(name, context, AGENT_DEADLINE_S) for name in CONTEXT_AGENTS))
    hypotheses = rank([f for r in (logs, *others) for f in r.findings], namespace)
    top = hypotheses[0] if hypotheses else None
    if top is None:
        return Verdict(namespace, None, True, "no hypothesis")
    seen = f"{top.category.value} {top.resource} {top.confidence:.2f}"
    if top.category == C.NO_FAULT or top.confidence < confidence or "/" not in top.resource:
        return Verdict(namespace, None, True, f"below the bar: {seen}")
    kind, name = top.resource.split("/", 1)
    target = {"metadata": {"name": name, "namespace": namespace}}
    signal = make_signal(SignalSource.LOGS, top.category.value, target, kind, now, severity=Severity.HIGH,
                         message=top.summary, confidence=round(top.confidence, 2), evidence=list(top.evidence_ids[:8]))
    return Verdict(namespace, signal, True, seen)
