"""The optional LLM step of an investigation, after the deterministic ranking.

Decides whether the LLM may and should run (key, ``spec.llm`` or the operator default,
budget, ambiguity), runs the planner for ambiguous cases and the narrator, validates
what the planner proposes, and returns an ``LLMStep`` for the status. Every failure of
the LLM ends here as a reason for the ``LLMUsed`` condition: the deterministic outcome
always stands, and recommended actions are never derived from an LLM hypothesis.

Who it talks to: ``aisre.llm`` (client, planner, narrator, validation); agents come in
as callables from ``aisre.operator.investigation``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aisre.api.evidence import Finding
from aisre.api.investigation import InvestigationSpec
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.llm import DailyBudget, LLMClient, LLMConfig, LLMError, Spend
from aisre.llm.narrator import narrate
from aisre.llm.prompts import reads_like_instructions
from aisre.llm.planner import AgentCall, run_planner
from aisre.llm.validate import Discarded, LLMHypothesis, known_resources, validate
from aisre.ranking.rank import RankedHypothesis

LLM_USED = "LLMUsed"
# Reasons of the LLMUsed condition.
USED = "Used"
NO_API_KEY = "NoAPIKey"
DISABLED = "Disabled"
NOT_NEEDED = "NotNeeded"
BUDGET_EXCEEDED = "BudgetExceeded"
LLM_FAILED = "LLMFailed"
MIN_SECONDS = 2.0  # less time than this left before the deadline: do not start


@dataclass
class LLMService:
    """Process-wide LLM state: the client (with its circuit breaker) and the daily budget."""

    config: LLMConfig
    client: LLMClient | None
    daily: DailyBudget

    @classmethod
    def from_config(cls, config: LLMConfig) -> LLMService:
        return cls(config, LLMClient(config) if config.has_key else None, DailyBudget(config.daily_budget_usd))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


@dataclass
class LLMStep:
    """What the LLM did for one investigation."""

    used: bool = False
    reason: str = NO_API_KEY
    message: str = "no LLM API key is configured; the deterministic ranking decided alone"
    model: str | None = None
    spend: Spend | None = None
    planner_steps: int = 0
    accepted: list[LLMHypothesis] = field(default_factory=list)
    discarded: list[Discarded] = field(default_factory=list)
    new_findings: list[Finding] = field(default_factory=list)
    narrative: str | None = None
    notes: list[str] = field(default_factory=list)


def hypothesis_view(h: RankedHypothesis | LLMHypothesis) -> dict[str, Any]:
    return {"category": h.category.value, "resource": h.resource, "summary": h.summary,
            "confidence": h.confidence, "evidence_ids": list(h.evidence_ids)}


def ambiguous(hypotheses: list[RankedHypothesis], threshold: float) -> bool:
    """The top hypothesis is below the threshold, or nothing known fits what hurts."""
    if not hypotheses:
        return True
    top = hypotheses[0]
    if top.category == C.NO_FAULT and top.summary == "no known fault pattern matches":
        return True
    return top.confidence < threshold


def new_hypotheses(accepted: list[LLMHypothesis], ranked: list[RankedHypothesis]) -> list[LLMHypothesis]:
    """The accepted LLM hypotheses that the ranking did not already have."""
    have = {(h.category, h.resource) for h in ranked}
    return [h for h in accepted if (h.category, h.resource) not in have]


async def run_llm_step(service: LLMService | None, spec: InvestigationSpec, namespace: str, *,
                       hypotheses: list[RankedHypothesis], findings: list[Finding], actions: list[dict[str, Any]],
                       agents: dict[str, AgentCall], spent_today: float, seconds_left: float,
                       today: dt.date) -> LLMStep:
    config = service.config if service is not None else None
    if service is None or config is None or service.client is None:
        return LLMStep()
    enabled = spec.llm.enabled if spec.llm is not None else config.default_enabled
    if not enabled:
        return LLMStep(reason=DISABLED, message="spec.llm.enabled is false (or unset, and the operator default is off)")
    need_plan = ambiguous(hypotheses, config.confidence_threshold)
    if not need_plan and not config.narrate:
        return LLMStep(reason=NOT_NEEDED, message=f"the top hypothesis has confidence {hypotheses[0].confidence} "
                                                  f">= {config.confidence_threshold}; the narrator is off")
    if seconds_left < MIN_SECONDS:
        return LLMStep(reason=LLM_FAILED, message=f"only {seconds_left:.1f} s left before the deadline")
    cap = spec.llm.max_cost_usd if spec.llm is not None else config.default_max_cost_usd
    left = service.daily.left(namespace, spent_today, today)
    spend = Spend(config.price(), cap_usd=cap, daily_left_usd=left)
    step = LLMStep(used=False, reason=USED, message="", model=config.model, spend=spend)
    reserved = max(0.0, min(cap, left))
    service.daily.reserve(namespace, today, reserved)
    try:
        await asyncio.wait_for(_run(service.client, config, spec, step, spend, need_plan, hypotheses, findings,
                                    actions, agents), timeout=seconds_left - 1.0)
    except TimeoutError:
        step.reason, step.message = LLM_FAILED, f"the LLM step did not finish within the {seconds_left - 1.0:.1f} s left"
    except LLMError as error:
        step.reason, step.message = error.reason, str(error)
    finally:
        service.daily.release(namespace, today, reserved)
    step.used = spend.calls > 0
    if step.reason == USED:
        step.message = "; ".join(step.notes) or "used"
    elif step.notes:
        step.message = f"{step.message} (before that: {'; '.join(step.notes)})"
    return step


async def _run(client: LLMClient, config: LLMConfig, spec: InvestigationSpec, step: LLMStep, spend: Spend,
               need_plan: bool, hypotheses: list[RankedHypothesis], findings: list[Finding],
               actions: list[dict[str, Any]], agents: dict[str, AgentCall]) -> None:
    views = [hypothesis_view(h) for h in hypotheses[:5]]
    if need_plan:
        planned = await run_planner(client, spend, findings=findings, hypotheses=views, question=spec.question,
                                    agents=agents, max_steps=config.max_steps)
        step.planner_steps, step.new_findings = planned.steps, planned.new_findings
        pool = findings + planned.new_findings
        ranked_resources = [h.resource for h in hypotheses if h.resource]
        step.accepted, step.discarded = validate(planned.raw_hypotheses, {f.id for f in pool},
                                                 known_resources(pool, ranked_resources),
                                                 {f.id for f in pool if reads_like_instructions(f)})
        step.notes.append(f"planner: {planned.note}; {len(step.accepted)} hypotheses accepted, "
                          f"{len(step.discarded)} discarded")
        views = sorted(views + [hypothesis_view(h) for h in new_hypotheses(step.accepted, hypotheses)],
                       key=lambda v: -v["confidence"])[:5]
    else:
        step.notes.append(f"planner not needed (top confidence {hypotheses[0].confidence})")
    if config.narrate:
        step.narrative = await narrate(client, spend, findings=findings + step.new_findings, hypotheses=views,
                                       actions=actions, question=spec.question)
        step.notes.append("narrative written")
