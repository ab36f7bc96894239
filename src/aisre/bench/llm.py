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
    return summarize([{"scenario": r.name, **(r.llm or {}), "top1": r.top1, "error": r.error} for r in results], url)


def summarize(rows: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """Totals and means over the investigations that used the LLM (the LLMUsed condition)."""
    used = [r for r in rows if r.get("used")]
    total_usd = sum(float(r.get("usd") or 0.0) for r in rows)

    def mean(key: str) -> float:
        return sum(float(r.get(key) or 0) for r in used) / len(used) if used else 0.0

    return {
        "llm_url": url,
        "model": llm_config(url).model,
        "note": NOT_MEASURED,
        "investigations": len(rows),
        "llm_used": len(used),
        "total_usd": round(total_usd, 6),
        "mean_usd_per_investigation": round(mean("usd"), 6),
        "mean_input_tokens": round(mean("inputTokens")),
        "mean_output_tokens": round(mean("outputTokens")),
        "results": rows,
    }
