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
from aisre.notify import opsgenie, pagerduty, slack, teams, webhook
from aisre.notify.base import RetryPolicy, SinkError, with_retries
from aisre.notify.message import Notice
from aisre.notify.routing import Plan
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
    """Calls the sink once; returns what to add to its state."""
    sink = plan.sink
    if sink.slack is not None:
        token = await secret(sink.slack.token_secret_ref)
        return await slack.post_message(client, sink.slack.api_url, token, state.get("channel") or sink.slack.channel,
                                        notice, state.get("thread"))
    if sink.slack_webhook is not None:
        await slack.post_webhook(client, await secret(sink.slack_webhook.url_secret_ref), notice)
    elif sink.teams is not None:
        await teams.send(client, await secret(sink.teams.url_secret_ref), notice)
    elif sink.pager_duty is not None:
        key = await secret(sink.pager_duty.routing_key_secret_ref)
        return {"key": await pagerduty.send(client, sink.pager_duty.api_url, key, notice, plan.action)}
    elif sink.opsgenie is not None:
        key = await secret(sink.opsgenie.api_key_secret_ref)
        return {"key": await opsgenie.send(client, sink.opsgenie.api_url, key, notice, plan.action,
                                           sink.opsgenie.responders)}
    elif sink.webhook is not None:
        hook = sink.webhook
        url = hook.url or await secret(hook.url_secret_ref)  # type: ignore[arg-type]
        auth = await secret(hook.authorization_secret_ref) if hook.authorization_secret_ref else None
        await webhook.send(client, url, notice, plan.digest, auth)
    return {}


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
