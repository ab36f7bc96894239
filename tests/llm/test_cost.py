"""The daily budget: what the namespace's Investigations recorded today, plus what running
investigations of this process have reserved."""

from __future__ import annotations

import datetime as dt

import pytest

from aisre.llm.cost import DailyBudget, Spend, spent_today
from aisre.llm.settings import Price

TODAY = dt.date(2026, 11, 24)


def inv(name: str, started: str, usd: float) -> dict:
    return {"metadata": {"name": name}, "status": {"startedAt": started, "cost": {"usd": usd}}}


def test_spent_today_counts_todays_investigations_but_not_yesterdays_nor_itself() -> None:
    items = [inv("a", "2026-11-24T01:00:00Z", 0.5), inv("b", "2026-11-23T23:59:59Z", 9.0),
             inv("c", "2026-11-24T08:00:00Z", 0.25), inv("self", "2026-11-24T08:01:00Z", 3.0),
             {"metadata": {"name": "pending"}}]
    assert spent_today(items, TODAY, exclude="self") == pytest.approx(0.75)


def test_reservations_of_running_investigations_count_until_released() -> None:
    budget = DailyBudget(limit_usd=1.0)
    assert budget.left("shop", 0.25, TODAY) == 0.75
    budget.reserve("shop", TODAY, 0.5)
    assert budget.left("shop", 0.25, TODAY) == 0.25 and budget.left("other", 0.0, TODAY) == 1.0
    budget.release("shop", TODAY, 0.5)
    assert budget.left("shop", 0.25, TODAY) == 0.75


def test_cache_reads_are_priced_at_a_tenth_and_writes_at_a_quarter_more() -> None:
    class Usage:
        input_tokens, output_tokens = 1_000_000, 0
        cache_creation_input_tokens, cache_read_input_tokens = 1_000_000, 1_000_000

    spend = Spend(Price(3.0, 15.0), cap_usd=100)
    assert spend.add(Usage()) == pytest.approx(3.0 + 3.75 + 0.3)
    assert spend.input_tokens == 3_000_000 and spend.cache_read_tokens == 1_000_000
