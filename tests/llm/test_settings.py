"""Operator-wide LLM settings from the environment, and the breaker's half-open step."""

from __future__ import annotations

from pathlib import Path

from aisre.llm.breaker import CircuitBreaker
from aisre.llm.settings import DEFAULT_MODEL, LLMConfig, Price
from aisre.operator.config import OperatorConfig
from aisre.operator.llm_step import LLMService


def test_no_key_in_the_environment_means_no_llm_client() -> None:
    config = OperatorConfig.from_env({})
    assert not config.llm.has_key and config.llm.model == DEFAULT_MODEL
    assert LLMService.from_config(config.llm).client is None


def test_the_key_comes_from_a_mounted_secret_file_and_settings_from_env(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-ant-from-a-secret\n")
    config = OperatorConfig.from_env({
        "AISRE_LLM_API_KEY_FILE": str(key), "AISRE_LLM_MODEL": "claude-custom", "AISRE_LLM_DAILY_BUDGET_USD": "2.5",
        "AISRE_LLM_DEFAULT_ENABLED": "true", "AISRE_LLM_NARRATE": "no", "AISRE_LLM_MAX_STEPS": "0",
        "AISRE_LLM_PRICES": '{"claude-custom": {"input": 1, "output": 5}}'}).llm
    assert config.api_key == "sk-ant-from-a-secret" and config.model == "claude-custom"
    assert (config.daily_budget_usd, config.default_enabled, config.narrate, config.max_steps) == (2.5, True, False, 1)
    assert config.price() == Price(1.0, 5.0)
    assert "sk-ant" not in repr(config)  # the key never shows in logs of the config


def test_an_unknown_model_is_charged_at_the_dearest_known_price() -> None:
    config = LLMConfig(model="claude-unknown", prices={"a": Price(1, 5), "b": Price(15, 75)})
    assert config.price() == Price(15, 75)


def test_a_failed_trial_call_reopens_the_breaker() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
