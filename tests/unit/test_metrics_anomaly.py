"""The anomaly math of the metrics agent on synthetic series (no Prometheus)."""

from __future__ import annotations

import random

from aisre.agents.anomaly import assess, baseline, change_point, current, onset, sustained_growth, trend

STEP = 15.0


def series(fn, n: int = 160, noise: float = 0.0, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    times = [i * STEP for i in range(n)]
    return times, [fn(t) + (rng.gauss(0, noise) if noise else 0.0) for t in times]


def test_robust_baseline_ignores_an_outlier_and_has_a_floor() -> None:
    b = baseline([10.0, 10.2, 9.9, 10.1, 500.0, 10.0])
    assert 9.9 <= b.median <= 10.1 and b.scale < 1.0
    flat = baseline([4.0] * 10)
    assert flat.scale == 0.05 * 4.0  # a flat baseline does not make every wiggle significant
    assert flat.z(4.1) < 1.0


def test_change_point_finds_the_step() -> None:
    times, values = series(lambda t: 1.0 if t < 100 * STEP else 3.0, noise=0.05, seed=1)
    cp = change_point(values)
    assert cp is not None and abs(cp.index - 100) <= 1 and cp.after > cp.before


def test_trend_slope_and_fit() -> None:
    times, values = series(lambda t: 2.0 * t + 5.0)
    fit = trend(times, values)
    assert fit is not None and abs(fit.slope - 2.0) < 1e-9 and fit.r2 > 0.999


def test_step_is_a_step_and_leak_is_a_trend() -> None:
    step = assess(*series(lambda t: 100.0 if t < 120 * STEP else 180.0, noise=2.0, seed=2))
    assert step is not None and step.kind == "step" and step.z > 4
    assert abs(step.onset - 120 * STEP) <= 2 * STEP
    leak = assess(*series(lambda t: 100.0 if t < 40 * STEP else 100.0 + (t - 40 * STEP) * 0.05, noise=1.0, seed=3))
    assert leak is not None and leak.kind == "trend" and leak.trend.slope > 0


def test_a_rise_that_levelled_off_is_not_a_trend() -> None:
    # Load went up over ten minutes and stays: a step, not a leak.
    def level(t: float) -> float:
        return 100.0 if t < 60 * STEP else min(160.0, 100.0 + (t - 60 * STEP) * 0.1)
    result = assess(*series(level, noise=1.0, seed=4))
    assert result is not None and result.kind == "step"


def test_noise_and_an_old_blip_are_not_anomalies() -> None:
    noisy = assess(*series(lambda t: 50.0, noise=8.0, seed=5))
    assert noisy is not None and noisy.kind == "none"
    blip = assess(*series(lambda t: 300.0 if 80 * STEP <= t < 86 * STEP else 50.0, noise=3.0, seed=6))
    assert blip is not None and blip.kind == "none"


def test_small_relative_changes_are_ignored_even_when_significant() -> None:
    # A 5 % shift on a very quiet series is statistically clear but not worth an incident.
    result = assess(*series(lambda t: 100.0 if t < 100 * STEP else 105.0, noise=0.01, seed=7))
    assert result is not None and result.kind == "none"


def test_onset_orders_two_series() -> None:
    times, early = series(lambda t: 1.0 if t < 100 * STEP else 5.0, noise=0.05, seed=8)
    _, late = series(lambda t: 1.0 if t < 104 * STEP else 5.0, noise=0.05, seed=9)
    b1, b2 = baseline(early[:50]), baseline(late[:50])
    assert onset(times, early, b1) < onset(times, late, b2)
    assert onset(times, early[:90], b1) is None


def test_too_short_a_series_is_no_answer() -> None:
    assert assess([0.0, 15.0, 30.0], [1.0, 2.0, 3.0]) is None


def test_the_level_now_is_the_new_regime_not_a_diluted_window() -> None:
    # Stepped up 2 minutes ago: the last 5 minutes' median would still be the old level.
    times, values = series(lambda t: 1.0 if t < 152 * STEP else 3.0, noise=0.02, seed=10)
    assert abs(current(times, values, 300.0) - 3.0) < 0.1
    # Pure noise: the best split is not a regime; the window's median stands.
    times, values = series(lambda t: 0.4, noise=0.03, seed=11)
    assert abs(current(times, values, 300.0) - 0.4) < 0.02


def test_sustained_growth_needs_no_flat_baseline_and_must_still_climb() -> None:
    times, climbing = series(lambda t: 6e8 + t * 5e4, noise=5e6, seed=12)  # under way before the window
    fit = sustained_growth(times, climbing)
    assert fit is not None and fit.slope > 0
    _, levelled = series(lambda t: 3.5e8 + min(t, 120 * STEP) * 1e5, noise=2e6, seed=13)
    assert sustained_growth(times, levelled) is None
    _, noisy = series(lambda t: 4e8, noise=2e7, seed=14)
    assert sustained_growth(times, noisy) is None
    _, small = series(lambda t: 4e8 + t * 1e3, noise=1e5, seed=15)  # +1 % in the window: not a leak
    assert sustained_growth(times, small) is None
