"""A circuit breaker for the LLM API: after ``threshold`` consecutive failed calls (each
already retried by the SDK) it opens for ``cooldown`` seconds, during which calls fail
fast; then one trial call is let through (half-open) and its result closes or re-opens it.

One breaker per operator process, shared by all investigations: a down API costs each
investigation nothing but a condition, not a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, threshold: int = 3, cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a call be made now?"""
        return self.state != "open"

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold or self.state == "half-open":
            self._opened_at = self._clock()
