"""What every sink shares: the typed errors that say whether to try again, exponential
backoff that honours a server's Retry-After, the retry loop, and the per-route rate limit.

Error hierarchy::

    SinkError                 the sink did not take the message
    ├── RetryableSinkError    429, 5xx, timeouts, connection errors: try again (after retry_after)
    └── PermanentSinkError    the request or its credentials are wrong (400, 401, 403, 404,
                              Slack's ok:false): trying again sends the same wrong thing
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class SinkError(Exception):
    """The sink did not take the message."""

    retryable = False

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableSinkError(SinkError):
    retryable = True


class PermanentSinkError(SinkError):
    retryable = False


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per delivery and the backoff between them: base, 2×base, 4×base … up to
    max_delay; a Retry-After longer than max_retry_after gives up (it is retried later, on
    the next change or sweep, rather than holding a task for minutes)."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0


def backoff_delay(attempt: int, policy: RetryPolicy, retry_after: float | None = None) -> float:
    """Seconds to wait after the ``attempt``-th failed try (1-based)."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_response(response: httpx.Response, accepted: Iterable[int] = (200, 201, 202, 204)) -> httpx.Response:
    """The response if its status is one of ``accepted``; otherwise the typed error."""
    if response.status_code in tuple(accepted):
        return response
    detail = f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableSinkError(detail, retry_after_seconds(response.headers.get("Retry-After")))
    raise PermanentSinkError(detail)


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST, with transport failures as retryable sink errors (the cause chained)."""
    try:
        return await client.post(url, **kwargs)
    except httpx.HTTPError as error:
        raise RetryableSinkError(f"{type(error).__name__}: {error}"[:300]) from error


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> tuple[T, int]:
    """The call's result and the attempts it took. A permanent error, the last attempt's
    error, or a Retry-After beyond the policy's bound is raised with ``attempts`` set."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(), attempt
        except SinkError as error:
            error.attempts = attempt  # type: ignore[attr-defined]
            if not error.retryable or attempt >= policy.attempts or (
                    error.retry_after is not None and error.retry_after > policy.max_retry_after):
                raise
            await sleep(backoff_delay(attempt, policy, error.retry_after))


class RateLimiter:
    """At most ``per_minute`` messages per route in any sliding minute (in memory: after a
    restart a route gets a fresh minute, which at worst doubles one minute's messages)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sent: dict[str, deque[float]] = {}

    def wait(self, route: str, per_minute: int) -> float:
        """0 and the message counted when it may go now; else seconds until it may."""
        now = self.clock()
        window = self.sent.setdefault(route, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) < per_minute:
            window.append(now)
            return 0.0
        return window[0] + 60.0 - now
