"""Pages from PagerDuty (webhooks v3) and Opsgenie: the signature check, what a page names,
the signal it becomes, the Incident it raises, the HTTP endpoints, and which pages a
resolved Incident resolves with whose credentials."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from aisre.api.incident import PagerSystem
from aisre.api.signal import SignalSource
from aisre.bench.operator_thread import free_port
from aisre.notify.pages import pages_to_close, resolve
from aisre.operator.detection import store
from aisre.operator.detection.detector import Detector, Open, Resolve, Update
from aisre.operator.detection.pagers import (
    OpsgenieWebhook,
    Skipped,
    PagerDutyWebhook,
    opsgenie_page,
    page_of,
    pagerduty_page,
    pagerduty_signature,
    pagerduty_signed,
    signal_of,
)
from aisre.operator.detection.pipeline import Pipeline
from aisre.operator.http import Webhook, start_http
from aisre.operator.pager_step import needs_resolving
from tests.unit.test_detection import TH, at, deployment, replicaset, service

SECRET = "pd-webhook-secret-new"
OLD_SECRET = "pd-webhook-secret-old"


def pd_event(event_type: str = "incident.triggered", **data: Any) -> dict[str, Any]:
    """A PagerDuty v3 webhook body, as PagerDuty documents it."""
    incident = {"id": "Q1ABCDEF", "type": "incident", "self": "https://api.pagerduty.com/incidents/Q1ABCDEF",
                "html_url": "https://acme.pagerduty.com/incidents/Q1ABCDEF", "number": 42,
                "status": "triggered" if event_type == "incident.triggered" else "resolved",
                "incident_key": "checkout-5xx", "created_at": "2026-11-24T12:00:00Z", "title": "5xx above SLO",
                "service": {"id": "PSVC1", "type": "service_reference", "summary": "Checkout API"},
                "urgency": "high", "priority": None, **data}
    return {"event": {"id": "01EVT", "event_type": event_type, "resource_type": "incident",
                      "occurred_at": "2026-11-24T12:00:00.000Z", "agent": None, "client": None, "data": incident}}


def og_event(action: str = "Create", **alert: Any) -> dict[str, Any]:
    """An Opsgenie webhook integration body, as Opsgenie documents it."""
    body = {"alertId": "70413a06-38d6-4c85-92b8-5ebc900d42e2", "message": "checkout latency high", "tags": [],
            "tinyId": "1791", "entity": "", "alias": "checkout-latency", "createdAt": 1764000000000,
            "username": "Alert API", "details": {}, "priority": "P2", **alert}
    return {"action": action, "alert": body, "source": {"name": "", "type": "api"}, "integrationName": "aisre",
            "integrationType": "Webhook"}


@pytest.fixture
def world() -> tuple[Detector, Pipeline]:
    detector = Detector(TH, "aisre-system", write_interval=0.0)
    pipeline = Pipeline(detector, TH)
    for name in ("web", "db"):
        pipeline.handle("Deployment", "ADDED", deployment(name))
        pipeline.handle("ReplicaSet", "ADDED", replicaset(name))
    pipeline.handle("Service", "ADDED", service("checkout", {"app": "web"}))
    pipeline.handle("Service", "ADDED", service("shared", {"tier": "x"}))  # selects no one workload
    return detector, pipeline


# --- the signature -----------------------------------------------------------------------

def test_a_good_signature_is_taken_and_a_bad_or_missing_one_is_not() -> None:
    body = json.dumps(pd_event()).encode()
    assert pagerduty_signed(body, pagerduty_signature(body, SECRET), [SECRET])
    assert not pagerduty_signed(body, pagerduty_signature(body, "another secret"), [SECRET])
    assert not pagerduty_signed(body + b" ", pagerduty_signature(body, SECRET), [SECRET])  # the raw body, byte for byte
    assert not pagerduty_signed(body, None, [SECRET])
    assert not pagerduty_signed(body, "", [SECRET])
    assert not pagerduty_signed(body, pagerduty_signature(body, SECRET)[3:], [SECRET])  # no v1= scheme
    assert not pagerduty_signed(body, "v0=" + pagerduty_signature(body, SECRET)[3:], [SECRET])
    assert not pagerduty_signed(body, pagerduty_signature(body, SECRET), [])  # no secret: nothing verifies


def test_while_a_secret_rotates_either_signature_is_taken() -> None:
    body = json.dumps(pd_event()).encode()
    both = f"{pagerduty_signature(body, OLD_SECRET)},{pagerduty_signature(body, SECRET)}"
    assert pagerduty_signed(body, both, [SECRET])  # PagerDuty signs with both; we hold the new one
    assert pagerduty_signed(body, both, [OLD_SECRET])  # or still the old one
    assert pagerduty_signed(body, pagerduty_signature(body, OLD_SECRET), [SECRET, OLD_SECRET])  # we hold both
    assert not pagerduty_signed(body, both, ["neither"])


# --- what a page names ---------------------------------------------------------------------

def test_a_pagerduty_page_names_its_workload_in_custom_details(world) -> None:
    detector, pipeline = world
    page = pagerduty_page(PagerDutyWebhook.model_validate(pd_event(custom_details={"namespace": "shop", "workload": "web"})))
    assert not isinstance(page, Skipped) and page.system == PagerSystem.PAGERDUTY and page.firing
    signal = signal_of(page, pipeline.index, at(0), lambda _: True, hold=900)
    assert not isinstance(signal, Skipped)
    assert signal.source == SignalSource.PAGERDUTY and signal.reason == "PagerDutyIncident"
    assert (signal.object.kind, signal.object.name, signal.object.namespace) == ("Deployment", "web", "shop")
    assert signal.detail["page"] == {"system": "pagerDuty", "id": "Q1ABCDEF", "key": "checkout-5xx",
                                     "url": "https://acme.pagerduty.com/incidents/Q1ABCDEF"}
    assert signal.until == at(900) and signal.message == "5xx above SLO"
    # its resolve is the same signal, cleared
    resolved = signal_of(pagerduty_page(PagerDutyWebhook.model_validate(pd_event(
        "incident.resolved", custom_details={"namespace": "shop", "workload": "web"}))), pipeline.index, at(5),
        lambda _: True, hold=900)
    assert not isinstance(resolved, Skipped) and not resolved.firing and resolved.key == signal.key


@pytest.mark.parametrize("data, named", [
    ({"body": {"details": {"Namespace": "shop", "Deployment": "db"}}}, ("Deployment", "db")),
    ({"custom_fields": [{"name": "namespace", "value": "shop"}, {"name": "service", "value": "checkout"}]},
     ("Deployment", "web")),  # a Service that selects one workload is that workload
    ({"custom_details": {"namespace": "shop", "service": "shared"}}, ("Service", "shared")),
    ({"title": "shop/db: replication lag"}, ("Deployment", "db")),
    ({"service": {"id": "P", "summary": "shop/checkout"}}, ("Deployment", "web")),
])
def test_what_a_pagerduty_page_names(world, data: dict[str, Any], named: tuple[str, str]) -> None:
    _, pipeline = world
    page = page_of("pagerduty", pd_event(**data))
    assert not isinstance(page, Skipped)
    signal = signal_of(page, pipeline.index, at(0), lambda _: True, hold=0)
    assert not isinstance(signal, Skipped), signal
    assert (signal.object.kind, signal.object.name) == named and signal.until is None


@pytest.mark.parametrize("data, why", [
    ({}, "names no namespace"),
    ({"custom_details": {"namespace": "shop", "workload": "cart"}}, "shop/cart (workload) is not in the cluster"),
    ({"custom_details": {"namespace": "Shop!", "workload": "web"}}, "not a namespace name"),
    ({"custom_details": {"namespace": "shop", "pod": "../../x"}}, "not an object name"),
    ({"title": "billing/web is down"}, "names no namespace"),  # no such namespace's workload
    ({"incident_key": "aisre-3f2c-uid"}, "aisre's own page"),
])
def test_a_page_that_names_nothing_the_cluster_has_is_skipped_with_its_reason(world, data: dict[str, Any], why: str) -> None:
    _, pipeline = world
    page = page_of("pagerduty", pd_event(**{"title": "shop/web down", **data}) if "incident_key" in data
                   else pd_event(**data))
    found = signal_of(page, pipeline.index, at(0), lambda _: True, hold=0)  # type: ignore[arg-type]
    assert isinstance(found, Skipped) and why in found.reason, found
    assert found.outcome == ("ignored" if "own page" in why else "unmatched")


def test_a_page_about_a_namespace_not_watched_is_skipped(world) -> None:
    _, pipeline = world
    page = page_of("pagerduty", pd_event(custom_details={"namespace": "shop", "workload": "web"}))
    found = signal_of(page, pipeline.index, at(0), lambda ns: ns != "shop", hold=0)  # type: ignore[arg-type]
    assert isinstance(found, Skipped) and found.outcome == "unmatched" and "namespace shop is not watched" in found.reason


def test_only_triggers_and_resolves_are_pages() -> None:
    assert page_of("pagerduty", pd_event("incident.acknowledged")) == Skipped(
        "ignored", "incident.acknowledged: not a trigger or a resolve")
    assert page_of("opsgenie", og_event("AddNote")) == Skipped("ignored", "AddNote: not a Create or a Close")
    with pytest.raises(ValueError):
        page_of("pagerduty", {"messages": []})  # a v2 webhook: not this API
    with pytest.raises(ValueError):
        page_of("opsgenie", {"alert": {}})


def test_an_opsgenie_alert_names_its_workload_in_tags_or_details(world) -> None:
    _, pipeline = world
    tagged = opsgenie_page(OpsgenieWebhook.model_validate(og_event(tags=["team:payments", "namespace:shop", "workload:web"])))
    assert not isinstance(tagged, Skipped) and tagged.firing and tagged.key == "checkout-latency"
    signal = signal_of(tagged, pipeline.index, at(0), lambda _: True, hold=60)
    assert not isinstance(signal, Skipped) and signal.source == SignalSource.OPSGENIE
    assert signal.object.name == "web" and signal.severity == "high"  # P2
    detailed = page_of("opsgenie", og_event(details={"namespace": "shop", "deployment": "db"}, priority="P1"))
    signal = signal_of(detailed, pipeline.index, at(0), lambda _: True, hold=60)  # type: ignore[arg-type]
    assert not isinstance(signal, Skipped) and signal.object.name == "db" and signal.severity == "critical"
    entity = page_of("opsgenie", og_event(entity="shop/db"))
    assert not isinstance(signal_of(entity, pipeline.index, at(0), lambda _: True, hold=60), Skipped)  # type: ignore[arg-type]
    closed = page_of("opsgenie", og_event("Close", tags=["namespace:shop", "workload:web"]))
    assert not isinstance(closed, Skipped) and not closed.firing
    own = signal_of(page_of("opsgenie", og_event(alias="aisre-uid-1", tags=[  # type: ignore[arg-type]
        "namespace:shop", "workload:web"])), pipeline.index, at(0), lambda _: True, hold=60)
    assert isinstance(own, Skipped) and own.outcome == "ignored" and "aisre's own page" in own.reason


# --- the Incident it raises ----------------------------------------------------------------

def _page_signal(pipeline: Pipeline, event: str = "incident.triggered", hold: float = 900, when: float = 0):
    page = page_of("pagerduty", pd_event(event, custom_details={"namespace": "shop", "workload": "web"}))
    return signal_of(page, pipeline.index, at(when), lambda _: True, hold=hold)  # type: ignore[arg-type]


def test_a_page_raises_an_incident_that_records_it_and_its_pager_resolving_it(world) -> None:
    detector, pipeline = world
    assert detector.alert(_page_signal(pipeline))
    detector.decide(at(0))
    opened = [op for op in detector.decide(at(2)) if isinstance(op, Open)]
    assert len(opened) == 1
    tracked = opened[0].tracked
    spec = store.spec_of(tracked)
    assert spec["source"] == "pagerduty" and spec["resource"]["name"] == "web"
    assert spec["pages"] == [{"system": "pagerDuty", "id": "Q1ABCDEF", "key": "checkout-5xx",
                              "url": "https://acme.pagerduty.com/incidents/Q1ABCDEF", "closed": False}]
    # the page again (PagerDuty redelivers): no second Incident, no second count
    detector.alert(_page_signal(pipeline, when=3))
    assert not [op for op in detector.decide(at(4)) if isinstance(op, Open)] and tracked.occurrences == 1
    # PagerDuty resolves it: recorded as closed at its source (aisre never resolves it again), then resolved
    detector.alert(_page_signal(pipeline, "incident.resolved", when=5))
    assert tracked.pages and all(p["closed"] for p in tracked.pages.values()) and tracked.dirty
    ops = detector.decide(at(6)) + detector.decide(at(17))
    assert any(isinstance(op, Update) for op in ops) and any(isinstance(op, Resolve) for op in ops)
    assert store.spec_of(tracked)["pages"][0]["closed"] is True


def test_a_page_counts_only_for_its_hold_then_the_cluster_decides(world) -> None:
    detector, pipeline = world
    detector.alert(_page_signal(pipeline, hold=5))
    detector.decide(at(0))
    assert [op for op in detector.decide(at(2)) if isinstance(op, Open)]
    assert not [op for op in detector.decide(at(6)) if isinstance(op, Resolve)]  # clear from 6 s
    resolved = [op for op in detector.decide(at(17)) if isinstance(op, Resolve)]
    assert resolved and not resolved[0].tracked.pages[next(iter(resolved[0].tracked.pages))]["closed"]


def test_a_restarted_operator_knows_the_pages_of_the_incidents_it_adopts(world) -> None:
    detector, pipeline = world
    detector.alert(_page_signal(pipeline))
    detector.decide(at(0))
    tracked = next(op for op in detector.decide(at(2)) if isinstance(op, Open)).tracked
    key = b"k" * 32
    body = {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": tracked.name, "namespace": tracked.namespace, **store._metadata(tracked, key)},
            "spec": store.spec_of(tracked)}
    again = store.tracked_from(body, at(3), key, "aisre-system")
    assert again is not None and again.pages == tracked.pages
    # so the pager's resolve, after the restart, still marks it closed
    fresh = Detector(TH, "aisre-system", index=pipeline.index, write_interval=0.0)
    fresh.adopt(again)
    fresh.alert(_page_signal(pipeline, "incident.resolved", when=4))
    assert all(p["closed"] for p in again.pages.values())


# --- the endpoints -------------------------------------------------------------------------

class _Detection:
    """What the endpoints use of the detection service."""

    def __init__(self, pipeline: Pipeline, detector: Detector) -> None:
        self.pipeline, self.detector = pipeline, detector
        self.th = SimpleNamespace(page_hold=60.0)
        self.taken: list[Any] = []

    def alerts(self, signals: list[Any]) -> list[Any]:
        self.taken.extend(signals)
        return [s for s in signals if not self.detector.alert(s)]


async def test_the_pager_endpoints(world) -> None:
    detector, pipeline = world
    detection = _Detection(pipeline, detector)
    hook = Webhook(detection=detection, pagerduty_secrets=(SECRET,), opsgenie_token="og-token")
    port = free_port()
    runner = await start_http(asyncio.Event(), "127.0.0.1", port, hook)
    body = json.dumps(pd_event(custom_details={"namespace": "shop", "workload": "web"})).encode()
    signed = {"X-PagerDuty-Signature": pagerduty_signature(body, SECRET), "Content-Type": "application/json"}
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.post("/pagerduty", content=body)).status_code == 401
            assert (await client.post("/pagerduty", content=body, headers={
                "X-PagerDuty-Signature": pagerduty_signature(body, "wrong")})).status_code == 401
            assert (await client.post("/pagerduty", content=b"{no", headers={
                "X-PagerDuty-Signature": pagerduty_signature(b"{no", SECRET)})).status_code == 400
            taken = await client.post("/pagerduty", content=body, headers={**signed, "traceparent": parent})
            assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
            assert detection.taken[-1].traceparent == parent and detection.taken[-1].object.name == "web"
            nothing = json.dumps(pd_event(custom_details={"namespace": "shop", "workload": "gone"})).encode()
            unmatched = await client.post("/pagerduty", content=nothing,
                                          headers={"X-PagerDuty-Signature": pagerduty_signature(nothing, SECRET)})
            assert unmatched.status_code == 202 and unmatched.json()["accepted"] == 0
            assert "not in the cluster" in unmatched.json()["skipped"][0] and len(detection.taken) == 1
            # Opsgenie: the bearer token, as Alertmanager's
            alert = og_event(tags=["namespace:shop", "workload:db"])
            assert (await client.post("/opsgenie", json=alert)).status_code == 401
            assert (await client.post("/opsgenie", json=alert, headers={"Authorization": "Bearer no"})).status_code == 401
            assert (await client.post("/opsgenie", json={"alert": 1}, headers={"Authorization": "Bearer og-token"})
                    ).status_code == 400
            ok = await client.post("/opsgenie", json=alert, headers={"Authorization": "Bearer og-token",
                                                                     "traceparent": "not-a-traceparent"})
            assert ok.status_code == 202 and ok.json()["accepted"] == 1 and detection.taken[-1].traceparent is None
        hook.pagerduty_secrets, hook.opsgenie_token = (), None  # none configured: fail closed
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.post("/pagerduty", content=body, headers=signed)).status_code == 503
            assert (await client.post("/opsgenie", json=alert, headers={"Authorization": "Bearer og-token"})
                    ).status_code == 503
    finally:
        await runner.cleanup()


# --- resolving the pages of a resolved Incident ---------------------------------------------

def _incident(state: str = "Resolved", pages: list[dict[str, Any]] | None = None,
              tried: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "deployment-web-1", "namespace": "shop", "uid": "u1"},
            "spec": {"title": "t", "severity": "high", "source": "pagerduty",
                     "resource": {"kind": "Deployment", "name": "web"},
                     "pages": pages if pages is not None else [
                         {"system": "pagerDuty", "id": "Q1", "key": "checkout-5xx", "closed": False},
                         {"system": "opsgenie", "id": "og-1", "key": "checkout/latency?x", "closed": False},
                         {"system": "pagerDuty", "id": "Q2", "key": "k2", "closed": True}]},
            "status": {"state": state, **({"pages": tried} if tried else {})}}


def _route(name: str, namespace: str, *sinks: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"sinks": list(sinks), **spec}}


PD_SINK = {"name": "pd", "pagerDuty": {"routingKeySecretRef": {"name": "s", "key": "pd"},
                                       "apiUrl": "https://events.example.test"}}
OG_SINK = {"name": "og", "opsgenie": {"apiKeySecretRef": {"name": "s", "key": "og"},
                                      "apiUrl": "https://api.example.test"}}


def test_which_pages_a_resolved_incident_resolves_and_with_whose_credentials() -> None:
    routes = [_route("chat-only", "shop", {"name": "w", "webhook": {"url": "https://hooks.example.test/x"}}),
              _route("paused", "shop", PD_SINK, paused=True),
              _route("other-team", "billing", PD_SINK),  # sees only its own namespace
              _route("oncall", "shop", PD_SINK)]
    closes = pages_to_close(routes, _incident(), "aisre-system")
    assert [(c.page["id"], c.route, c.sink.name if c.sink else None) for c in closes] == [
        ("Q1", "shop/oncall", "pd"), ("og-1", None, None)]  # Q2 its pager closed; no route has Opsgenie
    assert pages_to_close(routes, _incident("Identified"), "aisre-system") == []
    assert pages_to_close(routes, _incident(tried=[{"system": "pagerDuty", "id": "Q1"}, {"system": "opsgenie",
                                                                                         "id": "og-1"}]), "aisre-system") == []
    assert needs_resolving(_incident()) and not needs_resolving(_incident("Open"))
    assert not needs_resolving(_incident(pages=[{"system": "pagerDuty", "id": "Q2", "closed": True}]))


async def test_resolving_a_page_speaks_each_pagers_api() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"status": "success"})

    routes = [_route("oncall", "aisre-system", PD_SINK, OG_SINK)]  # the operator's namespace: every namespace
    closes = pages_to_close(routes, _incident(), "aisre-system")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        for close in closes:
            await resolve(client, close, "R0UT1NG" if close.page["system"] == "pagerDuty" else "genie-key")
    pd, og = seen
    assert str(pd.url) == "https://events.example.test/v2/enqueue"
    assert json.loads(pd.content) == {"event_action": "resolve", "dedup_key": "checkout-5xx", "routing_key": "R0UT1NG"}
    # the alias came from outside: one path segment, whatever it holds
    assert og.url.raw_path == b"/v2/alerts/checkout%2Flatency%3Fx/close?identifierType=alias"
    assert og.headers["Authorization"] == "GenieKey genie-key"

