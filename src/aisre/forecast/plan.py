"""From forecasts to Predicted Incidents: which to open, which to update, which to resolve
and why, and the Incident spec each one carries. Pure: the operator's forecast loop gathers
the forecasts and the open Predicted Incidents, and writes what this returns.

A Predicted Incident opens when its forecast alerts (within the horizon, confident, the fit
explaining the data). It resolves by itself when the trend turns (no significant growth, a
fit that no longer explains the data, a sharp fall (a clean-up), a periodic reset due first, or the limit now more than
``RESOLVE_BEYOND`` horizons away: the margin keeps a forecast hovering at the horizon from
opening and resolving in turn), when the limit is reached (the forecast came true: reactive
detection opens the Incident of the failure itself), or when its series is gone. No answer
(Prometheus down, too little history) changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aisre.api.incident import ForecastFit, ForecastModel, IncidentSource, IncidentSpec, PredictedFailure
from aisre.api.taxonomy import ActionType, RootCauseCategory, Severity
from aisre.forecast.model import HOUR, Outcome, Prediction
from aisre.forecast.targets import Subject

RESOLVE_BEYOND = 1.5
TURNED = {Outcome.NO_TREND, Outcome.POOR_FIT, Outcome.RESETS_FIRST, Outcome.RESET, Outcome.CYCLE_PERIOD_UNKNOWN,
          Outcome.GROWTH_STOPPED}


@dataclass(frozen=True)
class Forecasted:
    subject: Subject
    prediction: Prediction
    category: RootCauseCategory
    model: ForecastModel
    action: ActionType | None = None
    advice: str = ""


@dataclass(frozen=True)
class OpenPredicted:
    forecast: Forecasted


@dataclass(frozen=True)
class UpdatePredicted:
    name: str
    forecast: Forecasted


@dataclass(frozen=True)
class ResolvePredicted:
    name: str
    reason: str  # TrendTurned | LimitReached | SeriesGone (CamelCase: a condition reason)
    message: str
    namespace: str = ""


PlanStep = OpenPredicted | UpdatePredicted | ResolvePredicted


@dataclass(frozen=True)
class OpenRecord:
    """A Predicted Incident that is open now."""

    name: str
    fingerprint: str
    signal: str
    namespace: str = ""


def most_urgent(forecasts: Iterable[Forecasted]) -> dict[str, Forecasted]:
    """One forecast per subject fingerprint (a Deployment's pods share one): an alerting one
    before any other, then the soonest."""
    def rank(f: Forecasted) -> tuple[int, float]:
        order = 0 if f.prediction.alerts else 1 if f.prediction.outcome == Outcome.AT_LIMIT else 2
        return order, f.prediction.eta_s if f.prediction.eta_s is not None else float("inf")
    best: dict[str, Forecasted] = {}
    for f in forecasts:
        key = f.subject.fingerprint
        if key not in best or rank(f) < rank(best[key]):
            best[key] = f
    return best


def plan(forecasts: Iterable[Forecasted], open_now: Iterable[OpenRecord], answered: set[str],
         horizon_s: float) -> list[PlanStep]:
    """``answered``: the signals whose queries answered this sweep (a series missing from an
    answered query is gone; from an unanswered one, unknown)."""
    best = most_urgent(forecasts)
    steps: list[PlanStep] = []
    opened = {record.fingerprint: record for record in open_now}
    for key, f in best.items():
        record = opened.get(key)
        p = f.prediction
        if p.alerts:
            steps.append(OpenPredicted(f) if record is None else UpdatePredicted(record.name, f))
        elif record is None:
            continue
        elif p.outcome == Outcome.AT_LIMIT:
            steps.append(ResolvePredicted(record.name, "LimitReached", f"the forecast came true: {p.why}", record.namespace))
        elif p.outcome in TURNED or p.outcome == Outcome.BEYOND_HORIZON and (
                p.eta_s is None or p.eta_s > RESOLVE_BEYOND * horizon_s):
            steps.append(ResolvePredicted(record.name, "TrendTurned", f"the trend turned: {p.why}", record.namespace))
        elif p.outcome == Outcome.BEYOND_HORIZON:
            steps.append(UpdatePredicted(record.name, f))
    for key, record in opened.items():
        if key not in best and record.signal in answered:
            steps.append(ResolvePredicted(record.name, "SeriesGone", "its series is no longer reported", record.namespace))
    return steps


def _time(now: dt.datetime, seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else now + dt.timedelta(seconds=round(seconds))


def severity_of(eta_s: float) -> Severity:
    return Severity.CRITICAL if eta_s <= HOUR else Severity.HIGH if eta_s <= 4 * HOUR else Severity.MEDIUM


def prediction_of(f: Forecasted, now: dt.datetime) -> PredictedFailure:
    p = f.prediction
    assert p.eta_s is not None
    fit = None
    if p.fit is not None:
        at = dt.datetime.fromtimestamp
        fit = ForecastFit(window_start=at(p.fit.window_start, dt.UTC), window_end=at(p.fit.window_end, dt.UTC),
                          segment_start=at(p.fit.segment_start, dt.UTC), points=p.fit.points,
                          slope_per_hour=p.fit.slope_per_hour, slope_low_per_hour=p.fit.slope_low_per_hour,
                          slope_high_per_hour=p.fit.slope_high_per_hour, r2=max(-1e9, p.fit.r2),
                          residual_sd=p.fit.residual_sd, resets=p.fit.resets, seasonal_amplitude=p.fit.seasonal_amplitude)
    return PredictedFailure(
        category=f.category, signal=f.subject.signal, failure_time=_time(now, p.eta_s),  # type: ignore[arg-type]
        earliest=_time(now, p.eta_early_s), latest=_time(now, p.eta_late_s), confidence=round(p.confidence, 4),
        model=f.model, series=f.subject.series, current=p.fit.level_now if p.fit else None,
        limit=p.limit if f.model != ForecastModel.CERTIFICATE_EXPIRY else None, fit=fit,
        container=f.subject.container, action=f.action, advice=f.advice[:1024], explanation=p.why[:1024])


def incident_spec(f: Forecasted, now: dt.datetime, first_seen: dt.datetime | None = None) -> dict[str, Any]:
    """The Predicted Incident's spec (validated by the model, camelCase)."""
    p = f.prediction
    assert p.eta_s is not None
    what = f"{f.subject.resource.display()}" + (f" ({f.subject.detail})" if f.subject.detail else "")
    spec = IncidentSpec(
        title=f"Predicted {f.category.value}: {what} {f.subject.signal} in {p.eta_s / HOUR:.1f} h"[:256],
        severity=severity_of(p.eta_s), source=IncidentSource.DETECTION, resource=f.subject.resource,
        fingerprint=f.subject.fingerprint, first_seen=first_seen or now, last_seen=now, investigate=True,
        prediction=prediction_of(f, now))
    return spec.to_kube()
