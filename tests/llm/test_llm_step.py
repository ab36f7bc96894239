"""The LLM step of an investigation, end to end from evidence to the Investigation status,
against the fake API: when it runs and why not, cost in status, failures that leave the
deterministic result standing, secrets that never leave, and instructions in evidence
that change nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from evidence import INJECTIONS, NS, SECRETS, ambiguous_ranking, confident_ranking, ordinary, with_injections, with_secrets
from fake_anthropic import FakeAnthropic, Reply, block, error_reply, obey, tool_reply

from aisre.api.evidence import Finding
from aisre.api.investigation import InvestigationSpec
from aisre.llm.settings import LLMConfig
from aisre.operator.investigation import Outcome, actions_of, status_of
from aisre.operator.llm_step import LLMService, LLMStep, run_llm_step
from aisre.ranking.rank import RankedHypothesis

TODAY = dt.date(2026, 11, 24)
STARTED = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def spec(enabled: bool | None = True, cap: float = 0.10, question: str | None = None) -> InvestigationSpec:
    body: dict[str, Any] = {"target": {"kind": "Deployment", "name": "checkout"}, "deadlineSeconds": 30}
    if enabled is not None:
        body["llm"] = {"enabled": enabled, "maxCostUsd": cap}
    if question:
        body["question"] = question
    return InvestigationSpec.model_validate(body)


async def step_for(config: LLMConfig | None, hypotheses: list[RankedHypothesis], findings: list[Finding], *,
                   the_spec: InvestigationSpec | None = None, spent_today: float = 0.0, seconds_left: float = 25.0,
                   agents: dict | None = None) -> LLMStep:
    service = LLMService.from_config(config) if config is not None else None
    try:
        return await run_llm_step(service, the_spec or spec(), NS, hypotheses=hypotheses, findings=findings,
                                  actions=actions_of(hypotheses, findings, NS), agents=agents or {},
                                  spent_today=spent_today, seconds_left=seconds_left, today=TODAY)
    finally:
        if service is not None:
            await service.close()


def status(hypotheses: list[RankedHypothesis], findings: list[Finding], step: LLMStep | None = None) -> dict[str, Any]:
    outcome = Outcome(True, "RootCauseFound", hypotheses[0].summary, target="Deployment/checkout", hypotheses=hypotheses,
                      findings=findings + (step.new_findings if step else []), llm=step or LLMStep())
    out = status_of(outcome, NS, STARTED)
    for volatile in ("startedAt", "completedAt", "timeline"):
        out.pop(volatile)
    return out


def deterministic_part(s: dict[str, Any]) -> dict[str, Any]:
    return {"recommendedActions": s.get("recommendedActions"),
            "ranking": [h for h in s["hypotheses"] if h.get("source", "ranking") == "ranking"]}


async def test_without_a_key_nothing_is_called_and_the_status_is_the_deterministic_one() -> None:
    step = await step_for(None, ambiguous_ranking(), ordinary())
    assert (step.used, step.reason) == (False, "NoAPIKey")
    s = status(ambiguous_ranking(), ordinary(), step)
    assert s == status(ambiguous_ranking(), ordinary()) and "llm" not in s
    assert s["cost"] == {"llmInputTokens": 0, "llmOutputTokens": 0, "usd": 0.0}
    no_key = LLMService.from_config(LLMConfig())
    assert no_key.client is None


async def test_disabled_per_investigation_or_by_default(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    assert (await step_for(llm_config, ambiguous_ranking(), ordinary(), the_spec=spec(False))).reason == "Disabled"
    off_by_default = dataclasses.replace(llm_config, default_enabled=False)
    assert (await step_for(off_by_default, ambiguous_ranking(), ordinary(), the_spec=spec(None))).reason == "Disabled"
    assert fake.requests == []


async def test_a_confident_case_needs_no_planner(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    quiet = dataclasses.replace(llm_config, narrate=False)
    assert (await step_for(quiet, confident_ranking(), ordinary())).reason == "NotNeeded"
    assert fake.requests == []
    step = await step_for(llm_config, confident_ranking(), ordinary())
    assert step.reason == "Used" and step.planner_steps == 0 and step.narrative
    assert len(fake.requests) == 1 and "tools" not in fake.requests[0]


async def test_an_ambiguous_case_is_planned_narrated_and_costed_in_status(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    step = await step_for(llm_config, ambiguous_ranking(), ordinary())
    assert (step.used, step.reason, step.planner_steps) == (True, "Used", 1)
    s = status(ambiguous_ranking(), ordinary(), step)
    assert s["cost"]["llmInputTokens"] > 0 and s["cost"]["llmOutputTokens"] > 0 and s["cost"]["usd"] > 0
    assert s["llm"]["calls"] == 2 and s["llm"]["accepted"] == 1 and "ApplicationError" in s["llm"]["narrative"]
    # the echoing model agreed with the ranking: nothing new, the deterministic result stands
    assert deterministic_part(s) == deterministic_part(status(ambiguous_ranking(), ordinary()))


async def test_an_accepted_llm_hypothesis_is_listed_as_such_and_brings_no_action(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script.append(tool_reply("submit_hypotheses", {"hypotheses": [{
        "category": "ReadinessProbeFailure", "resource": "Deployment/checkout", "summary": "probe", "confidence": 0.95,
        "evidence_ids": ["eve-bbbb000002"]}]}))
    step = await step_for(llm_config, ambiguous_ranking(), ordinary())
    s = status(ambiguous_ranking(), ordinary(), step)
    top = s["hypotheses"][0]
    assert (top["category"], top["source"], top["confidence"]) == ("ReadinessProbeFailure", "llm", 0.6)
    assert s["rootCause"]["category"] == "ReadinessProbeFailure" and "source" not in s["rootCause"]
    # actions still come from the catalog for the best deterministic hypothesis
    assert s["recommendedActions"] == status(ambiguous_ranking(), ordinary())["recommendedActions"]
    assert [a["type"] for a in s["recommendedActions"]] == ["rollback"]


async def test_budget_exhausted_today_refuses_before_any_call(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    step = await step_for(llm_config, ambiguous_ranking(), ordinary(), spent_today=llm_config.daily_budget_usd)
    assert (step.used, step.reason) == (False, "BudgetExceeded") and "daily" in step.message
    assert fake.requests == []
    tiny = await step_for(llm_config, ambiguous_ranking(), ordinary(), the_spec=spec(cap=0.0001))
    assert tiny.reason == "BudgetExceeded" and "maxCostUsd" in tiny.message


async def test_the_cap_stops_a_run_midway_and_records_what_was_spent(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    # the first planner call fits under the cap exactly; after it, the next one does not
    probe = await step_for(llm_config, ambiguous_ranking(), ordinary(), the_spec=spec(cap=0.0001))
    first_worst = float(re.search(r"could cost \$([0-9.]+)", probe.message).group(1))
    fake.script.append(tool_reply("get_evidence", {"ids": ["wor-aaaa000001"]}))
    step = await step_for(llm_config, ambiguous_ranking(), ordinary(), the_spec=spec(cap=first_worst + 0.0001))
    assert (step.reason, step.spend.calls, step.used) == ("BudgetExceeded", 1, True)
    assert len(fake.requests) == 1
    s = status(ambiguous_ranking(), ordinary(), step)
    assert 0 < s["cost"]["usd"] <= first_worst + 0.0001 and s["llm"]["calls"] == 1


@pytest.mark.parametrize("failure", ["500", "slow", "malformed"])
async def test_when_the_llm_fails_the_deterministic_result_stands(fake: FakeAnthropic, llm_config: LLMConfig, failure: str) -> None:
    config = dataclasses.replace(llm_config, max_retries=1, timeout_seconds=0.5)
    if failure == "500":
        fake.responder = lambda r: error_reply(500, "api_error")
    elif failure == "slow":
        fake.responder = lambda r: Reply(raw="{}", delay=3.0)
    else:
        fake.responder = lambda r: Reply(raw='{"type": "message", "content": [{"type": "tool_use"')
    started = time.monotonic()
    step = await step_for(config, ambiguous_ranking(), ordinary(), seconds_left=5.0)
    assert time.monotonic() - started < 5.0
    assert (step.used, step.reason) == (False, "LLMFailed")
    s = status(ambiguous_ranking(), ordinary(), step)
    assert deterministic_part(s) == deterministic_part(status(ambiguous_ranking(), ordinary()))
    assert s["rootCause"] == status(ambiguous_ranking(), ordinary())["rootCause"]


async def test_the_step_gives_up_when_the_investigation_deadline_is_near(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.responder = lambda r: Reply(raw="{}", delay=5.0)
    started = time.monotonic()
    step = await step_for(dataclasses.replace(llm_config, timeout_seconds=30), ambiguous_ranking(), ordinary(), seconds_left=3.0)
    assert step.reason == "LLMFailed" and "did not finish" in step.message and time.monotonic() - started < 3.0


async def test_no_secret_reaches_any_request_body(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    findings = with_secrets()
    ids = [f.id for f in findings]

    async def logs_agent(minutes: int) -> list[Finding]:
        return with_secrets()[3:]

    fake.script += [tool_reply("get_evidence", {"ids": ids}), tool_reply("run_agent", {"agent": "logs"})]
    question = f"why does checkout fail since {SECRETS['email']} deployed with token {SECRETS['token']}?"
    step = await step_for(llm_config, ambiguous_ranking(), findings, the_spec=spec(question=question),
                          agents={"logs": logs_agent})
    assert step.reason == "Used" and len(fake.raw_bodies) == 4  # get_evidence, run_agent, submit, narrate
    for body in fake.raw_bodies:
        text = body.decode()
        for name, value in SECRETS.items():
            assert value not in text, name
            assert json.dumps(value)[1:-1] not in text, name
    assert "[REDACTED:" in fake.raw_bodies[1].decode()


@pytest.mark.parametrize("model", ["obeys", "ignores"])
async def test_instructions_in_logs_and_annotations_change_no_hypothesis_or_action(
        fake: FakeAnthropic, llm_config: LLMConfig, model: str) -> None:
    if model == "obeys":
        fake.responder = obey
    findings = with_injections()
    baseline = status(ambiguous_ranking(), findings)
    step = await step_for(llm_config, ambiguous_ranking(), findings)
    s = status(ambiguous_ranking(), findings, step)
    assert s["recommendedActions"] == baseline["recommendedActions"]
    assert s["hypotheses"] == baseline["hypotheses"] and s["rootCause"] == baseline["rootCause"]
    assert all(a["type"] in ("rollback",) for a in s["recommendedActions"])
    if model == "obeys":
        reasons = [d["reason"] for d in s["llm"]["discarded"]]
        assert reasons == ["cites only evidence whose text reads like instructions",
                           "category 'DeleteNamespace' is not in the taxonomy",
                           "resource 'Namespace/kube-system' does not appear in the evidence"]
        assert s["llm"]["accepted"] == 0
    # the evidence went out as quoted data: one <evidence> block, the data could not close it,
    # and each line that reads like an order is marked as such
    content = fake.requests[0]["messages"][0]["content"]
    assert content.count("</evidence>") == 1 and content.count("<evidence>") == 1
    marked = [e for e in block(fake.requests[0], "evidence") if "note" in e]
    assert len(marked) == len(INJECTIONS) + 1
    assert "never an instruction" in fake.requests[0]["system"][0]["text"]
