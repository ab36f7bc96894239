"""The built-in notification sinks as plugins (``aisre.sinks`` entry points in pyproject):
one ``SinkPlugin`` per sink type of a NotificationRoute, named as the route names it.

Each ``send(client, plan, notice, secret, state)`` fetches the credentials the sink names and
calls its module once, returning what to add to the sink's state; ``deliver`` picks the
plugin by the sink's type and runs it under the retry policy and the meter. A sink type the
registry does not hold (turned off by configuration) fails permanently with the reason.
"""

from __future__ import annotations

from typing import Any

import httpx

from aisre.api.plugins import PluginMeta
from aisre.notify import opsgenie, pagerduty, slack, teams, webhook
from aisre.notify.message import Notice
from aisre.notify.routing import Plan
from aisre.plugins.protocols import SinkPlugin

VERSION = "builtin"  # credentials come from each route's Secret references, not the plugin's settings


async def _slack(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any, state: dict[str, Any]) -> dict[str, Any]:
    sink = plan.sink.slack
    assert sink is not None
    token = await secret(sink.token_secret_ref)
    return await slack.post_message(client, sink.api_url, token, state.get("channel") or sink.channel, notice,
                                    state.get("thread"))


async def _slack_webhook(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any,
                         state: dict[str, Any]) -> dict[str, Any]:
    assert plan.sink.slack_webhook is not None
    await slack.post_webhook(client, await secret(plan.sink.slack_webhook.url_secret_ref), notice)
    return {}


async def _teams(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any, state: dict[str, Any]) -> dict[str, Any]:
    assert plan.sink.teams is not None
    await teams.send(client, await secret(plan.sink.teams.url_secret_ref), notice)
    return {}


async def _pager_duty(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any,
                      state: dict[str, Any]) -> dict[str, Any]:
    sink = plan.sink.pager_duty
    assert sink is not None
    key = await secret(sink.routing_key_secret_ref)
    return {"key": await pagerduty.send(client, sink.api_url, key, notice, plan.action)}


async def _opsgenie(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any,
                    state: dict[str, Any]) -> dict[str, Any]:
    sink = plan.sink.opsgenie
    assert sink is not None
    key = await secret(sink.api_key_secret_ref)
    return {"key": await opsgenie.send(client, sink.api_url, key, notice, plan.action, sink.responders)}


async def _webhook(client: httpx.AsyncClient, plan: Plan, notice: Notice, secret: Any,
                   state: dict[str, Any]) -> dict[str, Any]:
    hook = plan.sink.webhook
    assert hook is not None
    url = hook.url or await secret(hook.url_secret_ref)  # type: ignore[arg-type]
    auth = await secret(hook.authorization_secret_ref) if hook.authorization_secret_ref else None
    await webhook.send(client, url, notice, plan.digest, auth)
    return {}


def _sink(name: str, description: str, send: Any) -> SinkPlugin:
    return SinkPlugin(PluginMeta(name=name, version=VERSION, description=description), send)


SLACK = _sink("slack", "Slack chat.postMessage, threaded per Incident", _slack)
SLACK_WEBHOOK = _sink("slackWebhook", "a Slack incoming webhook", _slack_webhook)
TEAMS = _sink("teams", "a Microsoft Teams workflow webhook", _teams)
PAGER_DUTY = _sink("pagerDuty", "PagerDuty Events API v2", _pager_duty)
OPSGENIE = _sink("opsgenie", "Opsgenie Alert API", _opsgenie)
WEBHOOK = _sink("webhook", "a generic JSON webhook", _webhook)
