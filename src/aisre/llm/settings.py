"""Operator-wide LLM settings (read from the environment by ``aisre.operator.config``).

No API key means no LLM: every investigation takes the deterministic path and says so
with the ``LLMUsed`` condition (reason ``NoAPIKey``).

Environment (all optional):

    ANTHROPIC_API_KEY / AISRE_LLM_API_KEY_FILE   the key (the chart mounts a Secret)
    AISRE_LLM_MODEL              model id (default: DEFAULT_MODEL)
    AISRE_LLM_BASE_URL           API base URL (tests and the benchmark use a local fake)
    AISRE_LLM_DEFAULT_ENABLED    use the LLM for Investigations without spec.llm (default false)
    AISRE_LLM_DEFAULT_MAX_COST_USD  cap for those Investigations (default 0.10)
    AISRE_LLM_DAILY_BUDGET_USD   per namespace per UTC day (default 5.00; 0 = no LLM)
    AISRE_LLM_CONFIDENCE_THRESHOLD  the planner runs when the top hypothesis is below it (0.7)
    AISRE_LLM_MAX_STEPS          tool-use steps of the planner, the last one forced final (4)
    AISRE_LLM_NARRATE            write the narrative summary (default true)
    AISRE_LLM_TIMEOUT_SECONDS    per request (20); AISRE_LLM_MAX_RETRIES (2)
    AISRE_LLM_BREAKER_THRESHOLD / AISRE_LLM_BREAKER_COOLDOWN_SECONDS (3, 60)
    AISRE_LLM_PRICES             JSON {"model": {"input": usd_per_mtok, "output": usd_per_mtok}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "claude-sonnet-5-5"  # the newest Sonnet the pinned SDK knows, not deprecated


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens. Cache writes cost 1.25x input, cache reads 0.1x."""

    input: float
    output: float
    cache_write_factor: float = 1.25
    cache_read_factor: float = 0.1


# Published list prices of the Sonnet family at the time of writing ($3 / $15 per MTok);
# check the current price list and override with AISRE_LLM_PRICES.
DEFAULT_PRICES: dict[str, Price] = {
    name: Price(3.0, 15.0)
    for name in ("claude-sonnet-4-6", "claude-sonnet-5", "claude-sonnet-5-5")
}


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class LLMConfig:
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    default_enabled: bool = False
    default_max_cost_usd: float = 0.10
    daily_budget_usd: float = 5.0
    confidence_threshold: float = 0.7
    max_steps: int = 4
    narrate: bool = True
    timeout_seconds: float = 20.0
    max_retries: int = 2
    breaker_threshold: int = 3
    breaker_cooldown_seconds: float = 60.0
    max_output_tokens: int = 1024
    prices: dict[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    def price(self) -> Price:
        """The model's price; an unknown model is charged at the dearest known price, so a
        missing entry can only make the budget stricter."""
        if self.model in self.prices:
            return self.prices[self.model]
        return max(self.prices.values(), key=lambda p: (p.output, p.input), default=Price(15.0, 75.0))

    @classmethod
    def from_env(cls, env: dict[str, str]) -> LLMConfig:
        key = env.get("ANTHROPIC_API_KEY") or None
        key_file = env.get("AISRE_LLM_API_KEY_FILE")
        if not key and key_file and Path(key_file).is_file():
            key = Path(key_file).read_text().strip() or None
        prices = dict(DEFAULT_PRICES)
        for model, entry in json.loads(env.get("AISRE_LLM_PRICES") or "{}").items():
            prices[model] = Price(float(entry["input"]), float(entry["output"]))
        return cls(
            api_key=key,
            model=env.get("AISRE_LLM_MODEL") or DEFAULT_MODEL,
            base_url=env.get("AISRE_LLM_BASE_URL") or None,
            default_enabled=_bool(env.get("AISRE_LLM_DEFAULT_ENABLED"), False),
            default_max_cost_usd=float(env.get("AISRE_LLM_DEFAULT_MAX_COST_USD", 0.10)),
            daily_budget_usd=float(env.get("AISRE_LLM_DAILY_BUDGET_USD", 5.0)),
            confidence_threshold=float(env.get("AISRE_LLM_CONFIDENCE_THRESHOLD", 0.7)),
            max_steps=max(1, int(env.get("AISRE_LLM_MAX_STEPS", 4))),
            narrate=_bool(env.get("AISRE_LLM_NARRATE"), True),
            timeout_seconds=float(env.get("AISRE_LLM_TIMEOUT_SECONDS", 20.0)),
            max_retries=int(env.get("AISRE_LLM_MAX_RETRIES", 2)),
            breaker_threshold=int(env.get("AISRE_LLM_BREAKER_THRESHOLD", 3)),
            breaker_cooldown_seconds=float(env.get("AISRE_LLM_BREAKER_COOLDOWN_SECONDS", 60.0)),
            prices=prices,
        )
