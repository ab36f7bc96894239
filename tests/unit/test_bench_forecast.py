"""The forecast scenario format: components, loading, and the score."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aisre.bench.forecast import Component, ForecastScenario, ForecastSeries, component_value, load_dir, score

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600.0



def test_components() -> None:
    ramp = Component.model_validate({"kind": "ramp", "at": "-2h", "perHour": 0.5, "until": "1h"})
    rng = random.Random(0)
    assert component_value(ramp, -3 * HOUR, rng) == 0 and component_value(ramp, 0, rng) == 1.0
    assert component_value(ramp, 5 * HOUR, rng) == 1.5
    saw = Component.model_validate({"kind": "sawtooth", "at": "-6h", "period": "4h", "rise": 0.4, "stop": "-1h"})
    assert component_value(saw, -4 * HOUR, rng) == pytest.approx(0.2)  # halfway through a period
    assert component_value(saw, 0, rng) == pytest.approx(0.2)  # 2 h since the reset at -2h
    assert component_value(saw, 4 * HOUR, rng) == pytest.approx(0.6)  # no reset at +2h: rotation stopped at -1h
    wave = Component.model_validate({"kind": "wave", "period": "24h", "amplitude": 2, "peak": "3h"})
    assert component_value(wave, 3 * HOUR, rng) == pytest.approx(2) and component_value(wave, 15 * HOUR, rng) == pytest.approx(-2)


def test_series_are_summed_scaled_and_clipped() -> None:
    s = ForecastSeries.model_validate({"series": "x", "from": "-1h", "step": "30m", "scale": 10,
                                       "components": [{"kind": "constant", "value": -0.5},
                                                      {"kind": "ramp", "at": "-1h", "perHour": 1}]})
    assert s.samples("a") == [(-3600.0, 0.0), (-1800.0, 0.0), (0.0, 5.0)]


def test_the_projects_forecast_scenarios_load_and_say_what_they_expect() -> None:
    scenarios = load_dir(REPO / "scenarios-forecast")
    assert len(scenarios) >= 12
    failing = [s for s in scenarios if s.expect.incident]
    assert failing and all(s.expect.failure_in and s.expect.root_cause for s in failing)
    assert all(2 * HOUR <= (s.expect.failure_in or 0) <= 10 * HOUR for s in failing)
    assert {"sawtooth", "seasonal", "certificate", "quota", "memory", "disk", "healthy"} <= {t for s in scenarios for t in s.tags}


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        ForecastScenario.model_validate({"apiVersion": "aisre.dev/scenario-v1", "name": "x", "forecast": {"serie": []},
                                         "expect": {"incident": False}})


def test_score() -> None:
    def r(expected: bool, raised: bool, right: bool, ever: bool, error: float | None = None, lead: float | None = None,
          failure: float | None = None, wrong: int = 0) -> dict[str, object]:
        return {"expected_incident": expected, "raised": raised, "right": right, "ever_alerted": ever, "error_h": error,
                "lead_time_h": lead, "failure_in_h": failure, "wrong_alerts": wrong}
    report = score([r(True, True, True, True, 0.5, 6, 5), r(True, False, False, False, failure=4),
                    r(False, True, False, True), r(False, False, False, False)])
    assert report["precision"] == 0.5 and report["recall"] == 0.5 and report["false_alarms_healthy"] == 1
    assert report["time_error_mean_h"] == 0.5 and report["time_error_mean_relative"] == 0.1
    assert report["lead_time_mean_h"] == 6
