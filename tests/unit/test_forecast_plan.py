"""Which Predicted Incidents open, update and resolve, and the spec they carry."""

from __future__ import annotations

import datetime as dt

from aisre.api.incident import ForecastModel, Incident
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import ActionType, RootCauseCategory
from aisre.forecast.model import Fit, Outcome, Prediction
from aisre.forecast.plan import (Forecasted, OpenPredicted, OpenRecord, ResolvePredicted, UpdatePredicted, incident_spec,
                                 plan)
from aisre.forecast.targets import MEMORY, VOLUME, Subject, plain_subject_labels

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
HORIZON = 12 * 3600.0
FIT = Fit(window_start=NOW.timestamp() - 6 * 3600, window_end=NOW.timestamp(), segment_start=NOW.timestamp() - 6 * 3600,
          points=360, slope_per_hour=0.1, slope_low_per_hour=0.09, slope_high_per_hour=0.11, level_now=0.5, r2=0.97,
          residual_sd=0.01)


def subject(name: str = "data", signal: str = "volumeFull") -> Subject:
    return Subject(signal, ResourceRef(kind="PersistentVolumeClaim", name=name, namespace="shop"), "shop", "q")


def forecasted(outcome: Outcome, eta_h: float | None, name: str = "data") -> Forecasted:
    eta = None if eta_h is None else eta_h * 3600
    p = Prediction(outcome, 1.0, "why", 0.95 if outcome == Outcome.PREDICTED else 0.1, eta,
                   None if eta is None else eta * 0.9, None if eta is None else eta * 1.1, FIT)
    return Forecasted(subject(name), p, RootCauseCategory.STORAGE_FAILURE, ForecastModel.LINEAR_TREND, None, "expand it")


def record(name: str = "data") -> OpenRecord:
    return OpenRecord(f"inc-{name}", subject(name).fingerprint, "volumeFull", "shop")


def test_an_alerting_forecast_opens_once_then_updates() -> None:
    f = forecasted(Outcome.PREDICTED, 5)
    assert plan([f], [], {"volumeFull"}, HORIZON) == [OpenPredicted(f)]
    assert plan([f], [record()], {"volumeFull"}, HORIZON) == [UpdatePredicted("inc-data", f)]


def test_nothing_opens_for_what_does_not_alert() -> None:
    for outcome, eta in [(Outcome.NO_TREND, None), (Outcome.BEYOND_HORIZON, 20), (Outcome.RESETS_FIRST, 3),
                         (Outcome.TOO_LITTLE_HISTORY, None), (Outcome.AT_LIMIT, 0)]:
        assert plan([forecasted(outcome, eta)], [], {"volumeFull"}, HORIZON) == []


def test_it_resolves_when_the_trend_turns_or_the_limit_is_reached() -> None:
    for outcome, eta, reason in [(Outcome.NO_TREND, None, "TrendTurned"), (Outcome.POOR_FIT, None, "TrendTurned"),
                                 (Outcome.RESETS_FIRST, 3, "TrendTurned"), (Outcome.BEYOND_HORIZON, 30, "TrendTurned"),
                                 (Outcome.RESET, None, "TrendTurned"),
                                 (Outcome.AT_LIMIT, 0, "LimitReached")]:
        steps = plan([forecasted(outcome, eta)], [record()], {"volumeFull"}, HORIZON)
        assert len(steps) == 1 and isinstance(steps[0], ResolvePredicted) and steps[0].reason == reason
        assert steps[0].namespace == "shop"


def test_hovering_just_past_the_horizon_keeps_it_open_and_no_answer_changes_nothing() -> None:
    near = forecasted(Outcome.BEYOND_HORIZON, 14)
    assert plan([near], [record()], {"volumeFull"}, HORIZON) == [UpdatePredicted("inc-data", near)]
    assert plan([forecasted(Outcome.TOO_LITTLE_HISTORY, None)], [record()], {"volumeFull"}, HORIZON) == []
    assert plan([], [record()], set(), HORIZON) == []  # the query did not answer: unknown


def test_a_series_gone_from_an_answered_query_resolves() -> None:
    steps = plan([], [record()], {"volumeFull"}, HORIZON)
    assert [(type(s), s.reason) for s in steps] == [(ResolvePredicted, "SeriesGone")]  # type: ignore[union-attr]


def test_the_pods_of_one_workload_make_one_incident_for_the_soonest() -> None:
    workload = ResourceRef(kind="Deployment", name="api", namespace="shop")
    late, soon = (Forecasted(Subject("memoryLimit", workload, "shop", "q", f"container {c}"),
                             Prediction(Outcome.PREDICTED, 1.0, c, 0.9, eta, eta, eta, FIT),
                             RootCauseCategory.MEMORY_LIMIT_TOO_LOW, ForecastModel.LINEAR_TREND, ActionType.SET_RESOURCES)
                  for c, eta in (("a", 8 * 3600.0), ("b", 3 * 3600.0)))
    assert plan([late, soon], [], {"memoryLimit"}, HORIZON) == [OpenPredicted(soon)]


def test_the_spec_is_a_valid_predicted_incident_with_its_evidence() -> None:
    spec = incident_spec(forecasted(Outcome.PREDICTED, 5), NOW)
    incident = Incident.model_validate({"spec": spec})
    p = incident.spec.prediction
    assert p is not None and incident.spec.investigate is True
    assert p.failure_time == NOW + dt.timedelta(hours=5) and p.earliest < p.failure_time < p.latest  # type: ignore[operator]
    assert p.category == "StorageFailure" and p.fit is not None and p.fit.r2 == 0.97 and p.advice == "expand it"
    assert spec["severity"] == "medium" and spec["title"].startswith("Predicted StorageFailure")
    assert incident_spec(forecasted(Outcome.PREDICTED, 0.5), NOW)["severity"] == "critical"


def test_subjects_name_the_object_and_fingerprints_ignore_text() -> None:
    labels = {"namespace": "shop", "persistentvolumeclaim": "data"}
    s = plain_subject_labels(VOLUME, labels, "aisre-system")
    assert s is not None and s.resource.display() == "PersistentVolumeClaim/data" and s.home == "shop"
    assert s.fingerprint == subject().fingerprint and s.incident_name.startswith("predicted-volumefull-data-")
    assert plain_subject_labels(MEMORY, {"namespace": "shop"}, "aisre-system") is None
