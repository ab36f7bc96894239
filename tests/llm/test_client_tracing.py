"""Each Messages API call is a span of the Investigation's trace, with the model, the
tokens and the cost as attributes; a failed call is a failed span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_anthropic import FakeAnthropic, Reply, error_reply
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aisre import tracing
from aisre.llm import LLMClient, LLMFailed, Spend
from aisre.llm.prompts import NARRATOR_SYSTEM, system
from aisre.llm.settings import LLMConfig, Price


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure({}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


async def test_a_call_is_a_span_with_its_tokens_and_cost(fake: FakeAnthropic, llm_config: LLMConfig,
                                                          spans: InMemorySpanExporter) -> None:
    fake.script.append(lambda r: Reply(body={"id": "m1", "type": "message", "role": "assistant", "model": r["model"],
                                             "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                             "usage": {"input_tokens": 1000, "output_tokens": 200,
                                                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}))
    fake.script.append(lambda r: error_reply(400, "invalid_request_error"))
    client, spend = LLMClient(llm_config), Spend(Price(3.0, 15.0), cap_usd=1.0)
    with tracing.span("rank llm"):
        await client.create(spend, system=system(NARRATOR_SYSTEM), messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(LLMFailed):
            await client.create(spend, system=system(NARRATOR_SYSTEM), messages=[{"role": "user", "content": "hi"}])
    await client.close()
    ok, failed, parent = spans.get_finished_spans()
    assert ok.name == failed.name == "llm call" and ok.parent.span_id == parent.context.span_id
    assert ok.attributes["gen_ai.request.model"] == llm_config.model
    assert (ok.attributes["gen_ai.usage.input_tokens"], ok.attributes["gen_ai.usage.output_tokens"]) == (1000, 200)
    assert ok.attributes["aisre.llm.cost_usd"] == pytest.approx((1000 * 3.0 + 200 * 15.0) / 1e6)
    assert ok.status.is_ok and not failed.status.is_ok and "gen_ai.usage.input_tokens" not in failed.attributes
