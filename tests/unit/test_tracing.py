"""Traces: off without the OTEL_* variables (no-op spans, no trace id anywhere), W3C
traceparents checked before they are trusted, and with an exporter the spans of an
investigation's steps — agents, the ranking, the choice of actions, remediation decisions
recorded after the fact — in one trace that continues the Incident's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aisre import audit, tracing
from aisre.api.evidence import AgentResult
from aisre.api.investigation import AgentStatus
from aisre.api.taxonomy import AgentName
from aisre.operator import investigation

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure({}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.mark.parametrize("env, on", [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "aisre"}, False),  # a name is not a destination
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "console"}, False),  # not shipped
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
])
def test_tracing_is_on_only_when_the_standard_variables_name_an_endpoint(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled_by(env) is on


def test_off_every_span_is_a_no_op_and_nothing_has_a_trace_id() -> None:
    assert not tracing.configure({})
    with tracing.span("investigation", parent=PARENT) as root:
        assert not root.is_recording()
        assert tracing.trace_id() is None and tracing.traceparent() is None
        tracing.annotate(x=1)  # nothing to annotate, nothing raised
    assert tracing.record_span("remediation decision", parent=PARENT) is None
    assert audit.record("PlanChosen", actor="a", obj={}, reason="r")["traceId"] is None


@pytest.mark.parametrize("value, valid", [
    (PARENT, True),
    (PARENT.upper(), True),  # hex case does not matter
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # all-zero trace id
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),  # all-zero span id
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),  # version ff is invalid
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", False),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01; drop table", False),
    ("", False), (None, False),
])
def test_a_traceparent_is_taken_only_in_its_w3c_shape(value: str | None, valid: bool) -> None:
    assert (tracing.valid_traceparent(value) is not None) is valid


async def test_an_investigations_steps_are_spans_of_one_trace_that_continues_its_incidents(
        spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fine(_context: object) -> AgentResult:
        return AgentResult(agent="events", status=AgentStatus.SUCCESS)

    async def broken(_context: object) -> AgentResult:
        raise RuntimeError("agent bug")

    monkeypatch.setitem(investigation.AGENTS, AgentName.EVENTS, fine)
    monkeypatch.setitem(investigation.AGENTS, AgentName.LOGS, broken)
    with tracing.span("investigation", parent=PARENT) as root:
        await investigation.run_agent(AgentName.EVENTS, None, 5.0)  # type: ignore[arg-type]
        failed = await investigation.run_agent(AgentName.LOGS, None, 5.0)  # type: ignore[arg-type]
        root_trace = tracing.trace_id()
        record = audit.record("RootCauseChosen", actor="a", obj={}, reason="r")
    assert failed.status == AgentStatus.ERROR  # the agent's bug cost its evidence, not the investigation
    assert root_trace == PARENT.split("-")[1] and record["traceId"] == root_trace
    assert tracing.traceparent(root).startswith(f"00-{root_trace}-")
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {"investigation", "agent events", "agent logs"}
    for name in ("agent events", "agent logs"):
        assert finished[name].parent.span_id == finished["investigation"].context.span_id
        assert format(finished[name].context.trace_id, "032x") == root_trace
    assert finished["agent events"].attributes["aisre.agent.status"] == "SUCCESS"
    assert finished["agent logs"].attributes["aisre.agent.status"] == "ERROR"
    assert not finished["agent logs"].status.is_ok and "agent bug" in finished["agent logs"].status.description
    assert finished["investigation"].parent.span_id == int(PARENT.split("-")[2], 16)


def test_a_decision_recorded_after_the_fact_joins_the_investigations_trace(spans: InMemorySpanExporter) -> None:
    start = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    traced = tracing.record_span("remediation action", parent=PARENT, start=start, end=start + dt.timedelta(seconds=3),
                                 attributes={"aisre.decision": "Execute", "aisre.policy": None},
                                 error="verification failed")
    assert traced == PARENT.split("-")[1]
    (action,) = spans.get_finished_spans()
    assert action.parent.span_id == int(PARENT.split("-")[2], 16)
    assert (action.end_time - action.start_time) == 3 * 10**9
    assert dict(action.attributes) == {"aisre.decision": "Execute"} and not action.status.is_ok
    assert tracing.record_span("remediation decision", parent=None) is None  # no trace to join: none made


async def test_remediation_decisions_and_actions_are_spans_of_the_investigations_trace(
        spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's one place where a decision or a result is told (Event + audit record)
    is also where it joins the trace its Investigation's status.traceParent names."""
    import httpx

    from aisre.api.incident import ActionResult, Decision, JournalEntry
    from aisre.api.meta import ResourceRef
    from aisre.remediation.executor import Remediator

    told: list[dict[str, object]] = []
    monkeypatch.setattr(audit, "emit", lambda decision, **fields: told.append({"decision": decision, **fields}))
    client = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(lambda _: httpx.Response(201, json={})))
    remediator = Remediator(client, client, instance="aisre-0")
    remediator._traces["incident-uid"] = PARENT
    incident = {"metadata": {"name": "deployment-web-1", "namespace": "shop", "uid": "incident-uid"}}
    start = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    decided = JournalEntry(id="a1", type="rolloutRestart", target=ResourceRef(kind="Deployment", name="web"),
                           decision=Decision.EXECUTE, reason="PolicyAllows: auto", policy="shop/web", decided_at=start)
    ran = decided.model_copy(update={"started_at": start, "finished_at": start + dt.timedelta(seconds=4),
                                     "result": ActionResult.FAILED})
    await remediator._event(incident, decided, "Normal", "RemediationExecute", "rolloutRestart Deployment/web: auto")
    await remediator._event(incident, ran, "Warning", "RemediationFailed", "rolloutRestart Deployment/web: not ready")
    other = {"metadata": {"name": "x", "namespace": "shop", "uid": "untraced"}}
    await remediator._event(other, decided, "Normal", "RemediationExecute", "no trace for this one")
    await client.aclose()
    decision, action = spans.get_finished_spans()
    assert (decision.name, action.name) == ("remediation decision", "remediation action")
    assert {decision.parent.span_id, action.parent.span_id} == {int(PARENT.split("-")[2], 16)}
    assert decision.attributes["aisre.decision"] == "Execute" and decision.attributes["aisre.policy"] == "shop/web"
    assert action.end_time - action.start_time == 4 * 10**9 and not action.status.is_ok
    assert [t["trace_id"] for t in told] == [PARENT.split("-")[1]] * 2 + [None]
