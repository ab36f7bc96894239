"""The LLM narrator: a few sentences for people, from the final hypotheses, the typed
recommended actions and the (redacted) evidence. The narrative is shown, never acted on;
it is redacted again on the way back in case the model echoed something."""

from __future__ import annotations

from typing import Any

from aisre.api.evidence import Finding
from aisre.llm import prompts
from aisre.llm.client import LLMClient
from aisre.llm.cost import Spend
from aisre.llm.redact import redact, redact_text

MAX_NARRATIVE_CHARS = 2000


async def narrate(client: LLMClient, spend: Spend, *, findings: list[Finding], hypotheses: list[dict[str, Any]],
                  actions: list[dict[str, Any]], question: str | None) -> str:
    cited = {i for h in hypotheses[:3] for i in h.get("evidence_ids") or h.get("evidenceIds") or []}
    ordered = [f for f in findings if f.id in cited] + [f for f in findings if f.id not in cited]
    content = ("Summarise this investigation.\n" + prompts.question_block(question)
               + prompts.hypotheses_block(hypotheses) + "\n<actions>\n"
               + prompts.quoted(redact([{k: a.get(k) for k in ("id", "type", "target", "reason")} for a in actions]))
               + "\n</actions>\n" + prompts.evidence_block(ordered[:40]))
    response = await client.create(spend, system=prompts.system(prompts.NARRATOR_SYSTEM),
                                   messages=[{"role": "user", "content": content}], max_tokens=600)
    text = " ".join(b.text for b in response.content if getattr(b, "type", None) == "text").strip()
    return redact_text(text)[:MAX_NARRATIVE_CHARS]
