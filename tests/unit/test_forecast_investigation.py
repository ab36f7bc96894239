"""A Predicted Incident is investigated like any other: the operator's own forecast leads as
the root cause with its fit as evidence, the catalog recommends from it, and the executor
decides with the policy's predictedMode."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import httpx
import pytest

from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.forecast.model import HOUR, Fit, Outcome, Prediction
from aisre.forecast.plan import Forecasted
from aisre.forecast.targets import MEMORY, VOLUME, Subject
from aisre.operator import incidents
from aisre.operator.detection import forecast as loop
from aisre.operator.forecast_step import lead_with_forecast, trusted_forecast
from aisre.operator.investigation import actions_of
from aisre.ranking.rank import RankedHypothesis
from aisre.remediation.executor import is_predicted

KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def memory_forecast(container: str = "app") -> Forecasted:
    fit = Fit(window_start=NOW.timestamp() - 3 * HOUR, window_end=NOW.timestamp(), segment_start=NOW.timestamp() - 3 * HOUR,
              points=180, slope_per_hour=2e7, slope_low_per_hour=1.9e7, slope_high_per_hour=2.1e7, level_now=1.5e8,
              r2=0.98, residual_sd=1e6)
    p = Prediction(Outcome.PREDICTED, 2.68e8, "reaches 2.68e+08 in 5.9 h", 0.97, 5.9 * HOUR, 5.5 * HOUR, 6.3 * HOUR, fit)
    subject = Subject(MEMORY.signal, ResourceRef(kind="Deployment", name="worker", namespace="shop"), "shop",
                      "container_memory_working_set_bytes  # {...}", f"container {container}", container)
    return Forecasted(subject, p, MEMORY.category, loop.model_of(None), MEMORY.action, MEMORY.advice)


def incident_of(f: Forecasted) -> dict[str, Any]:
    """The Predicted Incident the forecast loop creates for ``f``, as the API server returns it."""
    manifest = loop._manifest(f, f.subject.incident_name, NOW, KEY)
    manifest["metadata"]["uid"] = "u-1"
    return manifest


def test_the_operators_own_forecast_is_trusted_with_the_category_its_signal_gives() -> None:
    found = trusted_forecast(incident_of(memory_forecast()), KEY)
    assert found is not None and found.category == C.MEMORY_LIMIT_TOO_LOW and found.owner == "Deployment/worker"
    assert found.prediction.container == "app" and found.prediction.fit is not None


@pytest.mark.parametrize("tamper", ["no mark", "other key", "other resource", "other signal", "no prediction"])
def test_a_forecast_the_operator_did_not_make_is_not_trusted(tamper: str) -> None:
    incident = copy.deepcopy(incident_of(memory_forecast()))
    spec = incident["spec"]
    if tamper == "no mark":
        incident["metadata"]["annotations"].clear()
    elif tamper == "other resource":  # the mark binds the fingerprint, the fingerprint the resource
        spec["resource"]["name"] = "payments"
    elif tamper == "other signal":  # ... and the signal, which gives the category
        spec["prediction"]["signal"] = VOLUME.signal
    elif tamper == "no prediction":
        del spec["prediction"]
    key = b"x" * 32 if tamper == "other key" else KEY
    assert trusted_forecast(incident, key) is None
    # ... nor does the executor let the policy's predictedMode stand in for its mode.
    assert not is_predicted(incident, key)


def test_the_forecast_leads_the_hypotheses_with_its_fit_as_cited_evidence() -> None:
    forecast = trusted_forecast(incident_of(memory_forecast()), KEY)
    assert forecast is not None
    seen = Finding(id="wor-1", agent="workloads", kind="PodPending", summary="a pod pending")
    other = RankedHypothesis(C.INSUFFICIENT_RESOURCES, "Deployment/worker", 0.6, 0.6, "no room", ("wor-1",))
    same = RankedHypothesis(C.MEMORY_LIMIT_TOO_LOW, "Deployment/worker", 0.4, 0.4, "near its limit", ("wor-1",))
    hypotheses, findings = lead_with_forecast(forecast, [other, same], [seen])
    top = hypotheses[0]
    assert (top.category, top.resource) == (C.MEMORY_LIMIT_TOO_LOW, "Deployment/worker") and top.confidence == 0.97
    assert [h.summary for h in hypotheses[1:]] == ["no room"]  # the same cause once
    evidence = findings[0]
    assert top.evidence_ids == (evidence.id,) and evidence.kind == "Forecast" and findings[1:] == [seen]
    assert evidence.data["fit"]["r2"] == 0.98 and evidence.data["limit"] == 2.68e8 and evidence.data["container"] == "app"
    assert "Deployment/worker reaches its limit (memoryLimit)" in evidence.summary


def test_the_catalog_recommends_raising_the_forecast_containers_memory() -> None:
    forecast = trusted_forecast(incident_of(memory_forecast("sidecar")), KEY)
    assert forecast is not None
    hypotheses, findings = lead_with_forecast(forecast, [], [])
    actions = actions_of(hypotheses, findings, "shop")
    assert [a["type"] for a in actions] == [ActionType.SET_RESOURCES.value]
    assert actions[0]["target"] == {"kind": "Deployment", "name": "worker", "namespace": "shop"}
    assert actions[0]["parameters"]["container"] == "sidecar"


async def test_a_predicted_incident_starts_its_investigation_and_stays_predicted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incidents.kopf, "event", lambda *_, **__: None)  # no Kopf context here
    incident = incident_of(memory_forecast())
    assert incident["spec"]["investigate"] is True and is_predicted(incident, KEY)
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = httpx.Response(200, content=request.content).json()
        posted.append(body)
        return httpx.Response(201, json={**body, "metadata": {**body["metadata"], "uid": "inv-1"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://api") as client:
        patch = await incidents.start_investigation(incident, client, KEY)  # type: ignore[arg-type]
    assert [p["kind"] for p in posted] == ["Investigation"]
    assert patch["state"] == "Predicted" and patch["investigationRef"] == {"name": incident["metadata"]["name"], "uid": "inv-1"}
    assert [e["event"] for e in patch["timeline"]] == ["Predicted", "InvestigationStarted"]
    assert patch["timeline"][0]["message"].startswith("reaches 2.68e+08 in 5.9 h")
    assert incidents.waiting_state(incident["spec"]) == "Predicted" and incidents.waiting_state({}) == "Open"
