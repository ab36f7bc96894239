"""Running an Investigation: resolve the target, plan, gather evidence with the agents
concurrently (each under its own deadline), rank hypotheses, and build the status.

An agent that fails or times out costs the investigation that agent's evidence, never
the investigation. A target that does not exist or may not be read ends the
investigation with a condition that says so — no retries.

After the ranking, the optional LLM step (``llm_step``) may plan an ambiguous case and
narrate; it never changes the recommended actions, which come from the catalog for the
best deterministic hypothesis.

Each step is a span of the Investigation's trace (``aisre.tracing``; no-ops when tracing is
off): one per agent, the deterministic ranking, the LLM step (its calls are spans of
their own, in ``aisre.llm.client``) and the choice of actions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aisre.agents.base import AgentContext, PrometheusSettings
from aisre.api.evidence import AgentResult, Finding
from aisre.api.investigation import AgentStatus, HypothesisSource, InvestigationSpec
from aisre.api.plugins import PluginGroup
from aisre.api.meta import duration_seconds
from aisre.api.taxonomy import AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.reader import ClusterReader, KubeAccessError
from aisre.kube.scope import Scope, TargetNotFound, resolve_scope
from aisre.llm.planner import AgentCall
from aisre.llm.validate import LLMHypothesis
from aisre.operator.forecast_step import Forecast, lead_with_forecast
from aisre.operator.llm_step import LLMService, LLMStep, new_hypotheses, run_llm_step
from aisre.operator import plugin_agents
from aisre.operator.planner import plan
from aisre.plugins import metered, refused, registry
from aisre.operator.recommend import advise, recommend
from aisre.ranking.rank import MAX_HYPOTHESES, RankedHypothesis, rank
from aisre.redact import redact, redact_text
from aisre.tracing import annotate, fail, span

# The built-in agents, loaded from their entry points (``aisre.agents``, agents/builtin.py);
# third-party agents are looked up in the registry when planned (operator/plugin_agents.py).
AGENTS: dict[AgentName, Callable[[AgentContext], Awaitable[AgentResult]]] = {
    AgentName(p.name): p.obj.gather for p in registry().of(PluginGroup.AGENTS, enabled_only=False)
    if p.builtin and p.obj is not None and p.name in {a.value for a in AgentName}
}
MAX_EVIDENCE = 60
MAX_DATA_CHARS = 1500


@dataclass
class Outcome:
    """What an investigation produced, ready to be written as status."""

    ok: bool
    reason: str
    message: str
    target: str = ""
    hypotheses: list[RankedHypothesis] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    agents: list[AgentResult] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    llm: LLMStep = field(default_factory=LLMStep)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _window_start(spec: InvestigationSpec, now: dt.datetime) -> dt.datetime:
    window = spec.window
    if window and window.start:
        return window.start
    seconds = duration_seconds(window.lookback) if window and window.lookback else 3600
    return now - dt.timedelta(seconds=seconds)


def _outcome(status: AgentStatus | str) -> str:
    return {AgentStatus.SUCCESS.value: "success", AgentStatus.NO_DATA.value: "no_data"}.get(AgentStatus(status).value, "error")


async def _call(name: str, context: AgentContext, deadline: float) -> AgentResult:
    """One agent's call, metered (calls, errors, latency, cost) and bounded by its rate limit
    and deadline (the Investigation's, or the plugin's own when shorter)."""
    builtin = AGENTS.get(name)  # type: ignore[call-overload]  # AgentName is a str enum: names look it up
    plugin = registry().get(PluginGroup.AGENTS, name)
    if builtin is None and (plugin is None or not plugin.enabled):
        why = f"plugin {plugin.state.value}: {plugin.reason}" if plugin is not None else "no such agent is installed"
        return AgentResult(agent=name, status=AgentStatus.NO_DATA, message=why)
    if plugin is not None and not plugin.limit.take():
        refused(PluginGroup.AGENTS.short, name)
        return AgentResult(agent=name, status=AgentStatus.NO_DATA,
                           message=f"rate limit of {plugin.meta.rate_limit_per_minute} calls a minute reached")
    cost = plugin.meta.cost_per_call_usd if plugin is not None else 0.0
    timeout = min(deadline, plugin.meta.timeout_seconds or deadline) if plugin is not None else deadline
    with metered(PluginGroup.AGENTS.short, name, cost) as call:
        try:
            if builtin is not None:
                result = await asyncio.wait_for(builtin(context), timeout=timeout)
            else:
                assert plugin is not None
                result = await plugin_agents.call(plugin, context, timeout)
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout:.1f} s") from None
        call.outcome = _outcome(result.status)
    result.cost_usd = round(result.cost_usd + cost, 6)
    return result


async def run_agent(name: AgentName | str, context: AgentContext, deadline: float) -> AgentResult:
    name = str(getattr(name, "value", name))
    with span(f"agent {name}", attributes={"aisre.agent": name, "aisre.deadline_s": deadline}):
        started = time.perf_counter()
        try:
            result = await _call(name, context, deadline)
        except TimeoutError as error:
            result = AgentResult(agent=name, status=AgentStatus.ERROR, message=str(error) or f"timed out after {deadline:.1f} s")
        except KubeAccessError as error:
            result = AgentResult(agent=name, status=AgentStatus.ERROR, message=str(error)[:500])
        except Exception as error:  # an agent's bug must not fail the investigation
            result = AgentResult(agent=name, status=AgentStatus.ERROR,
                                 message=f"{type(error).__name__}: {error}"[:500])
        result.latency_seconds = round(time.perf_counter() - started, 4)
        status = AgentStatus(result.status).value
        annotate(**{"aisre.agent.status": status, "aisre.agent.findings": len(result.findings)})
        if status == AgentStatus.ERROR.value:
            fail(result.message)
        return result


def _agent_calls(context: AgentContext, names: list[str]) -> dict[str, AgentCall]:
    """The agents as read-only tools for the LLM planner: the same agent, a longer look-back."""

    def call(name: str) -> AgentCall:
        async def gather(minutes: int) -> list[Finding]:
            wider = dataclasses.replace(context, window_start=context.now - dt.timedelta(minutes=minutes))
            return (await run_agent(name, wider, deadline=10.0)).findings
        return gather

    return {name: call(name) for name in names}


def actions_of(hypotheses: list[RankedHypothesis], findings: list[Finding], namespace: str) -> list[dict[str, Any]]:
    """Typed actions from the catalog for the best deterministic hypothesis (never an LLM one)."""
    if not hypotheses:
        return []
    top = hypotheses[0]
    return [a.to_kube() for a in recommend(top.category, top.resource, namespace, findings, list(top.evidence_ids))]


def note_of(hypotheses: list[RankedHypothesis], findings: list[Finding], namespace: str) -> dict[str, Any] | None:
    """``status.remediationNote`` when no catalog action fits the best deterministic hypothesis."""
    if not hypotheses:
        return None
    top = hypotheses[0]
    note = advise(top.category, top.resource, namespace, findings, list(top.evidence_ids)).note
    return {"category": C(top.category).value, "message": redact_text(note)[:1024]} if note else None


async def investigate(spec: InvestigationSpec, namespace: str, reader: ClusterReader,
                      prometheus: PrometheusSettings | None = None, *,
                      llm: LLMService | None = None, spent_today: float = 0.0, node_wide: bool = False,
                      forecast: Forecast | None = None) -> Outcome:
    """``forecast``: the operator's forecast the Investigation is for (a Predicted Incident's):
    it leads, as the root cause, whatever the agents see."""
    now = _now()
    clock = time.monotonic()
    timeline = [{"time": now, "event": "Started", "message": "resolving the target"}]
    target = spec.target
    try:
        scope: Scope = await resolve_scope(
            reader, namespace, kind=target.kind, name=target.name,
            selector=target.selector.to_kube() if target.selector is not None else None, node_wide=node_wide,
        )
    except TargetNotFound as error:
        return Outcome(False, "TargetNotFound", str(error), timeline=timeline)
    except KubeAccessError as error:
        reason = "Forbidden" if error.status == 403 else "ClusterUnreachable"
        return Outcome(False, reason, f"cannot read the target: {error}", timeline=timeline)

    planned, skipped = plan([a for a in spec.agents or []], scope, metrics=prometheus is not None)
    context = AgentContext(reader=reader, scope=scope, window_start=_window_start(spec, now), now=now,
                           prometheus=prometheus)
    deadline = max(1.0, spec.deadline_seconds * 0.8)
    timeline.append({"time": _now(), "event": "Planned", "message": ", ".join(p.name for p in planned)
                     + (f"; skipped {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else "")})
    results = await asyncio.gather(*(run_agent(p.name, context, deadline) for p in planned))
    results.extend(AgentResult(agent=name, status=AgentStatus.NO_DATA, message=why) for name, why in skipped.items())
    findings = [f for r in results for f in r.findings]
    timeline.append({"time": _now(), "event": "EvidenceGathered",
                     "message": f"{len(findings)} findings from {sum(1 for r in results if r.status == AgentStatus.SUCCESS)} agents"})
    with span("rank", attributes={"aisre.findings": len(findings)}):
        hypotheses = rank(findings, namespace)
        if forecast is not None:
            hypotheses, findings = lead_with_forecast(forecast, hypotheses, findings)
        if hypotheses:
            annotate(**{"aisre.hypotheses": len(hypotheses), "aisre.top.category": C(hypotheses[0].category).value,
                        "aisre.top.confidence": hypotheses[0].confidence, "aisre.top.score": hypotheses[0].score})
    timeline.append({"time": _now(), "event": "Ranked", "message": f"{len(hypotheses)} hypotheses"})
    with span("recommend") as chosen:
        actions = actions_of(hypotheses, findings, namespace)
        chosen.set_attribute("aisre.actions", [str(a.get("type")) for a in actions])
    with span("rank llm") as llm_span:
        step = await run_llm_step(llm, spec, namespace, hypotheses=hypotheses, findings=findings, actions=actions,
                                  agents=_agent_calls(context, [p.name for p in planned if p.name in AGENTS]), spent_today=spent_today,
                                  seconds_left=spec.deadline_seconds - (time.monotonic() - clock) - 0.5,
                                  today=now.date())
        llm_span.set_attributes({"aisre.llm.used": step.used, "aisre.llm.reason": step.reason or ""})
        if step.spend is not None:
            llm_span.set_attributes({"aisre.llm.calls": step.spend.calls, "aisre.llm.cost_usd": step.spend.usd})
    findings = findings + step.new_findings
    if step.spend is not None:  # the LLM was tried (otherwise the LLMUsed condition alone says why not)
        timeline.append({"time": _now(), "event": "LLM", "message": f"{step.reason}: {step.message}"})
    truncated = [t for r in results for t in r.truncated] + list(reader.truncated)
    return Outcome(True, "RootCauseFound" if hypotheses and hypotheses[0].category != C.NO_FAULT else "NoFaultFound",
                   hypotheses[0].summary if hypotheses else "no hypotheses", target=scope.description
                   if scope.target_ref is None else scope.target_ref, hypotheses=hypotheses, findings=findings,
                   agents=results, timeline=timeline, truncated=truncated, llm=step)


def rfc3339(moment: dt.datetime) -> str:
    """The form the API server stores times in (so Kopf's patch check sees no change)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_none(value: Any) -> Any:
    # The API server drops nulls inside preserved-unknown fields; drop them first.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _shrink(data: dict[str, Any]) -> dict[str, Any]:
    data = _drop_none(data)
    text = json.dumps(data, default=str)
    if len(text) <= MAX_DATA_CHARS:
        return json.loads(text)
    kept: dict[str, Any] = {}
    for key, value in data.items():
        rendered = json.dumps(value, default=str)
        if len(rendered) > 300:
            continue
        kept[key] = json.loads(rendered)
    kept["truncated"] = True
    return kept


def _resource(text: str, namespace: str) -> dict[str, Any] | None:
    kind, _, name = text.partition("/")
    if not name:
        return None
    out = {"kind": kind, "name": name}
    if kind != "Node":
        out["namespace"] = namespace
    return out


def chain_of(hypothesis: RankedHypothesis, kept_ids: set[str]) -> list[dict[str, Any]]:
    """The hypothesis's causal chain for status, citing only evidence that status keeps."""
    return [{"ref": link.ref[:320], "evidenceIds": [i for i in link.evidence_ids if i in kept_ids][:8]}
            for link in hypothesis.chain[:6]]


def status_of(outcome: Outcome, namespace: str, started: dt.datetime) -> dict[str, Any]:
    """The Investigation status (camelCase, bounded) for an outcome."""
    finished = _now()
    status: dict[str, Any] = {"startedAt": rfc3339(started), "completedAt": rfc3339(finished)}
    if outcome.target:
        status["target"] = outcome.target
    llm_new = new_hypotheses(outcome.llm.accepted, outcome.hypotheses)
    merged: list[tuple[RankedHypothesis | LLMHypothesis, HypothesisSource]] = sorted(
        [(h, HypothesisSource.RANKING) for h in outcome.hypotheses] + [(h, HypothesisSource.LLM) for h in llm_new],
        key=lambda pair: -pair[0].confidence)[:MAX_HYPOTHESES]
    cited = [i for h, _ in merged[:3] for i in [*h.evidence_ids, *(e for link in getattr(h, "chain", ()) for e in link.evidence_ids)]]
    by_id = {f.id: f for f in outcome.findings}
    ordered = [by_id[i] for i in dict.fromkeys(cited) if i in by_id]
    cited_ids = set(cited)
    ordered += [f for f in outcome.findings if f.id not in cited_ids and f.kind not in ("Edge", "ServicePorts", "ConfigPresent", "WorkloadHealthy", "Role", "RoleBinding", "ServiceAccountAccess", "PullSecrets")]
    truncated = list(outcome.truncated)
    if len(ordered) > MAX_EVIDENCE:
        truncated.append(f"evidence: kept {MAX_EVIDENCE} of {len(ordered)} items (cited first)")
    status["evidence"] = [
        {"id": f.id, "agent": f.agent, "kind": f.kind, "summary": redact_text(f.summary)[:1000],
         **({"resource": f.resource.to_kube()} if f.resource else {}),
         **({"time": rfc3339(f.time)} if f.time else {}), "data": _shrink(redact(f.data))}
        for f in ordered[:MAX_EVIDENCE]
    ]
    kept_ids = {e["id"] for e in status["evidence"]}
    status["hypotheses"] = []
    for h, source in merged:
        resource = _resource(h.resource, namespace)
        status["hypotheses"].append(
            {"category": h.category.value, **({"resource": resource} if resource else {}),
             "summary": redact_text(h.summary)[:1000],
             "confidence": h.confidence, "evidenceIds": [i for i in h.evidence_ids if i in kept_ids][:16],
             **({"chain": chain_of(h, kept_ids)} if getattr(h, "chain", ()) else {}),
             **({"score": h.score} if isinstance(h, RankedHypothesis) else {}),
             **({"source": source.value} if llm_new else {})})
    if merged:
        top = status["hypotheses"][0]
        status["rootCause"] = {k: v for k, v in top.items() if k not in ("evidenceIds", "source", "chain", "score")}
        status["recommendedActions"] = actions_of(outcome.hypotheses, outcome.findings, namespace)
        note = note_of(outcome.hypotheses, outcome.findings, namespace)
        if note:
            status["remediationNote"] = note
    status["agents"] = [
        {"name": r.agent, "status": r.status.value if hasattr(r.status, "value") else r.status,
         "latencySeconds": round(r.latency_seconds, 4), "costUsd": r.cost_usd, "findings": len(r.findings),
         "message": redact_text(r.message)[:1000]}
        for r in outcome.agents
    ]
    status["timeline"] = [
        {"time": (rfc3339(e["time"]) if isinstance(e["time"], dt.datetime) else e["time"]), "event": e["event"],
         "message": redact_text(e["message"])[:1000]}
        for e in outcome.timeline
    ] + [{"time": rfc3339(finished), "event": "Completed" if outcome.ok else "Failed",
          "message": redact_text(outcome.message)[:1000]}]
    spend = outcome.llm.spend
    status["cost"] = {"llmInputTokens": spend.input_tokens if spend else 0,
                      "llmOutputTokens": spend.output_tokens if spend else 0, "usd": round(spend.usd, 6) if spend else 0.0}
    if spend is not None:
        step = outcome.llm
        status["llm"] = _drop_none({
            "model": step.model, "calls": spend.calls, "plannerSteps": step.planner_steps,
            "narrative": redact_text(step.narrative)[:2048] if step.narrative else None,
            "accepted": len(step.accepted),
            "discarded": [{"category": d.category, "resource": d.resource, "reason": d.reason[:512]}
                          for d in step.discarded[:10]] or None})
    if truncated:
        status["truncated"] = [t[:256] for t in truncated[:16]]
    return status
