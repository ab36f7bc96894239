"""The LLM planner for ambiguous cases: a bounded tool-use loop over read-only lookups
(evidence detail, the read-only agents again with a longer look-back), forced to a final
``submit_hypotheses`` at the step limit (``tool_choice`` names the tool).

The agents come in as callables from the operator, so this package imports no agent.
The answer is returned raw; ``aisre.llm.validate`` decides what of it counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aisre.api.evidence import Finding
from aisre.llm import prompts
from aisre.llm.client import LLMClient
from aisre.llm.cost import Spend
from aisre.llm.redact import redact

AgentCall = Callable[[int], Awaitable[list[Finding]]]  # look-back in minutes -> findings
FINAL_TOOL = "submit_hypotheses"
DEFAULT_LOOKBACK_MINUTES = 180


@dataclass
class PlannerResult:
    raw_hypotheses: Any = None
    steps: int = 0
    new_findings: list[Finding] = field(default_factory=list)
    note: str = ""


def _assistant_content(content: list[Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return blocks


async def _tool_result(use: Any, pool: dict[str, Finding], agents: dict[str, AgentCall], result: PlannerResult) -> dict[str, Any]:
    args = use.input if isinstance(use.input, dict) else {}
    is_error = False
    if use.name == "get_evidence":
        ids = [str(i) for i in args.get("ids") or []][:20]
        text = prompts.evidence_block([pool[i] for i in ids if i in pool], detail=True)
        unknown = [i for i in ids if i not in pool]
        if unknown:
            text += f"\nunknown ids: {prompts.quoted(redact(unknown))}"
    elif use.name == "run_agent" and args.get("agent") in agents:
        minutes = int(args.get("lookback_minutes") or DEFAULT_LOOKBACK_MINUTES)
        try:
            found = await agents[args["agent"]](max(5, min(1440, minutes)))
        except Exception as error:  # an agent's failure is the tool's answer, not the planner's end
            found, is_error = [], True
            text = f"agent failed: {type(error).__name__}"
        else:
            fresh = [f for f in found if f.id not in pool]
            for f in fresh:
                pool[f.id] = f
            result.new_findings.extend(fresh)
            text = prompts.evidence_block(found)
    else:
        is_error, text = True, f"unknown tool or agent: {use.name}"
    return {"type": "tool_result", "tool_use_id": use.id, "content": text, **({"is_error": True} if is_error else {})}


async def run_planner(client: LLMClient, spend: Spend, *, findings: list[Finding], hypotheses: list[dict[str, Any]],
                      question: str | None, agents: dict[str, AgentCall], max_steps: int) -> PlannerResult:
    """Plan, look and answer within ``max_steps`` calls. Raises ``LLMError`` on API trouble."""
    pool = {f.id: f for f in findings}
    tools = prompts.planner_tools(agents)
    messages: list[dict[str, Any]] = [{"role": "user", "content": (
        "The deterministic ranking is not confident. Its hypotheses and the evidence follow.\n"
        + prompts.question_block(question) + prompts.hypotheses_block(hypotheses) + "\n"
        + prompts.evidence_block(findings))}]
    result = PlannerResult()
    for step in range(1, max_steps + 1):
        final = step == max_steps
        choice = {"type": "tool", "name": FINAL_TOOL} if final else {"type": "auto"}
        response = await client.create(spend, system=prompts.system(prompts.PLANNER_SYSTEM), messages=messages,
                                       tools=tools, tool_choice=choice)
        result.steps = step
        uses = [b for b in response.content if getattr(b, "type", None) == "tool_use"]
        submit = next((u for u in uses if u.name == FINAL_TOOL), None)
        if submit is not None:
            result.raw_hypotheses = submit.input.get("hypotheses") if isinstance(submit.input, dict) else None
            result.note = f"final answer after {step} step(s)" + (" (forced at the step limit)" if final else "")
            return result
        messages.append({"role": "assistant", "content": _assistant_content(response.content)
                         or [{"type": "text", "text": "(no content)"}]})
        if uses:
            messages.append({"role": "user", "content": [await _tool_result(u, pool, agents, result) for u in uses]})
        else:
            messages.append({"role": "user", "content": f"Call {FINAL_TOOL} with your hypotheses now."})
    result.note = f"no final answer within {max_steps} step(s)"
    return result
