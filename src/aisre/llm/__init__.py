"""Claude as an optional investigator: a planner for ambiguous cases and a narrator.

Never required (no key: the deterministic path), redacted before anything leaves the
cluster (``redact``), evidence framed as data (``prompts``), budgeted (``cost``),
resilient (``client``, ``breaker``), and checked before it counts (``validate``).
Who calls it: ``aisre.operator.llm_step``; it imports no agent (they are passed in).
"""

from aisre.llm.client import LLMClient
from aisre.llm.cost import DailyBudget, Spend
from aisre.llm.errors import BudgetExceeded, LLMError, LLMFailed, LLMUnavailable
from aisre.llm.settings import LLMConfig

__all__ = ["BudgetExceeded", "DailyBudget", "LLMClient", "LLMConfig", "LLMError", "LLMFailed", "LLMUnavailable", "Spend"]
