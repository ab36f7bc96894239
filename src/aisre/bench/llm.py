"""``aisre bench --llm-url``: the scenario suite with the LLM on, against a Messages API
at that URL (in practice the scripted fake of tests/llm, ``fake_anthropic.py``), to show
the wiring end to end and report tokens and cost per investigation.

What this does not measure: how accurate a real model is. The fake answers from a script
(it echoes the ranking's top hypothesis), so the accuracy figures of such a run are the
deterministic ranking's, and the token counts are the fake's estimates from request sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aisre.bench.score import Result
from aisre.llm.settings import LLMConfig

NOT_MEASURED = ("Accuracy with a real model is not measured here: the LLM answers came from a scripted local "
                "server; tokens are that server's estimates from request sizes, priced with the configured table.")


def llm_config(url: str) -> LLMConfig:
    """LLM on for every Investigation (the bench's have no spec.llm), every case planned."""
    return LLMConfig(api_key="bench-key-for-a-local-server", base_url=url, default_enabled=True,
                     confidence_threshold=1.01, timeout_seconds=10.0, max_retries=1)


def llm_report(results: Sequence[Result], url: str) -> dict[str, Any]:
    rows = [{"scenario": r.name, **(r.llm or {}), "top1": r.top1, "error": r.error} for r in results]
    costed = [r for r in rows if r.get("calls")]
    total_usd = sum(float(r.get("usd") or 0.0) for r in rows)
    return {
        "llm_url": url,
        "model": llm_config(url).model,
        "note": NOT_MEASURED,
        "investigations": len(rows),
        "llm_used": sum(1 for r in rows if r.get("used")),
        "total_usd": round(total_usd, 6),
        "mean_usd_per_investigation": round(total_usd / len(costed), 6) if costed else 0.0,
        "mean_input_tokens": round(sum(r.get("inputTokens", 0) for r in costed) / len(costed)) if costed else 0,
        "mean_output_tokens": round(sum(r.get("outputTokens", 0) for r in costed) / len(costed)) if costed else 0,
        "results": rows,
    }
