"""Ranking: fault patterns and the causal graph propose candidates; this merges them,
demotes symptoms that follow from a dependency, decides whether anything is wrong at
all, and calibrates the confidence of what remains."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aisre.api.evidence import Finding
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.ranking.calibration import calibrate
from aisre.ranking.candidate import Candidate, Link
from aisre.ranking.causal import origins
from aisre.ranking.evidence import EvidenceIndex, persistent_errors
from aisre.ranking.registry import candidates as pattern_candidates

# A client's own symptoms that a failing dependency explains.
SYMPTOM_CATEGORIES = {C.APPLICATION_ERROR, C.READINESS_PROBE_FAILURE, C.LIVENESS_PROBE_FAILURE,
                      C.INIT_CONTAINER_FAILURE, C.BAD_CONFIG_CHANGE}
NO_FAULT_THRESHOLD = 0.5
MAX_HYPOTHESES = 10


@dataclass(frozen=True)
class RankedHypothesis:
    category: C
    resource: str
    confidence: float
    score: float
    summary: str
    evidence_ids: tuple[str, ...]
    chain: tuple[Link, ...] = ()


def merge(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per (category, resource): the strongest, nudged up by corroboration."""
    merged: dict[tuple[str, str], Candidate] = {}
    for candidate in candidates:
        current = merged.get(candidate.key)
        if current is None:
            merged[candidate.key] = Candidate(candidate.category, candidate.resource, candidate.score, candidate.summary,
                                              list(candidate.evidence_ids), candidate.pattern, list(candidate.chain))
            continue
        if candidate.score > current.score:
            current.summary, current.pattern = candidate.summary, candidate.pattern
            current.chain = list(candidate.chain) or current.chain
        elif not current.chain:  # the causal chain that leads here, whoever scored higher
            current.chain = list(candidate.chain)
        current.score = min(0.97, max(current.score, candidate.score) + 0.02)
        current.evidence_ids.extend(i for i in candidate.evidence_ids if i not in current.evidence_ids)
    return sorted(merged.values(), key=lambda c: (-c.score, c.category.value, c.resource))


def rank(findings: Iterable[Finding], namespace: str) -> list[RankedHypothesis]:
    ix = EvidenceIndex(findings, namespace)
    candidates: list[Candidate] = pattern_candidates(ix)  # the aisre.patterns registry, built-ins first
    from_graph, demote, _ = origins(ix)
    for candidate in candidates + from_graph:
        factor = demote.get(candidate.resource)
        # A workload that fails because its own dependency fails is a link in the chain, not
        # its origin: its symptoms, and its being "down" for its clients, are demoted.
        if factor and candidate.category in SYMPTOM_CATEGORIES | {C.DEPENDENCY_FAILURE}:
            candidate.score *= factor
    ranked = merge(candidates + from_graph)
    _own_cause_first(ranked, ix)

    impacted = ix.impacted_owners()
    best = ranked[0].score if ranked else 0.0
    if not impacted and best < 0.8:
        # Nothing is hurting now: what patterns saw is history or noise. NoFault is only as
        # sure as the abnormal evidence nothing explains is small.
        unexplained = unexplained_abnormal(ix)
        healthy = [f.id for f in ix.kind("WorkloadHealthy")][:8]
        summary = "every workload in scope is available and healthy"
        if unexplained:
            summary += "; not explained: " + ", ".join(sorted({f.kind for f in unexplained}))
        no_fault = Candidate(C.NO_FAULT, "", max(0.3, 0.9 - 0.4 * best - UNEXPLAINED_PENALTY * len({f.kind for f in unexplained})),
                             summary, healthy + [f.id for f in unexplained][:4], "no_fault")
        ranked = sorted([no_fault, *ranked], key=lambda c: -c.score)
    elif not ranked or best < NO_FAULT_THRESHOLD:
        ranked.append(Candidate(C.NO_FAULT, "", 0.2, "no known fault pattern matches", [], "no_fault"))
        ranked.sort(key=lambda c: -c.score)
    return [
        RankedHypothesis(c.category, c.resource, calibrate(c.score), round(c.score, 3), c.summary, tuple(c.evidence_ids[:16]),
                         tuple(c.chain))
        for c in ranked[:MAX_HYPOTHESES]
    ]


OWN_CAUSE_DEMOTION = 0.9
OWN_CAUSE_SYMPTOMS = {C.READINESS_PROBE_FAILURE, C.LIVENESS_PROBE_FAILURE, C.INIT_CONTAINER_FAILURE}
# How a dependency's load shows (CPU, memory): "down because loaded" stays DependencyFailure.
LOAD_CATEGORIES = {C.CPU_SATURATION, C.MEMORY_LEAK, C.MEMORY_LIMIT_TOO_LOW}


def _own_cause_first(ranked: list[Candidate], ix: EvidenceIndex) -> None:
    """A dependency that is down for a cause of its own (its config, its image, its limits)
    is a link: the cause is the root, and "its clients fail because it is down" comes after."""
    specific: dict[str, float] = {}
    for c in ranked:
        # A probe or an init container of the dependency itself is its own cause (a client's
        # failing probes were demoted above when a dependency explains them).
        if c.category not in (SYMPTOM_CATEGORIES - OWN_CAUSE_SYMPTOMS) | LOAD_CATEGORIES | {C.DEPENDENCY_FAILURE, C.NO_FAULT}:
            specific[c.resource] = max(specific.get(c.resource, 0.0), c.score)
    for config in ix.kind("ConfigChanged"):  # a workload's changed config is its own cause too
        obj = f"{config.data.get('config_kind')}/{config.data.get('name')}"
        for user in config.data.get("used_by") or []:
            if obj in specific:
                specific[user] = max(specific.get(user, 0.0), specific[obj])
    for user, claim, _ in ix.edges("uses") + ix.edges("mounts"):  # and so is the volume it writes to
        if claim in specific:
            specific[user] = max(specific.get(user, 0.0), specific[claim])
    changed = False
    for c in ranked:
        if c.category == C.DEPENDENCY_FAILURE and specific.get(c.resource, 0.0) >= 0.6 and c.score >= specific[c.resource] * 0.9:
            c.score = round(c.score * OWN_CAUSE_DEMOTION, 4)
            changed = True
    if changed:
        ranked.sort(key=lambda c: (-c.score, c.category.value, c.resource))


UNEXPLAINED_PENALTY = 0.12  # per kind of abnormal evidence (error logs, restarts, warnings) nothing explains


def unexplained_abnormal(ix: EvidenceIndex) -> list[Finding]:
    """Abnormal evidence in a namespace where nothing is hurting: errors that go on in a
    current log, containers that restarted within the window, repeated Warning events."""
    out = [f for f in ix.kind("LogTemplates") if persistent_errors(f)]
    out += [f for f in ix.kind("ContainerTerminated") if not f.data.get("current") and f.data.get("recent")
            and int(f.data.get("restarts") or 0) >= 2]
    out += [f for f in ix.kind("Event") if f.data.get("type") == "Warning" and int(f.data.get("count") or 1) >= 5]
    return out
