"""Each sink against a loopback server that speaks its API's documented shapes
(tests/sink_servers.py), and the operator's notifier over a stand-in API server: one Slack
thread with replies, one PagerDuty trigger then a resolve with the same dedup_key, Opsgenie
create then close by alias, Teams' Adaptive Card, a CloudEvent, retries on 429 with
Retry-After, permanent errors not retried, deliveries recorded, nothing sent twice after a
restart."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aisre.api.notification_route import Sink
from aisre.notify import RetryPolicy, deliver, notice_for
from aisre.notify.routing import Plan
from aisre.operator.notify_step import Notifier, NotifySettings
from tests.sink_servers import OPSGENIE_KEY, PD_ROUTING_KEY, SLACK_TOKEN, SinkServers
from tests.unit.test_notify import incident

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=5)


@pytest.fixture(scope="module")
def servers() -> Iterator[SinkServers]:
    with SinkServers() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(servers: SinkServers) -> None:
    servers.requests.clear()
    servers.scripted.clear()


def secrets(values: dict[str, str]):
    async def get(ref) -> str:
        return values[ref.key]
    return get


def sinks(url: str) -> dict[str, dict[str, Any]]:
    ref = lambda key: {"name": "creds", "key": key}  # noqa: E731
    return {
        "chat": {"name": "chat", "slack": {"channel": "#oncall", "tokenSecretRef": ref("slack"), "apiUrl": f"{url}/slack/api"}},
        "hook": {"name": "hook", "slackWebhook": {"urlSecretRef": ref("slack-hook")}},
        "teams": {"name": "teams", "teams": {"urlSecretRef": ref("teams")}},
        "pager": {"name": "pager", "pagerDuty": {"routingKeySecretRef": ref("pd"), "apiUrl": f"{url}/pagerduty"}},
        "genie": {"name": "genie", "opsgenie": {"apiKeySecretRef": ref("genie"), "apiUrl": f"{url}/opsgenie",
                                                 "responders": ["payments"]}},
        "events": {"name": "events", "webhook": {"url": f"{url}/webhook", "authorizationSecretRef": ref("auth")}},
    }


def creds(url: str) -> dict[str, str]:
    return {"slack": SLACK_TOKEN, "slack-hook": f"{url}/slack-hook/T0/B0/x", "teams": f"{url}/teams/wf1",
            "pd": PD_ROUTING_KEY, "genie": OPSGENIE_KEY, "auth": "Bearer hook-secret-1234567890"}


async def send(servers: SinkServers, name: str, action: str = "post", event: str = "Identified",
               state: dict[str, Any] | None = None, inc: dict[str, Any] | None = None, values: dict[str, str] | None = None):
    sink = Sink.model_validate(sinks(servers.url)[name])
    step = Plan("team-a/r", sink, event, action, f"{event}:abc", 30)
    notice = notice_for(inc or incident(), None, event)
    async with httpx.AsyncClient(timeout=5) as client:
        return await deliver(client, step, notice, secrets(values or creds(servers.url)), state or {}, FAST,
                             lambda: dt.datetime(2026, 2, 1, tzinfo=dt.UTC))


async def test_slack_starts_a_thread_then_replies_in_it(servers: SinkServers) -> None:
    first = await send(servers, "chat")
    assert first.record["result"] == "Sent" and first.state["channel"] == "C0ONCALL"
    thread = first.state["thread"]
    reply = await send(servers, "chat", "reply", "Resolved", state=first.state)
    assert reply.state["thread"] == thread and reply.state["events"] == ["Identified", "Resolved"]
    [post, answer] = servers.to("/slack/")
    assert "thread_ts" not in post.body and answer.body["thread_ts"] == thread and answer.body["channel"] == "C0ONCALL"
    assert post.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert post.body["blocks"][0]["type"] == "header" and post.body["text"].startswith("[HIGH]")
    assert len(servers.threads[thread]) == 1


async def test_slack_429_is_retried_after_retry_after_and_ok_false_is_not(servers: SinkServers) -> None:
    servers.answer_next("/slack/", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    done = await send(servers, "chat")
    assert done.record["result"] == "Sent" and done.record["attempts"] == 2
    servers.requests.clear()
    servers.channels.pop("#gone", None)
    wrong = await send(servers, "chat", values={**creds(servers.url), "slack": "xoxb-wrong-token-000"})
    assert wrong.record["result"] == "Failed" and wrong.record["attempts"] == 1 and not wrong.retryable
    assert wrong.record["error"] == "slack: invalid_auth" and wrong.state is None


async def test_pagerduty_triggers_and_resolves_with_one_dedup_key(servers: SinkServers) -> None:
    triggered = await send(servers, "pager", "trigger")
    resolved = await send(servers, "pager", "resolve", "Resolved", state=triggered.state)
    [trigger, resolve] = [r.body for r in servers.to("/pagerduty/")]
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "aisre-1111-2222" == resolved.state["key"]
    assert trigger["routing_key"] == PD_ROUTING_KEY and trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["class"] == "BadImage" and "Root cause" in trigger["payload"]["custom_details"]
    assert [r.status for r in servers.to("/pagerduty/")] == [202, 202]


async def test_pagerduty_400_fails_at_once_and_429_is_retried(servers: SinkServers) -> None:
    bad = await send(servers, "pager", "trigger", values={**creds(servers.url), "pd": "short"})
    assert bad.record["result"] == "Failed" and bad.record["attempts"] == 1 and "invalid event" in bad.record["error"]
    servers.requests.clear()
    servers.answer_next("/pagerduty/", 429, {"status": "throttle event"}, times=2)
    done = await send(servers, "pager", "trigger")
    assert done.record == {**done.record, "result": "Sent", "attempts": 3}
    servers.answer_next("/pagerduty/", 429, {"status": "throttle event"}, times=3)
    gave_up = await send(servers, "pager", "trigger")
    assert gave_up.record["result"] == "Failed" and gave_up.record["attempts"] == 3 and gave_up.retryable


async def test_opsgenie_creates_then_closes_by_alias(servers: SinkServers) -> None:
    created = await send(servers, "genie", "trigger", inc=incident(severity="critical"))
    await send(servers, "genie", "resolve", "Resolved", state=created.state)
    [create, close] = servers.to("/opsgenie/")
    assert create.headers["Authorization"] == f"GenieKey {OPSGENIE_KEY}"
    assert create.body["alias"] == "aisre-1111-2222" and create.body["priority"] == "P1" and len(create.body["message"]) <= 130
    assert create.body["responders"] == [{"name": "payments", "type": "team"}]
    assert close.path == "/opsgenie/v2/alerts/aisre-1111-2222/close" and close.query == {"identifierType": "alias"}
    assert [create.status, close.status] == [202, 202]


async def test_teams_gets_an_adaptive_card_and_slack_webhooks_a_message(servers: SinkServers) -> None:
    assert (await send(servers, "teams")).record["result"] == "Sent"
    assert (await send(servers, "hook")).record["result"] == "Sent"
    [teams] = servers.to("/teams/")
    card = teams.body["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].startswith("[HIGH]") and teams.status == 202
    assert servers.to("/slack-hook/")[0].status == 200


async def test_the_webhook_gets_a_structured_cloudevent(servers: SinkServers) -> None:
    assert (await send(servers, "events", event="Identified")).record["result"] == "Sent"
    [hook] = servers.to("/webhook")
    event = hook.body
    assert hook.headers["Content-Type"].startswith("application/cloudevents+json")
    assert hook.headers["Authorization"] == "Bearer hook-secret-1234567890"
    assert (event["specversion"], event["type"]) == ("1.0", "dev.aisre.incident.identified")
    assert event["id"] == "1111-2222:Identified:abc" and event["source"].endswith("/namespaces/team-a/incidents/checkout-crashloop")
    assert event["data"]["root_cause"]["category"] == "BadImage" and hook.status == 204


async def test_secrets_in_the_incident_never_reach_a_sink(servers: SinkServers) -> None:
    leaky = incident()
    leaky["spec"]["title"] = "login failed: password=hunter2hunter2 for AKIAABCDEFGHIJKLMNOP"
    for name in ("chat", "teams", "pager", "genie", "events", "hook"):
        await send(servers, name, "trigger" if name in ("pager", "genie") else "post", inc=leaky)
    sent = json.dumps([r.body for r in servers.requests])
    assert len(servers.requests) == 6 and "hunter2hunter2" not in sent and "AKIAABCDEFGHIJKLMNOP" not in sent
    assert sent.count("[REDACTED:") >= 6


# -- the operator's notifier over a stand-in API server ----------------------------------

class FakeAPI:
    """Incidents, Investigations and Secrets as the API server would serve them, and the
    status patches the notifier writes (a merge patch on the status)."""

    def __init__(self, inc: dict[str, Any], secret: dict[str, str]) -> None:
        self.incident = inc
        self.secret = {"metadata": {"name": "creds"}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}}
        self.patches: list[dict[str, Any]] = []
        self.secret_paths: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/secrets/" in path:
            self.secret_paths.append(path)
            return httpx.Response(200, json=self.secret) if path == "/api/v1/namespaces/team-a/secrets/creds" else httpx.Response(404)
        if path.endswith("/incidents/checkout-crashloop/status") and request.method == "PATCH":
            patch = json.loads(request.content)["status"]
            self.patches.append(patch)
            self.incident["status"].update(patch)
            return httpx.Response(200, json=self.incident)
        if path.endswith("/incidents/checkout-crashloop"):
            return httpx.Response(200, json=self.incident)
        return httpx.Response(404)


def notifier(api: FakeAPI) -> Notifier:
    return Notifier(httpx.AsyncClient(transport=httpx.MockTransport(api.handle), base_url="http://api"), "aisre-system",
                    NotifySettings(retry=FAST))


def team_route(url: str, names: tuple[str, ...] = ("chat", "pager")) -> dict[str, Any]:
    return {"metadata": {"namespace": "team-a", "name": "oncall", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
            "spec": {"sinks": [sinks(url)[n] for n in names]}}


async def test_the_notifier_records_deliveries_and_a_restart_sends_nothing_twice(servers: SinkServers) -> None:
    api = FakeAPI(incident(), creds(servers.url))
    first = notifier(api)
    first.routes[("team-a", "oncall")] = team_route(servers.url)
    assert await first.notify("team-a", "checkout-crashloop") is None
    status = api.incident["status"]
    assert [(r["sink"], r["result"], r["event"]) for r in status["notifications"]] == [("chat", "Sent", "Identified"),
                                                                                      ("pager", "Sent", "Identified")]
    thread = next(s for s in status["notified"] if s["sink"] == "chat")["thread"]
    await first.close()

    # a restart: a new notifier, the same Incident (and a redelivered event) send nothing
    again = notifier(api)
    again.routes[("team-a", "oncall")] = team_route(servers.url)
    await again.notify("team-a", "checkout-crashloop")
    await again.notify("team-a", "checkout-crashloop")
    assert len(servers.to("/slack/")) == 1 and len(servers.to("/pagerduty/")) == 1

    # it resolves: a reply in the same thread, the page resolved with the same key
    api.incident["status"].update(state="Resolved", resolvedAt="2026-02-01T11:00:00Z")
    await again.notify("team-a", "checkout-crashloop")
    slack, pager = servers.to("/slack/"), servers.to("/pagerduty/")
    assert len(slack) == 2 and slack[1].body["thread_ts"] == thread and servers.threads[thread]
    assert [p.body["event_action"] for p in pager] == ["trigger", "resolve"]
    assert pager[0].body["dedup_key"] == pager[1].body["dedup_key"]
    assert len(api.incident["status"]["notifications"]) == 4
    await again.close()


async def test_the_notifier_reads_secrets_of_the_route_namespace_only(servers: SinkServers) -> None:
    api = FakeAPI(incident(), creds(servers.url))
    central = notifier(api)
    route = team_route(servers.url, ("chat",))
    route["metadata"]["namespace"] = "aisre-system"  # a cluster-wide route: its Secret is in aisre-system
    central.routes[("aisre-system", "oncall")] = route
    await central.notify("team-a", "checkout-crashloop")
    assert api.secret_paths == ["/api/v1/namespaces/aisre-system/secrets/creds"]
    [record] = api.incident["status"]["notifications"]
    assert record["result"] == "Failed" and record["error"] == "Secret aisre-system/creds not found"
    assert servers.requests == []
    await central.close()


async def test_the_notifier_ignores_namespaces_no_route_can_see(servers: SinkServers) -> None:
    api = FakeAPI(incident(), creds(servers.url))
    quiet = notifier(api)
    quiet.routes[("team-b", "theirs")] = {**team_route(servers.url), "metadata": {"namespace": "team-b", "name": "theirs"}}
    assert not quiet.interested("team-a")
    quiet.schedule("team-a", "checkout-crashloop")
    assert quiet.tasks == {}
    await quiet.close()


async def test_one_delivery_run_per_incident_at_a_time_and_a_change_during_it_runs_it_again() -> None:
    import asyncio

    class Counting(Notifier):
        runs: list[str] = []
        running = 0

        async def notify(self, namespace: str, name: str) -> float | None:
            self.running += 1
            assert self.running == 1, "two runs for one Incident at once"
            self.runs.append(name)
            await asyncio.sleep(0.05)
            self.running -= 1
            return None

    api = FakeAPI(incident(), {})
    counting = Counting(httpx.AsyncClient(transport=httpx.MockTransport(api.handle), base_url="http://api"), "aisre-system",
                        NotifySettings())
    counting.routes[("team-a", "r")] = {"metadata": {"namespace": "team-a", "name": "r"}, "spec": {}}
    for _ in range(3):  # a burst of watch events before the run starts: one run reads the latest state
        counting.schedule("team-a", "checkout-crashloop")
    await asyncio.sleep(0.01)
    for _ in range(3):  # more while it runs: one more run after it
        counting.schedule("team-a", "checkout-crashloop")
    await asyncio.sleep(0.3)
    assert counting.runs == ["checkout-crashloop", "checkout-crashloop"]
    await counting.close()


async def test_a_route_is_swept_when_first_seen_and_when_its_spec_changes_only() -> None:
    import asyncio

    class Sweeps(Notifier):
        swept: list[int] = []

        async def _sweep(self, route: dict[str, Any]) -> None:
            self.swept.append(route["metadata"]["generation"])

    sweeps = Sweeps(httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404))), "aisre-system",
                    NotifySettings())
    route = {"metadata": {"namespace": "team-a", "name": "r", "generation": 1}, "spec": {}}
    sweeps.observe_route("ADDED", route)
    sweeps.observe_route("MODIFIED", {**route, "status": {"sinks": "slack"}})  # the operator's own status write
    sweeps.observe_route("MODIFIED", {**route, "metadata": {**route["metadata"], "generation": 2}})
    await asyncio.sleep(0.05)
    assert sweeps.swept == [1, 2]
    sweeps.observe_route("DELETED", route)
    assert sweeps.routes == {} and not sweeps.interested("team-a")
    await sweeps.close()
