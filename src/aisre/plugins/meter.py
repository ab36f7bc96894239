"""Every plugin call measured the same way: calls by outcome, errors, latency and cost per
plugin (Prometheus metrics labelled by group and plugin name), and each plugin's rate limit.

The plugin label is a bounded set: the first ``MAX_LABELLED`` names seen per group get their
own label, any further one is counted as ``other`` (a cluster that installs hundreds of
plugins still has a fixed number of series).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

MAX_LABELLED = 40
OUTCOMES = ("success", "no_data", "error", "timeout", "rate_limited")

CALLS = Counter("aisre_plugin_calls_total", "Plugin calls by group, plugin and outcome "
                "(success, no_data, error, timeout, rate_limited).", ["group", "plugin", "outcome"])
SECONDS = Histogram("aisre_plugin_call_duration_seconds", "Wall time of plugin calls by group and plugin.",
                    ["group", "plugin"], buckets=(0.0005, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
COST = Counter("aisre_plugin_cost_usd_total", "What plugin calls cost, from each plugin's declared cost per call.",
               ["group", "plugin"])
PLUGINS = Gauge("aisre_plugins", "Registered plugins by group and state (Enabled, Disabled, FailedToLoad, "
                "PrerequisitesMissing).", ["group", "state"])
NOT_ENABLED = Gauge("aisre_plugin_not_enabled", "1 for each plugin that is installed but not running, by reason "
                    "(its state); bounded like every plugin label.", ["group", "plugin", "state"])

_labelled: dict[str, set[str]] = {}
_lock = threading.Lock()


def label(group: str, name: str) -> str:
    """The plugin's metric label: its name, or ``other`` past the bound."""
    with _lock:
        names = _labelled.setdefault(group, set())
        if name in names:
            return name
        if len(names) < MAX_LABELLED:
            names.add(name)
            return name
    return "other"


class RateLimit:
    """At most ``per_minute`` calls in any sliding minute (shared by all Investigations)."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self, now: float | None = None) -> bool:
        if self.per_minute is None:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._calls and now - self._calls[0] >= 60.0:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                return False
            self._calls.append(now)
            return True


@dataclass
class MeteredCall:
    """One call in progress: set ``outcome`` before the block ends (an exception sets error)."""

    group: str
    plugin: str
    cost_usd: float
    outcome: str = "success"
    seconds: float = 0.0


@contextmanager
def metered(group: str, plugin: str, cost_usd: float = 0.0) -> Iterator[MeteredCall]:
    """Measure one plugin call: its outcome, latency and cost (charged for every call made)."""
    call = MeteredCall(group, label(group, plugin), cost_usd)
    started = time.perf_counter()
    try:
        yield call
    except TimeoutError:
        call.outcome = "timeout"
        raise
    except BaseException:
        call.outcome = "error"
        raise
    finally:
        call.seconds = time.perf_counter() - started
        CALLS.labels(call.group, call.plugin, call.outcome if call.outcome in OUTCOMES else "error").inc()
        SECONDS.labels(call.group, call.plugin).observe(call.seconds)
        if cost_usd:
            COST.labels(call.group, call.plugin).inc(cost_usd)


def refused(group: str, plugin: str) -> None:
    """A call the rate limit refused: counted, not made (no latency, no cost)."""
    CALLS.labels(group, label(group, plugin), "rate_limited").inc()

