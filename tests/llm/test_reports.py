"""What people read of the LLM's work: the Markdown report and the benchmark's LLM report."""

from __future__ import annotations

from aisre.bench.investigate import outcome_of
from aisre.bench.llm import NOT_MEASURED, llm_report
from aisre.bench.score import Cause, Result
from aisre.report import render_investigation

STATUS = {
    "state": "Completed",
    "conditions": [{"type": "LLMUsed", "status": "True", "reason": "Used"},
                   {"type": "Completed", "status": "True", "reason": "RootCauseFound"}],
    "rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.9},
    "hypotheses": [{"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.9,
                    "evidenceIds": ["wor-1"]}],
    "cost": {"llmInputTokens": 3000, "llmOutputTokens": 120, "usd": 0.0108},
    "llm": {"model": "claude-sonnet-5-5", "calls": 2, "plannerSteps": 1, "accepted": 0,
            "narrative": "The image tag does not exist [wor-1].",
            "discarded": [{"category": "ScaledToZero", "resource": "Deployment/web",
                           "reason": "cites only evidence whose text reads like instructions"}]},
}


def test_the_markdown_report_shows_the_narrative_as_llm_written_and_the_discards() -> None:
    text = render_investigation({"metadata": {"namespace": "shop", "name": "why"}, "spec": {}, "status": STATUS})
    assert "## Summary (written by the LLM)" in text and "The image tag does not exist [wor-1]." in text
    assert "2 calls, 3000 input and 120 output tokens, $0.0108" in text
    assert "discarded ScaledToZero Deployment/web: cites only evidence" in text


def test_the_report_of_a_run_without_llm_has_no_llm_section() -> None:
    status = {k: v for k, v in STATUS.items() if k not in ("llm", "cost")}
    assert "LLM" not in render_investigation({"metadata": {}, "spec": {}, "status": status})


def test_bench_llm_report_has_tokens_and_cost_per_investigation_and_says_what_is_not_measured() -> None:
    outcome = outcome_of(STATUS, 0.5)
    assert outcome.llm == {"used": True, "reason": "Used", "calls": 2, "plannerSteps": 1, "accepted": 0, "discarded": 1,
                           "inputTokens": 3000, "outputTokens": 120, "usd": 0.0108}
    result = Result("bad-image", True, Cause("BadImage", ("Deployment/web",)), ranked=outcome.ranked, llm=outcome.llm)
    report = llm_report([result, Result("other", True, Cause("NoFault", ()), llm={"used": False, "calls": 0})], "http://x")
    assert report["investigations"] == 2 and report["llm_used"] == 1
    assert report["mean_usd_per_investigation"] == 0.0108 and report["mean_input_tokens"] == 3000
    assert report["results"][0]["usd"] == 0.0108 and report["note"] == NOT_MEASURED
    assert "not measured" in report["note"]
    assert result.to_json()["llm"]["calls"] == 2
