"""The planner: which agents to run for an investigation, decided by cheap rules.

A person may name agents in ``spec.agents``; otherwise every evidence agent that can
say something runs. Rules only drop agents that cannot contribute (no pod has ever
started a container → no logs to read), so a plan is never narrower than the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisre.api.taxonomy import AgentName
from aisre.kube.scope import Scope

DEFAULT_AGENTS = (AgentName.WORKLOADS, AgentName.EVENTS, AgentName.LOGS, AgentName.CHANGES, AgentName.TOPOLOGY)
NO_PROMETHEUS = "no Prometheus configured (AISRE_PROMETHEUS_URL)"


@dataclass(frozen=True)
class PlannedAgent:
    name: AgentName
    reason: str


def _any_started(scope: Scope) -> bool:
    for pod in scope.pods:
        status = pod.get("status") or {}
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            state = cs.get("state") or {}
            if "running" in state or "terminated" in state or cs.get("restartCount") or cs.get("lastState"):
                return True
    return False


def plan(requested: list[str] | None, scope: Scope, *, metrics: bool = False) -> tuple[list[PlannedAgent], dict[AgentName, str]]:
    """The agents to run, and those left out with the reason why. ``metrics``: a Prometheus
    is configured, so the metrics agent can run (it is in the default plan only then)."""
    skipped: dict[AgentName, str] = {}
    unavailable = {} if metrics else {AgentName.METRICS: NO_PROMETHEUS}
    if requested:
        chosen = [AgentName(name) for name in requested]
        why = "requested in spec.agents"
    else:
        chosen = list(DEFAULT_AGENTS) + ([AgentName.METRICS] if metrics else [])
        why = "default plan"
        if not _any_started(scope):
            chosen.remove(AgentName.LOGS)
            skipped[AgentName.LOGS] = "no container in scope has started, so there are no logs"
    planned = []
    for name in chosen:
        if name in unavailable:
            skipped[name] = unavailable[name]
        else:
            planned.append(PlannedAgent(name, why))
    return planned, skipped
