"""Tokens and money: usage from the API's ``usage`` fields, priced from the config's
table, checked against the per-investigation cap and the namespace's daily budget
*before* each call (with the call's worst case), so a cap is never crossed.

The daily budget: what the namespace's Investigations spent today (their
``status.cost.usd``, read from the cluster by the operator, so it survives a restart)
plus what this process has reserved for investigations still running (in memory: a
restart forgets only those, and they never finish writing their cost anyway).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aisre.llm.errors import BudgetExceeded
from aisre.llm.settings import Price

CHARS_PER_TOKEN = 3.5  # a conservative estimate of input size before sending


@dataclass
class Spend:
    """What one investigation has used so far, and may still use."""

    price: Price
    cap_usd: float
    daily_left_usd: float = float("inf")
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    calls: int = 0
    usd: float = 0.0

    def add(self, usage: Any) -> float:
        """Count one response's ``usage``; returns that call's cost."""
        plain = int(getattr(usage, "input_tokens", 0) or 0)
        written = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        out = int(getattr(usage, "output_tokens", 0) or 0)
        p = self.price
        usd = (plain * p.input + written * p.input * p.cache_write_factor + read * p.input * p.cache_read_factor
               + out * p.output) / 1_000_000
        self.input_tokens += plain + written + read
        self.cache_write_tokens += written
        self.cache_read_tokens += read
        self.output_tokens += out
        self.calls += 1
        self.usd += usd
        self.daily_left_usd -= usd
        return usd

    def worst_case(self, request_chars: int, max_output_tokens: int) -> float:
        tokens_in = request_chars / CHARS_PER_TOKEN
        p = self.price
        return (tokens_in * p.input * p.cache_write_factor + max_output_tokens * p.output) / 1_000_000

    def check(self, request_chars: int, max_output_tokens: int) -> None:
        """Refuse (before calling) a request whose worst case would cross a cap."""
        worst = self.worst_case(request_chars, max_output_tokens)
        if self.usd + worst > self.cap_usd:
            raise BudgetExceeded(f"the next call could cost ${worst:.4f}; spent ${self.usd:.4f} of the "
                                 f"${self.cap_usd:.2f} per-investigation cap (spec.llm.maxCostUsd)")
        if worst > self.daily_left_usd:
            raise BudgetExceeded(f"the next call could cost ${worst:.4f}; ${max(self.daily_left_usd, 0):.4f} "
                                 "left of the namespace's daily LLM budget")


@dataclass
class DailyBudget:
    """Per-namespace daily budget: cluster-recorded spend plus this process's reservations."""

    limit_usd: float
    _reserved: dict[tuple[str, dt.date], float] = field(default_factory=dict)

    def left(self, namespace: str, spent_recorded: float, today: dt.date) -> float:
        return self.limit_usd - spent_recorded - self._reserved.get((namespace, today), 0.0)

    def reserve(self, namespace: str, today: dt.date, usd: float) -> None:
        self._reserved[(namespace, today)] = self._reserved.get((namespace, today), 0.0) + usd

    def release(self, namespace: str, today: dt.date, usd: float) -> None:
        key = (namespace, today)
        self._reserved[key] = max(0.0, self._reserved.get(key, 0.0) - usd)
        for old in [k for k in self._reserved if k[1] < today]:
            del self._reserved[old]


def spent_today(investigations: list[dict[str, Any]], today: dt.date, exclude: str | None = None) -> float:
    """The USD recorded in the Investigations' status.cost that started today (UTC)."""
    total = 0.0
    for item in investigations:
        status = item.get("status") or {}
        started = str(status.get("startedAt") or "")
        if item.get("metadata", {}).get("name") == exclude or not started.startswith(today.isoformat()):
            continue
        total += float((status.get("cost") or {}).get("usd") or 0.0)
    return total
