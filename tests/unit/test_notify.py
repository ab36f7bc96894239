"""Notifications, the pure parts: which routes and sinks an Incident's change goes to,
what each sink does (thread or reply, page once, resolve only what was paged), the message
and its redaction, backoff and Retry-After, and the per-route rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from aisre.api.crd import custom_resource_definition
from aisre.api.notification_route import NotificationRoute, NotificationRouteSpec
from aisre.notify import RateLimiter, RetryPolicy, notice_for, plan
from aisre.notify.base import (
    PermanentSinkError,
    RetryableSinkError,
    backoff_delay,
    retry_after_seconds,
    with_retries,
)
from aisre.notify.routing import digest, events_now, sink_action

OPERATOR_NS = "aisre-system"
SLACK = {"name": "chat", "slack": {"channel": "#oncall", "tokenSecretRef": {"name": "creds", "key": "slack"}}}
PAGER = {"name": "pager", "pagerDuty": {"routingKeySecretRef": {"name": "creds", "key": "pd"}}}


def route(namespace: str, name: str = "r", sinks: list[dict[str, Any]] | None = None, created: str = "2026-01-01T00:00:00Z",
          **selector: Any) -> dict[str, Any]:
    return {"apiVersion": "aisre.dev/v1alpha1", "kind": "NotificationRoute",
            "metadata": {"namespace": namespace, "name": name, "creationTimestamp": created, "generation": 1},
            "spec": {"selector": selector, "sinks": sinks or [SLACK, PAGER]}}


def incident(namespace: str = "team-a", severity: str = "high", state: str = "Identified", category: str | None = "BadImage",
             labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"state": state, "timeline": [{"time": "2026-02-01T10:00:00Z", "event": "RootCauseIdentified"}]}
    if category:
        st["rootCause"] = {"category": category, "confidence": 0.87, "summary": "image tag does not exist",
                           "resource": {"kind": "Deployment", "name": "checkout"}}
    st.update(status)
    return {"metadata": {"namespace": namespace, "name": "checkout-crashloop", "uid": "1111-2222",
                         "creationTimestamp": "2026-02-01T09:59:00Z", "labels": labels or {}},
            "spec": {"title": "checkout pods crash-looping", "severity": severity,
                     "resource": {"kind": "Deployment", "name": "checkout"}, "affected": [{"kind": "Pod", "name": "p1"}]},
            "status": st}


def targets(plans) -> set[tuple[str, str, str]]:
    return {(p.route, p.sink.name, p.action) for p in plans}


def test_a_team_route_sees_its_own_namespace_only_and_the_operator_namespace_sees_all() -> None:
    routes = [route("team-a", "mine"), route("team-b", "theirs", namespaces=["team-a"]),
              route(OPERATOR_NS, "everything"), route(OPERATOR_NS, "only-b", namespaces=["team-b"])]
    got = {(p.route, p.sink.name) for p in plan(routes, incident("team-a"), OPERATOR_NS)}
    assert got == {("team-a/mine", "chat"), ("team-a/mine", "pager"), (f"{OPERATOR_NS}/everything", "chat"),
                   (f"{OPERATOR_NS}/everything", "pager")}


@pytest.mark.parametrize("selector, inc, sent", [
    ({"minSeverity": "critical"}, incident(severity="high"), False),
    ({"minSeverity": "high"}, incident(severity="critical"), True),
    ({"categories": ["MemoryLeak"]}, incident(), False),
    ({"categories": ["BadImage"]}, incident(), True),
    ({"categories": ["BadImage"]}, incident(category=None, state="Investigating"), False),
    ({"labels": {"matchLabels": {"team": "payments"}}}, incident(labels={"team": "payments"}), True),
    ({"labels": {"matchLabels": {"team": "payments"}}}, incident(labels={"team": "search"}), False),
    ({"changes": ["Resolved"]}, incident(), False),
    ({"changes": ["Opened"]}, incident(category=None, state="Investigating"), True),
])
def test_the_selector(selector: dict[str, Any], inc: dict[str, Any], sent: bool) -> None:
    assert bool(plan([route("team-a", sinks=[SLACK], **selector)], inc, OPERATOR_NS)) is sent


def test_a_change_is_sent_once_per_sink_and_the_latest_change_wins() -> None:
    routes = [route("team-a")]
    first = plan(routes, incident(), OPERATOR_NS)
    assert targets(first) == {("team-a/r", "chat", "post"), ("team-a/r", "pager", "trigger")}
    assert {p.event for p in first} == {"Identified"}
    # what was sent is recorded: the same change again (a redelivered event, a restart) sends nothing
    notified = [{"route": "team-a/r", "sink": "chat", "sent": first[0].digest, "events": ["Identified"], "thread": "1.1"},
                {"route": "team-a/r", "sink": "pager", "sent": first[0].digest, "events": ["Identified"], "key": "aisre-1111-2222"}]
    assert plan(routes, incident(notified=notified), OPERATOR_NS) == []
    # an action awaiting approval: a reply in the thread, no second page
    waiting = [{"id": "a1", "type": "rollback", "target": {"kind": "Deployment", "name": "checkout"},
                "decision": "AwaitingApproval", "result": "Pending", "decidedAt": "2026-02-01T10:01:00Z"}]
    assert targets(plan(routes, incident(notified=notified, remediations=waiting), OPERATOR_NS)) == {("team-a/r", "chat", "reply")}
    # resolved: a reply, and the page resolved with the same key
    resolved = incident(state="Resolved", resolvedAt="2026-02-01T11:00:00Z", notified=notified)
    assert targets(plan(routes, resolved, OPERATOR_NS)) == {("team-a/r", "chat", "reply"), ("team-a/r", "pager", "resolve")}


def test_a_pager_is_never_resolved_when_it_was_not_paged_and_never_paged_twice() -> None:
    assert sink_action("pagerDuty", "Resolved", {}) is None
    assert sink_action("opsgenie", "Resolved", {"events": ["Identified"]}) == "resolve"
    assert sink_action("opsgenie", "Resolved", {"events": ["Identified", "Resolved"]}) is None
    assert sink_action("pagerDuty", "Identified", {"events": ["Opened"]}) is None
    assert sink_action("slack", "Identified", {}) == "post" and sink_action("slack", "Resolved", {"thread": "1.2"}) == "reply"
    assert sink_action("webhook", "Resolved", {"events": ["Identified"]}) == "post"


def test_an_incident_raised_from_a_page_is_not_paged_again_on_that_pager() -> None:
    paged = incident()
    paged["spec"]["pages"] = [{"system": "pagerDuty", "id": "Q1ABC"}]
    assert targets(plan([route("team-a")], paged, OPERATOR_NS)) == {("team-a/r", "chat", "post")}
    other = incident()
    other["spec"]["pages"] = [{"system": "opsgenie", "id": "og-1"}]
    assert ("team-a/r", "pager", "trigger") in targets(plan([route("team-a")], other, OPERATOR_NS))


def test_a_new_route_does_not_replay_what_happened_before_it_existed() -> None:
    late = route("team-a", created="2026-03-01T00:00:00Z")
    assert plan([late], incident(), OPERATOR_NS) == []
    paused = route("team-a")
    paused["spec"]["paused"] = True
    assert plan([paused], incident(), OPERATOR_NS) == []


def test_events_and_digest() -> None:
    inc = incident(state="Resolved", resolvedAt="2026-02-01T11:00:00Z")
    assert list(events_now(inc)) == ["Opened", "Identified", "Resolved"]
    assert digest(inc, "Identified") != digest(incident(category="MemoryLeak"), "Identified")
    # a timeline entry alone is no new message
    noisy = incident()
    noisy["status"]["timeline"].append({"time": "2026-02-01T10:05:00Z", "event": "Recalled"})
    assert digest(noisy, "Identified") == digest(incident(), "Identified")


def test_the_message_says_what_a_person_needs_first() -> None:
    investigation = {"status": {
        "hypotheses": [{"evidenceIds": ["e2", "e1"]}],
        "evidence": [{"id": "e1", "summary": "pull of registry.local/checkout:9.9 failed: not found"},
                     {"id": "e2", "summary": "ReplicaSet checkout-7f changed image at 09:58"},
                     {"id": "e3", "summary": "unrelated"}],
        "runbooks": [{"namespace": "team-a", "name": "bad-image", "title": "A tag that does not exist",
                      "steps": ["check the tag", "roll back", "fix CI", "fourth"]}]}}
    waiting = [{"id": "act-1", "type": "rollback", "target": {"kind": "Deployment", "name": "checkout"},
                "decision": "AwaitingApproval", "result": "Pending", "reason": "RequiresApproval: policy team-a/p"}]
    notice = notice_for(incident(remediations=waiting), investigation, "Identified", "https://grafana.example/d/aisre?var-ns={namespace}")
    heads = [h for h, _ in notice.sections()]
    assert heads == ["What is hurting", "State", "Root cause", "Evidence", "Runbook: A tag that does not exist", "Action", "Look"]
    text = notice.text()
    assert notice.headline == "[HIGH] checkout pods crash-looping (Identified)"
    assert "BadImage on Deployment/checkout (confidence 0.87): image tag does not exist" in text
    assert text.index("ReplicaSet checkout-7f") < text.index("pull of registry.local") and "unrelated" not in text
    assert "3. fix CI" in text and "fourth" not in text
    assert "kubectl aisre approve incident/checkout-crashloop act-1 -n team-a" in text
    assert "kubectl get incident checkout-crashloop -n team-a -o yaml" in text
    assert "https://grafana.example/d/aisre?var-ns=team-a" in text


def test_everything_in_the_message_is_redacted() -> None:
    leaky = incident()
    leaky["spec"]["title"] = "db login failed with password=hunter2hunter2"
    leaky["status"]["rootCause"]["summary"] = "token xoxb-1234567890-abcdefghij leaked in env"
    investigation = {"status": {"hypotheses": [{"evidenceIds": ["e1"]}], "evidence": [
        {"id": "e1", "summary": "Authorization: Bearer abcdefghijklmnop1234 sent to postgres://admin:s3cret@db:5432"}]}}
    text = notice_for(leaky, investigation, "Identified").text()
    for secret in ("hunter2hunter2", "xoxb-1234567890", "abcdefghijklmnop1234", "s3cret"):
        assert secret not in text
    assert "[REDACTED:" in text


def test_backoff_doubles_up_to_a_bound_and_retry_after_wins() -> None:
    policy = RetryPolicy(attempts=5, base_delay=1, max_delay=5)
    assert [backoff_delay(n, policy) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert backoff_delay(1, policy, retry_after=7) == 7
    assert retry_after_seconds("3") == 3 and retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    now = dt.datetime(2026, 2, 1, 10, 0, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after_seconds("Sun, 01 Feb 2026 10:00:30 GMT", now=now) == 30


def test_retries_stop_on_a_permanent_error_and_after_the_last_attempt() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RetryableSinkError("429", retry_after=2 if calls["n"] == 1 else None)
        return "ok"

    assert asyncio.run(with_retries(flaky, RetryPolicy(attempts=4, base_delay=1), sleep)) == ("ok", 3)
    assert slept == [2, 2]  # Retry-After first, then the second backoff step

    async def refused() -> None:
        raise PermanentSinkError("400")

    with pytest.raises(PermanentSinkError) as caught:
        asyncio.run(with_retries(refused, RetryPolicy(), sleep))
    assert caught.value.attempts == 1  # type: ignore[attr-defined]

    async def throttled_for_long() -> None:
        raise RetryableSinkError("429", retry_after=3600)

    with pytest.raises(RetryableSinkError):
        asyncio.run(with_retries(throttled_for_long, RetryPolicy(max_retry_after=60), sleep))


def test_the_rate_limit_is_a_sliding_minute_per_route() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.wait("a/r", 2) for _ in range(3)] == [0, 0, 60]
    assert limiter.wait("b/r", 2) == 0  # another route has its own minute
    now[0] = 30
    assert limiter.wait("a/r", 2) == 30
    now[0] = 60.5
    assert limiter.wait("a/r", 2) == 0


def test_the_crd_carries_the_rules_the_api_server_enforces() -> None:
    """The CEL rules are in the generated CRD (tests/cluster/test_notifications.py has the
    API server apply them); pydantic refuses the structural part here too."""
    rules = str(custom_resource_definition(NotificationRoute)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    for message in ("a sink has exactly one of slack, slackWebhook, teams, pagerDuty, opsgenie, webhook",
                    "sink names must be unique", "no credentials in a URL", "exactly one of url and urlSecretRef"):
        assert message in rules
    for spec in ({"sinks": []}, {"sinks": [{"name": "s", "slack": {"channel": "#c", "token": "xoxb-123"}}]},
                 {"sinks": [{"name": "Not A Name", "webhook": {"url": "https://example.com"}}]}):
        with pytest.raises(ValidationError):
            NotificationRouteSpec.model_validate(spec)


def test_the_route_explains_itself() -> None:
    crd = custom_resource_definition(NotificationRoute)
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["nr"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Sinks", "Severity", "Paused", "Age"]
    sink = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["sinks"]["items"]
    assert "namespace" not in sink["properties"]["slack"]["properties"]["tokenSecretRef"]["properties"]
