"""The planner's bounded tool-use loop against the fake API, and the gate its answer passes."""

from __future__ import annotations

import dataclasses

from evidence import NS, ambiguous_ranking, ordinary
from fake_anthropic import FakeAnthropic, text_reply, tool_reply

from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.llm import LLMClient, Spend
from aisre.llm.planner import run_planner
from aisre.llm.settings import LLMConfig
from aisre.llm.validate import MAX_LLM_CONFIDENCE, known_resources, validate
from aisre.operator.llm_step import hypothesis_view

NEW = Finding(id="eve-new0000001", agent="events", kind="Warning", summary="readiness probe failed: 503",
              resource=ResourceRef(kind="Pod", name="checkout-7d9-abc", namespace=NS), data={"owner": "Deployment/checkout"})


def answer(*hypotheses: dict) -> dict:
    return {"hypotheses": list(hypotheses)}


def good(ids: list[str]) -> dict:
    return {"category": "ReadinessProbeFailure", "resource": "Deployment/checkout", "summary": "probe fails",
            "confidence": 0.9, "evidence_ids": ids}


async def plan(config: LLMConfig, agents: dict | None = None, steps: int = 4):
    client = LLMClient(config)
    spend = Spend(config.price(), cap_usd=1.0)
    try:
        result = await run_planner(client, spend, findings=ordinary(), hypotheses=[hypothesis_view(h) for h in ambiguous_ranking()],
                                   question="why does checkout fail?", agents=agents or {}, max_steps=steps)
    finally:
        await client.close()
    return result, spend


async def test_tool_loop_looks_up_evidence_runs_an_agent_and_answers(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    calls: list[int] = []

    async def events_agent(minutes: int) -> list[Finding]:
        calls.append(minutes)
        return [NEW]

    fake.script += [tool_reply("get_evidence", {"ids": ["wor-aaaa000001", "nope"]}),
                    tool_reply("run_agent", {"agent": "events", "lookback_minutes": 600}),
                    tool_reply("submit_hypotheses", answer(good(["eve-new0000001", "wor-aaaa000001"])))]
    result, spend = await plan(llm_config, {"events": events_agent})
    assert result.steps == 3 and calls == [600] and result.new_findings == [NEW]
    assert spend.calls == 3 and spend.input_tokens > 0 and spend.output_tokens > 0
    # the tool results went back as data, with the detail asked for and the unknown id named
    second = fake.requests[1]["messages"][-1]["content"][0]
    assert second["type"] == "tool_result" and "CrashLoopBackOff" in second["content"] and "nope" in second["content"]
    pool = ordinary() + result.new_findings
    accepted, discarded = validate(result.raw_hypotheses, {f.id for f in pool}, known_resources(pool))
    assert [(h.category.value, h.resource) for h in accepted] == [("ReadinessProbeFailure", "Deployment/checkout")]
    assert accepted[0].confidence == MAX_LLM_CONFIDENCE and discarded == []


async def test_the_last_step_forces_the_final_answer(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [tool_reply("get_evidence", {"ids": ["wor-aaaa000001"]}), text_reply("thinking more..."),
                    tool_reply("submit_hypotheses", answer(good(["wor-aaaa000001"])))]
    result, _ = await plan(llm_config, steps=3)
    assert result.steps == 3 and "forced" in result.note
    choices = [r["tool_choice"] for r in fake.requests]
    assert choices[:2] == [{"type": "auto"}] * 2
    assert choices[2] == {"type": "tool", "name": "submit_hypotheses"}


async def test_a_model_that_never_answers_ends_at_the_step_limit(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [text_reply("no")] * 2
    result, spend = await plan(llm_config, steps=2)
    assert result.raw_hypotheses is None and "no final answer within 2" in result.note
    assert spend.calls == 2 and len(fake.requests) == 2
    accepted, discarded = validate(result.raw_hypotheses, set(), set())
    assert accepted == [] and discarded[0].reason.startswith("malformed")


def test_hypotheses_outside_the_taxonomy_on_unknown_resources_or_citing_missing_ids_are_discarded() -> None:
    pool = ordinary()
    ids, resources = {f.id for f in pool}, known_resources(pool)
    raw = [good(["wor-aaaa000001"]),
           {**good(["wor-aaaa000001"]), "category": "DeleteNamespace"},
           {**good(["wor-aaaa000001"]), "resource": "Deployment/payments"},
           {**good(["wor-aaaa000001", "log-made-up-1"])},
           {**good([])},
           "scale to 0"]
    accepted, discarded = validate(raw, ids, resources)
    assert len(accepted) == 1
    reasons = [d.reason for d in discarded]
    assert "not in the taxonomy" in reasons[0]
    assert "does not appear in the evidence" in reasons[1]
    assert "do not exist: log-made-up-1" in reasons[2]
    assert reasons[3] == "cites no evidence" and reasons[4].startswith("malformed")


async def test_a_tool_call_for_an_unknown_tool_is_answered_as_an_error(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [tool_reply("scale", {"replicas": 0}), tool_reply("submit_hypotheses", answer())]
    result, _ = await plan(dataclasses.replace(llm_config))
    reply = fake.requests[1]["messages"][-1]["content"][0]
    assert reply["is_error"] is True and "unknown tool" in reply["content"]
    assert result.raw_hypotheses == []
