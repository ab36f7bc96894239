"""Faults that only logs show, or that a change made without anything crashing: pods
Running, even Ready, whose logs go on reporting errors (a peer that cannot be reached or
refuses them, a steady share of error-level lines), or a rollout that left a workload
running the wrong program. No object's status says so, so detection reads the logs itself.

Every ``logs_interval`` seconds each watched namespace with pods is looked at: first its
logs (the logs agent). Where they show errors that last to the end of a current log, or a
workload of the namespace changed within ``post_change_window``, the namespace is looked
at the way an Investigation looks at it (workloads, events, topology and changes as well)
and ranked by the same ranking; a best hypothesis that is a fault at or above
``logs_confidence`` becomes one Signal on the resource it names. Errors that stopped (a
retry that succeeded) leave a clean log tail and raise nothing, and a namespace whose
trouble the watches already report is left to them (one Incident per fault).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aisre.agents.base import AgentContext
from aisre.api.evidence import REFUSAL_SIGNATURES, Finding
from aisre.api.investigation import AgentStatus
from aisre.api.signal import Severity, SignalSource
from aisre.api.taxonomy import AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.reader import ClusterReader
from aisre.kube.scope import TargetNotFound, resolve_scope
from aisre.operator.detection.metric_watch import AGENT_DEADLINE_S, LOOKBACK, Verdict
from aisre.operator.detection.signals import make_signal
from aisre.operator.investigation import run_agent
from aisre.ranking.evidence import PERSISTENT_PEER_ERRORS, EvidenceIndex, persistent_errors
from aisre.ranking.rank import rank

CONTEXT_AGENTS = (AgentName.WORKLOADS, AgentName.EVENTS, AgentName.TOPOLOGY, AgentName.CHANGES)
# Refusals that go on to the end of a log: a peer refusing the workload, or the API server
# refusing its ServiceAccount (RBAC "forbidden": the workload cannot do its job either).
LASTING_REFUSALS = (*REFUSAL_SIGNATURES, "forbidden")


def lasting_errors(findings: list[Finding]) -> list[Finding]:
    """Log findings that say something goes wrong now: errors to a peer (named, or refusing
    without a name), the API server refusing the workload, or a steady share of error lines,
    lasting to the end of a current log."""
    out = []
    for finding in findings:
        data = finding.data
        if EvidenceIndex.persistent_peer_errors(finding) or persistent_errors(finding):
            out.append(finding)
        elif (finding.kind == "LogSignature" and not data.get("previous") and data.get("signature") in LASTING_REFUSALS
              and int(data.get("count") or 0) >= PERSISTENT_PEER_ERRORS and int(data.get("recent") or 0) >= 1):
            out.append(finding)
    return out


async def look_at(reader: ClusterReader, namespace: str, now: dt.datetime, confidence: float,
                  changed_recently: bool = False) -> Verdict:
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
    if not lasting_errors(logs.findings) and not changed_recently:
        return Verdict(namespace, None, True, "no lasting errors, no recent change")
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
