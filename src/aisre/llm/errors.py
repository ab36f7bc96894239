"""Errors of the LLM layer, all in one place. Every one of them ends the LLM's part of an
investigation and none of them ends the investigation: the deterministic result stands,
and a condition (``LLMUsed`` False) says why.

    LLMError
     ├── BudgetExceeded     a cap would be crossed; the call was not made (needs the user:
     │                      raise spec.llm.maxCostUsd or the namespace's daily budget)
     ├── LLMUnavailable     the circuit breaker is open; no call was made (waiting)
     └── LLMFailed          the API failed after bounded retries, timed out, or answered
                            with something that is not a Messages API response (waiting)

Third-party errors (``anthropic.APIError``, ``httpx2`` errors) are wrapped with the cause
chained, so callers never import the SDK's exception classes.
"""

from __future__ import annotations


class LLMError(Exception):
    """The LLM could not help with this investigation; ``reason`` is the condition reason."""

    reason = "LLMFailed"


class BudgetExceeded(LLMError):
    reason = "BudgetExceeded"


class LLMUnavailable(LLMError):
    reason = "LLMFailed"


class LLMFailed(LLMError):
    reason = "LLMFailed"
