"""A Predicted Incident's Investigation: the forecast is its root cause.

Nothing has failed yet, so no agent can see the failure; what is known is the forecast the
operator made. The Investigation of a Predicted Incident runs its agents like any other (the
context: the workload, its events, its metrics), and its root cause is the predicted
category on the predicted resource, with the forecast (series, fit, interval) as the
evidence it cites. The recommendations then come from the catalog as for any root cause
(``aisre.operator.recommend``), and the executor decides them with the policy's
``predictedMode`` (``aisre.remediation.policy``).

Trust: only the operator's own forecasts count. The Incident must carry the operator's mark
over its fingerprint, and that fingerprint must be the one the signal, the Incident's
namespace and the resource give (``aisre.forecast.targets.Subject``), so what the mark
binds is the signal and the resource; the category comes from the signal, never from the
spec. An Incident that fails either check is investigated like any other.

Talks to: the API server (one read of the owning Incident).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from aisre.api.evidence import Finding, finding_id
from aisre.api.incident import PredictedFailure, operator_forecast
from aisre.api.meta import GROUP, VERSION, ResourceRef
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.forecast.model import HOUR
from aisre.forecast.targets import category_of
from aisre.ranking.rank import RankedHypothesis

AGENT = "forecast"
KIND = "Forecast"


@dataclass(frozen=True)
class Forecast:
    """A forecast the operator made, as its Investigation uses it."""

    category: C
    resource: ResourceRef
    prediction: PredictedFailure

    @property
    def owner(self) -> str:
        return f"{self.resource.kind}/{self.resource.name}"  # how findings and hypotheses name a resource


def trusted_forecast(incident: dict[str, Any], key: bytes) -> Forecast | None:
    """The Incident's forecast, when the operator made it (pure; see the module's Trust)."""
    spec = incident.get("spec") or {}
    if not spec.get("prediction") or not spec.get("resource"):
        return None
    try:
        prediction = PredictedFailure.model_validate(spec["prediction"])
        resource = ResourceRef.model_validate(spec["resource"])
    except ValidationError:
        return None
    category = category_of(prediction.signal)
    if category is None or not operator_forecast(incident, key):
        return None  # not marked, or the spec's signal or resource is not what the operator marked
    return Forecast(category, resource, prediction)


async def forecast_of(client: httpx.AsyncClient, namespace: str, incident: str, key: bytes) -> Forecast | None:
    """The owning Incident's forecast, or None (not a forecast, not the operator's, not readable)."""
    response = await client.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{incident}")
    if response.status_code != 200:
        return None
    return trusted_forecast(response.json(), key)


def forecast_finding(forecast: Forecast) -> Finding:
    """The forecast as evidence: the series, the fit and the interval (pure)."""
    p = forecast.prediction
    hours = (p.failure_time - (p.fit.window_end if p.fit else p.failure_time)).total_seconds() / HOUR
    when = f"at {p.failure_time.isoformat()}" + (f" ({hours:.1f} h after the last sample)" if p.fit else "")
    summary = (f"forecast: {forecast.owner} reaches its limit ({p.signal}) {when}, confidence {p.confidence:.2f}"
               + (f"; {p.explanation}" if p.explanation else ""))
    data = {"owner": forecast.owner, **p.model_dump(mode="json", by_alias=True, exclude_none=True, include={
        "signal", "model", "container", "failure_time", "earliest", "latest", "confidence", "series", "current", "limit",
        "fit"})}
    return Finding(id=finding_id(AGENT, KIND, p.signal, forecast.owner), agent=AGENT, kind=KIND, summary=summary[:1000],
                   resource=forecast.resource, time=p.failure_time, data=data)


def lead_with_forecast(forecast: Forecast, hypotheses: list[RankedHypothesis],
                       findings: list[Finding]) -> tuple[list[RankedHypothesis], list[Finding]]:
    """The forecast first, as the root cause and its evidence; the agents' hypotheses after
    it (what else they saw), the same cause on the same resource only once (pure)."""
    finding = forecast_finding(forecast)
    top = RankedHypothesis(
        category=forecast.category, resource=forecast.owner, confidence=round(forecast.prediction.confidence, 4),
        score=forecast.prediction.confidence, summary=f"predicted {forecast.category.value} on {forecast.owner}: "
        f"{finding.summary}"[:1000], evidence_ids=(finding.id,))
    rest = [h for h in hypotheses if (h.category, h.resource) != (top.category, top.resource)]
    return [top, *rest], [finding, *findings]
