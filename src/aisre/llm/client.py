"""The one place that talks to the Messages API, through ``anthropic.AsyncAnthropic``.

The SDK does the timeouts and the bounded retries with backoff on 429, 408, 409 and 5xx,
honouring ``retry-after`` / ``retry-after-ms``; this adds what it does not: the circuit
breaker, the budget check before each call, usage accounting after it, and errors
wrapped into ``aisre.llm.errors`` with the cause chained, and a span per call (model,
tokens, cost) in the Investigation's trace.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from aisre.llm.breaker import CircuitBreaker
from aisre.llm.cost import Spend
from aisre.llm.errors import LLMFailed, LLMUnavailable
from aisre.llm.settings import LLMConfig
from aisre.tracing import span


class LLMClient:
    """Messages API calls for one operator process (the breaker is shared by design)."""

    def __init__(self, config: LLMConfig, *, breaker: CircuitBreaker | None = None) -> None:
        self.config = config
        self.breaker = breaker or CircuitBreaker(config.breaker_threshold, config.breaker_cooldown_seconds)
        self._sdk = anthropic.AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
        )

    async def close(self) -> None:
        await self._sdk.close()

    async def create(self, spend: Spend, *, system: list[dict[str, Any]], messages: list[dict[str, Any]],
                     tools: list[dict[str, Any]] | None = None, tool_choice: dict[str, Any] | None = None,
                     max_tokens: int | None = None) -> Any:
        """One Messages API call; the response (an SDK ``Message``) with its usage counted."""
        max_tokens = max_tokens or self.config.max_output_tokens
        request: dict[str, Any] = {"model": self.config.model, "max_tokens": max_tokens, "system": system,
                                   "messages": messages}
        if tools:
            request["tools"] = tools
        if tool_choice:
            request["tool_choice"] = tool_choice
        with span("llm call", attributes={"gen_ai.system": "anthropic", "gen_ai.request.model": self.config.model,
                                          "gen_ai.request.max_tokens": max_tokens}) as call:
            # An error leaving the block marks the span failed, with the exception recorded.
            response, usd = await self._create(spend, request, max_tokens)
            usage = response.usage
            call.set_attributes({
                "gen_ai.usage.input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
                "gen_ai.usage.output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
                "aisre.llm.cache_read_tokens": int(getattr(usage, "cache_read_input_tokens", 0) or 0),
                "aisre.llm.cache_write_tokens": int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
                "aisre.llm.cost_usd": round(usd, 6), "aisre.llm.spent_usd": round(spend.usd, 6)})
            return response

    async def _create(self, spend: Spend, request: dict[str, Any], max_tokens: int) -> tuple[Any, float]:
        spend.check(len(json.dumps(request, default=str)), max_tokens)
        if not self.breaker.allow():
            raise LLMUnavailable(f"circuit breaker open after repeated failures; retrying after "
                                 f"{self.breaker.cooldown:g} s")
        try:
            response = await self._sdk.messages.create(**request)
        except anthropic.APIStatusError as error:
            self.breaker.record_failure()
            raise LLMFailed(f"API answered {error.status_code} after {self.config.max_retries} retries") from error
        except anthropic.APITimeoutError as error:
            self.breaker.record_failure()
            raise LLMFailed(f"API did not answer within {self.config.timeout_seconds:g} s "
                            f"({self.config.max_retries} retries)") from error
        except anthropic.APIConnectionError as error:
            self.breaker.record_failure()
            raise LLMFailed(f"cannot reach the API: {type(error.__cause__ or error).__name__}") from error
        except (anthropic.AnthropicError, ValueError, TypeError) as error:  # a body that is not a Messages response
            self.breaker.record_failure()
            raise LLMFailed(f"unusable API response: {type(error).__name__}") from error
        usage = getattr(response, "usage", None)
        content = getattr(response, "content", None)
        if usage is None or not isinstance(content, list):
            self.breaker.record_failure()
            raise LLMFailed("the API's answer lacks usage or content")
        self.breaker.record_success()
        return response, spend.add(usage)
