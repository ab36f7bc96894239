"""The client against the fake Messages API: usage and cost, retries on 429 (honouring
retry-after) and 5xx, timeouts, malformed answers, the circuit breaker, budget refusal
before a call, and prompt caching of the static prefix."""

from __future__ import annotations

import dataclasses
import time

import pytest
from fake_anthropic import FakeAnthropic, Reply, error_reply, text_reply, tool_reply

from aisre.llm import BudgetExceeded, LLMClient, LLMFailed, LLMUnavailable, Spend
from aisre.llm.breaker import CircuitBreaker
from aisre.llm.prompts import NARRATOR_SYSTEM, planner_tools, system
from aisre.llm.settings import LLMConfig, Price

MESSAGES = [{"role": "user", "content": "hello"}]


def spend(cap: float = 1.0) -> Spend:
    return Spend(Price(3.0, 15.0), cap_usd=cap)


async def call(client: LLMClient, s: Spend, **kwargs: object):
    return await client.create(s, system=system(NARRATOR_SYSTEM), messages=MESSAGES, **kwargs)


async def test_usage_is_read_from_the_response_and_priced(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script.append(lambda r: Reply(body={"id": "m1", "type": "message", "role": "assistant", "model": r["model"],
                                             "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                             "usage": {"input_tokens": 1000, "output_tokens": 200,
                                                       "cache_creation_input_tokens": 0,
                                                       "cache_read_input_tokens": 0}}))
    client, s = LLMClient(llm_config), spend()
    response = await call(client, s)
    assert response.content[0].text == "ok"
    assert (s.input_tokens, s.output_tokens, s.calls) == (1000, 200, 1)
    assert s.usd == pytest.approx((1000 * 3.0 + 200 * 15.0) / 1e6)
    sent = fake.headers[0]
    assert llm_config.api_key in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
    await client.close()


async def test_static_system_prompt_and_tools_are_marked_for_caching_and_cache_reads_are_cheaper(
        fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    client, s = LLMClient(llm_config), spend()
    tools = planner_tools(["events", "logs"])
    await call(client, s, tools=tools)
    first = s.usd
    await call(client, s, tools=tools)
    body = fake.requests[0]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert [t.get("cache_control") for t in body["tools"][:-1]] == [None] * (len(body["tools"]) - 1)
    assert s.cache_write_tokens > 0 and s.cache_read_tokens == s.cache_write_tokens
    assert s.usd - first < first  # the second call read the prefix from the cache
    await client.close()


async def test_429_is_retried_after_the_retry_after_the_server_asks_for(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [error_reply(429, "rate_limit_error", {"retry-after": "1"}), text_reply("after the wait")]
    client, s = LLMClient(llm_config), spend()
    started = time.monotonic()
    response = await call(client, s)
    assert response.content[0].text == "after the wait"
    assert time.monotonic() - started >= 0.95
    assert len(fake.requests) == 2 and s.calls == 1
    await client.close()


async def test_5xx_is_retried_with_backoff_then_succeeds(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [error_reply(500, "api_error"), error_reply(529, "overloaded_error"), text_reply("third time")]
    client = LLMClient(llm_config)
    assert (await call(client, spend())).content[0].text == "third time"
    assert len(fake.requests) == 3
    await client.close()


async def test_persistent_5xx_fails_after_bounded_retries(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script += [error_reply(500, "api_error")] * 5
    client, s = LLMClient(llm_config), spend()
    with pytest.raises(LLMFailed, match="500"):
        await call(client, s)
    assert len(fake.requests) == 1 + llm_config.max_retries
    assert s.calls == 0 and s.usd == 0.0
    await client.close()


async def test_a_slow_answer_times_out(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    config = dataclasses.replace(llm_config, timeout_seconds=0.3, max_retries=0)
    fake.script.append(Reply(body=None, delay=2.0, raw="{}"))
    client = LLMClient(config)
    started = time.monotonic()
    with pytest.raises(LLMFailed, match="did not answer"):
        await call(client, spend())
    assert time.monotonic() - started < 1.5
    await client.close()


@pytest.mark.parametrize("raw", ["this is not json", '{"type": "message", "content": "not a list"}', "[]"])
async def test_malformed_answers_are_wrapped_errors(fake: FakeAnthropic, llm_config: LLMConfig, raw: str) -> None:
    fake.script.append(Reply(raw=raw))
    client = LLMClient(dataclasses.replace(llm_config, max_retries=0))
    with pytest.raises(LLMFailed):
        await call(client, spend())
    await client.close()


async def test_circuit_breaker_opens_after_repeated_failures_and_fails_fast(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=30.0, clock=lambda: now[0])
    client = LLMClient(dataclasses.replace(llm_config, max_retries=0), breaker=breaker)
    fake.script += [error_reply(503, "api_error")] * 2
    for _ in range(2):
        with pytest.raises(LLMFailed):
            await call(client, spend())
    with pytest.raises(LLMUnavailable, match="circuit breaker open"):
        await call(client, spend())
    assert len(fake.requests) == 2  # the third call never left the process
    now[0] = 31.0  # half-open: one trial call, which succeeds and closes the breaker
    await call(client, spend())
    assert breaker.state == "closed" and len(fake.requests) == 3
    await client.close()


async def test_a_call_that_could_cross_the_cap_is_refused_before_it_is_made(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    client = LLMClient(llm_config)
    with pytest.raises(BudgetExceeded, match="per-investigation cap"):
        await call(client, spend(cap=0.001))
    daily = Spend(Price(3.0, 15.0), cap_usd=1.0, daily_left_usd=0.0)
    with pytest.raises(BudgetExceeded, match="daily"):
        await call(client, daily)
    assert fake.requests == []
    await client.close()


async def test_tool_use_blocks_come_back_typed(fake: FakeAnthropic, llm_config: LLMConfig) -> None:
    fake.script.append(tool_reply("get_evidence", {"ids": ["wor-1"]}, text="looking"))
    client = LLMClient(llm_config)
    response = await call(client, spend(), tools=planner_tools(["events"]))
    use = [b for b in response.content if b.type == "tool_use"][0]
    assert (use.name, use.input) == ("get_evidence", {"ids": ["wor-1"]})
    await client.close()
