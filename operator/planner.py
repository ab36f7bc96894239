"""The planner: which agents to run for an investigation, decided by cheap rules.

A person may name agents in ``spec.agents``; otherwise every evidence agent that can
say something runs. Rules only drop agents that cannot contribute (no pod has ever
started a container → no logs to read), so a plan is never narrower than the evidence.

The agents come from the ``aisre.agents`` registry (``aisre.plugins``): the built-ins, and
third-party agents that configuration turned on. A third-party agent runs where its
settings allow the namespace and, when it declares symptoms, when the scope shows one of
them. An agent that failed to load or lacks a prerequisite is "skipped" with the reason,
so every Investigation's per-agent status says NO_DATA and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisre.api.plugins import PluginGroup, PluginState
from aisre.api.taxonomy import AgentName
from aisre.kube.scope import Scope
from aisre.plugins import Plugin, registry

DEFAULT_AGENTS = (AgentName.WORKLOADS, AgentName.EVENTS, AgentName.LOGS, AgentName.CHANGES, AgentName.TOPOLOGY)
NO_PROMETHEUS = "no Prometheus configured (AISRE_PROMETHEUS_URL)"


@dataclass(frozen=True)
class PlannedAgent:
    name: str
    reason: str


def _any_started(scope: Scope) -> bool:
    for pod in scope.pods:
        status = pod.get("status") or {}
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            state = cs.get("state") or {}
            if "running" in state or "terminated" in state or cs.get("restartCount") or cs.get("lastState"):
                return True
    return False


def symptoms_of(scope: Scope) -> set[str]:
    """What the scope shows, in the words agents' ``symptoms`` use: container waiting and
    terminated reasons (CrashLoopBackOff, ImagePullBackOff, OOMKilled, …), pod phases
    (Pending, Failed), Restarting, NotReady, Unschedulable, ContainerStarted."""
    found: set[str] = set()
    for pod in scope.pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Pending", "Failed"):
            found.add(status["phase"])
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") != "True":
                found.add("NotReady")
            if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                found.add("Unschedulable")
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            if cs.get("restartCount"):
                found.add("Restarting")
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                for detail in state.values():
                    if isinstance(detail, dict) and detail.get("reason"):
                        found.add(str(detail["reason"]))
    if _any_started(scope):
        found.add("ContainerStarted")
    return found


def _third_party(plugins: list[Plugin], scope: Scope, metrics: bool,
                 skipped: dict[str, str]) -> list[PlannedAgent]:
    planned = []
    shown = symptoms_of(scope) if any(p.meta.symptoms for p in plugins) else set()
    for plugin in plugins:
        if not plugin.settings.allows(scope.namespace):
            skipped[plugin.name] = f"not turned on for namespace {scope.namespace}"
        elif plugin.meta.needs.prometheus and not metrics:
            skipped[plugin.name] = NO_PROMETHEUS
        elif plugin.meta.symptoms and not shown & set(plugin.meta.symptoms):
            skipped[plugin.name] = f"none of its symptoms ({', '.join(plugin.meta.symptoms)}) in scope"
        else:
            matched = sorted(shown & set(plugin.meta.symptoms))
            planned.append(PlannedAgent(plugin.name, f"plugin {plugin.distribution}"
                                        + (f": symptoms {', '.join(matched)}" if matched else "")))
    return planned


def plan(requested: list[str] | None, scope: Scope, *, metrics: bool = False,
         agents: list[Plugin] | None = None) -> tuple[list[PlannedAgent], dict[str, str]]:
    """The agents to run, and those left out with the reason why. ``metrics``: a Prometheus
    is configured, so the metrics agent can run (it is in the default plan only then).
    ``agents``: the registry's agents (default: this process's registry, all states)."""
    agents = registry().of(PluginGroup.AGENTS, enabled_only=False) if agents is None else agents
    by_name = {p.name: p for p in agents}
    skipped: dict[str, str] = {}
    # Every agent that should run and cannot (failed to load, prerequisite missing): NO_DATA with why.
    for plugin in agents:
        if plugin.state in (PluginState.FAILED, PluginState.UNMET):
            skipped[plugin.name] = f"plugin {plugin.state.value}: {plugin.reason}"
    unavailable = {} if metrics else {AgentName.METRICS.value: NO_PROMETHEUS}
    if requested:
        chosen = [str(AgentName(name).value) if name in {a.value for a in AgentName} else str(name) for name in requested]
        why = "requested in spec.agents"
    else:
        chosen = [a.value for a in DEFAULT_AGENTS] + ([AgentName.METRICS.value] if metrics else [])
        why = "default plan"
        if not _any_started(scope):
            chosen.remove(AgentName.LOGS.value)
            skipped[AgentName.LOGS.value] = "no container in scope has started, so there are no logs"
    planned = []
    for name in chosen:
        plugin = by_name.get(name)
        if name in skipped:
            continue
        if plugin is None:
            skipped[name] = "no such agent is installed"
        elif not plugin.enabled:
            skipped[name] = f"plugin {plugin.state.value}: {plugin.reason}"
        elif name in unavailable:
            skipped[name] = unavailable[name]
        else:
            planned.append(PlannedAgent(name, why))
    if not requested:
        extra = [p for p in agents if p.enabled and not p.builtin and p.name not in chosen]
        planned += _third_party(extra, scope, metrics, skipped)
    return planned, skipped
