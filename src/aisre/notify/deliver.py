"""Sending one planned message to its sink: fetch the credentials it names, call the sink's
module under the retry policy, and return the delivery record and the sink's new state
for the Incident's status. The caller writes both; nothing here touches Kubernetes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from aisre.api.notification_route import SecretKeyRef
from aisre.api.plugins import PluginGroup
from aisre.notify.base import PermanentSinkError, RetryableSinkError, RetryPolicy, SinkError, with_retries
from aisre.notify.message import Notice
from aisre.notify.routing import Plan
from aisre.plugins import metered, refused, registry
from aisre.redact import redact_text

# Reads one key of a Secret in the route's namespace; raises SinkError when it cannot.
SecretGetter = Callable[[SecretKeyRef], Awaitable[str]]


@dataclass
class Delivered:
    """The outcome of one planned message."""

    record: dict[str, Any]
    state: dict[str, Any] | None = None  # the sink's new state; None: unchanged (it failed)
    retryable: bool = False


async def _send(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: SecretGetter,
                state: dict[str, Any]) -> dict[str, Any]:
    """Calls the sink once (its ``aisre.sinks`` plugin, metered); returns what to add to its state."""
    plugin = registry().get(PluginGroup.SINKS, plan.sink.type)
    if plugin is None or not plugin.enabled:
        why = f"{plugin.state.value}: {plugin.reason}" if plugin is not None else "not installed"
        raise PermanentSinkError(f"sink type {plan.sink.type} is not available ({why})")
    if not plugin.limit.take():
        refused(PluginGroup.SINKS.short, plugin.name)
        raise RetryableSinkError(f"sink type {plan.sink.type}: rate limit of {plugin.meta.rate_limit_per_minute} "
                                 "calls a minute reached", retry_after=5.0)
    with metered(PluginGroup.SINKS.short, plugin.name, plugin.meta.cost_per_call_usd):
        return dict(await plugin.obj.send(client, plan, notice, secret, state) or {})


async def deliver(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: SecretGetter,
                  state: dict[str, Any], policy: RetryPolicy, now: Callable[[], dt.datetime],
                  sleep: Callable[[float], Awaitable[Any]] | None = None) -> Delivered:
    """Sends with retries; the record says Sent or Failed (with the error, redacted)."""
    record: dict[str, Any] = {"route": plan.route, "sink": plan.sink.name, "type": plan.sink.type, "event": plan.event}
    try:
        kwargs = {"sleep": sleep} if sleep is not None else {}
        added, attempts = await with_retries(lambda: _send(client, plan, notice, secret, state), policy, **kwargs)
    except SinkError as error:
        record.update(time=_rfc3339(now()), result="Failed", attempts=getattr(error, "attempts", 1),
                      error=redact_text(str(error))[:500])
        return Delivered(record, None, retryable=error.retryable)
    events = sorted(set(state.get("events") or []) | {plan.event})
    new_state = {**state, **added, "route": plan.route, "sink": plan.sink.name, "sent": plan.digest, "events": events}
    record.update(time=_rfc3339(now()), result="Sent", attempts=attempts)
    return Delivered(record, new_state)


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def merged(entries: list[dict[str, Any]], entry: dict[str, Any], bound: int, keyed: bool) -> list[dict[str, Any]]:
    """A status list with ``entry`` added: keyed by route and sink (replacing its old entry)
    or appended; the oldest dropped beyond ``bound``."""
    out = [e for e in entries if not (keyed and (e.get("route"), e.get("sink")) == (entry["route"], entry["sink"]))]
    out.append(entry)
    return out[-bound:]
