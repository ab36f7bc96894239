"""The time-to-limit model: ramps are predicted with their time, noise, waves, sawtooths and
slow growth are not."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aisre.forecast.model import HOUR, ForecastSettings, Outcome, forecast, resets_in, theil_sen

NOW = 1_800_000_000.0


def sampled(shape: Callable[[float, random.Random], float], hours: float = 6.0, step: float = 60.0,
            seed: int = 0) -> tuple[list[float], list[float]]:
    """Samples of ``shape(t, rng)`` with t in seconds relative to NOW, ending at NOW."""
    rng = random.Random(seed)
    times = [NOW - hours * HOUR + i * step for i in range(int(hours * HOUR / step) + 1)]
    return times, [shape(t - NOW, rng) for t in times]


def test_a_ramp_is_predicted_with_its_time_and_interval() -> None:
    # 50 % now, +10 %/h: at the limit in 5 h.
    times, values = sampled(lambda t, r: 50 + 10 * t / HOUR + r.gauss(0, 1))
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome == Outcome.PREDICTED and p.alerts
    assert p.eta_s is not None and abs(p.eta_s - 5 * HOUR) < 0.1 * HOUR
    assert p.eta_early_s is not None and p.eta_late_s is not None
    assert p.eta_early_s <= p.eta_s <= p.eta_late_s
    assert p.confidence >= 0.99 and p.fit is not None and p.fit.r2 > 0.9
    assert abs(p.fit.slope_per_hour - 10) < 0.5


def test_noise_around_a_level_has_no_trend() -> None:
    times, values = sampled(lambda t, r: 50 + r.gauss(0, 5))
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome in (Outcome.NO_TREND, Outcome.POOR_FIT) and not p.alerts


def test_growth_that_fails_after_the_horizon_does_not_alert() -> None:
    times, values = sampled(lambda t, r: 60 + 2 * t / HOUR + r.gauss(0, 0.5))  # 20 h to go
    p = forecast(times, values, 100.0, NOW, ForecastSettings(horizon_s=12 * HOUR))
    assert p.outcome == Outcome.BEYOND_HORIZON
    assert p.eta_s is not None and abs(p.eta_s - 20 * HOUR) < 1.5 * HOUR
    # ... and does once the horizon covers it.
    assert forecast(times, values, 100.0, NOW, ForecastSettings(horizon_s=24 * HOUR)).alerts


def test_a_log_rotation_sawtooth_resets_before_the_limit() -> None:
    # 20 % → 60 % every 4 h, then rotated: its steep rise since the last rotation never gets there.
    times, values = sampled(lambda t, r: 20 + 40 * (((t + 10 * HOUR) % (4 * HOUR)) / (4 * HOUR)) + r.gauss(0, 0.5),
                            hours=20)
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome == Outcome.RESETS_FIRST and p.fit is not None and p.fit.resets >= 4
    assert p.fit.reset_period_s is not None and abs(p.fit.reset_period_s - 4 * HOUR) < 0.1 * HOUR


def test_an_overdue_reset_is_no_longer_counted_on() -> None:
    # Rotated every 3 h until 9 h ago, then never again: the growth since counts.
    def shape(t: float, r: random.Random) -> float:
        since = t + 18 * HOUR
        return 20 + 10 * ((since % (3 * HOUR)) / HOUR) if since < 9 * HOUR else 20 + 8 * (since - 9 * HOUR) / HOUR
    times, values = sampled(shape, hours=18)
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome == Outcome.PREDICTED and p.eta_s is not None and abs(p.eta_s - 1 * HOUR) < 0.2 * HOUR


def test_a_slow_weekly_wave_seen_over_a_day_does_not_alert() -> None:
    times, values = sampled(lambda t, r: 55 + 15 * math.sin(2 * math.pi * t / (7 * 86400)) + r.gauss(0, 1), hours=23)
    assert not forecast(times, values, 100.0, NOW).alerts


def test_a_daily_peak_is_kept_in_the_forecast() -> None:
    # +0.5 %/h with a daily swing of ±12 % peaking at 06:00 UTC: the trend alone reaches 100 %
    # much later than the next peaks do.
    def shape(t: float, r: random.Random) -> float:
        hour_of_day = ((t + NOW) % 86400) / HOUR
        return 70 + 0.5 * t / HOUR + 12 * math.cos(2 * math.pi * (hour_of_day - 6) / 24) + r.gauss(0, 0.5)
    times, values = sampled(shape, hours=72, step=300)
    p = forecast(times, values, 100.0, NOW, ForecastSettings(horizon_s=48 * HOUR))
    assert p.fit is not None and p.fit.seasonal_amplitude is not None and p.fit.seasonal_amplitude > 15
    line_only = (100 - 70) / 0.5 * HOUR  # 60 h
    assert p.eta_s is not None and p.eta_s < line_only - 12 * HOUR


def test_too_little_history_is_said() -> None:
    times, values = sampled(lambda t, r: 50 + 10 * t / HOUR, hours=0.25)
    assert forecast(times, values, 100.0, NOW).outcome == Outcome.TOO_LITTLE_HISTORY


def test_at_the_limit_already_is_left_to_reactive_detection() -> None:
    times, values = sampled(lambda t, r: 101 + 10 * t / HOUR, hours=3)
    assert forecast(times, values, 100.0, NOW).outcome == Outcome.AT_LIMIT


def test_noise_is_never_taken_for_a_reset() -> None:
    rng = random.Random(3)
    assert resets_in([50 + rng.gauss(0, 5) for _ in range(2000)], 0.3) == []
    assert resets_in([float(i % 50) for i in range(200)], 0.3) == [50, 100, 150]


def test_theil_sen_ignores_outliers_and_brackets_the_slope() -> None:
    times = [float(i) for i in range(100)]
    values = [2.0 * t + (500.0 if i % 17 == 0 else 0.0) for i, t in enumerate(times)]
    line = theil_sen(times, values, 1.96)
    assert line.low <= 2.0 <= line.high and abs(line.slope - 2.0) < 1e-9


@settings(max_examples=40, deadline=None)
@given(level=st.floats(5, 80), sd=st.floats(0.1, 10), seed=st.integers(0, 10_000))
def test_stationary_noise_never_alerts(level: float, sd: float, seed: int) -> None:
    times, values = sampled(lambda t, r: level + r.gauss(0, sd), hours=6, step=120, seed=seed)
    assert not forecast(times, values, 100.0, NOW).alerts


@settings(max_examples=40, deadline=None)
@given(hours_left=st.floats(1.5, 10), start=st.floats(10, 70), noise=st.floats(0, 2), seed=st.integers(0, 10_000))
def test_a_linear_ramps_predicted_time_is_within_ten_percent(hours_left: float, start: float, noise: float,
                                                             seed: int) -> None:
    slope = (100 - start) / hours_left  # per hour: at ``start`` now, at the limit in ``hours_left``
    times, values = sampled(lambda t, r: start + slope * t / HOUR + r.gauss(0, noise), hours=4, step=60, seed=seed)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts, p.why
    assert p.eta_s is not None and abs(p.eta_s - hours_left * HOUR) <= 0.1 * hours_left * HOUR


def test_a_clean_up_is_a_reset_not_a_lack_of_history() -> None:
    # Filling for 5 h, then emptied 5 minutes ago.
    times, values = sampled(lambda t, r: 20 + 14 * (t + 5 * HOUR) / HOUR if t < -300 else 10 + r.gauss(0, 0.1), hours=5)
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome == Outcome.RESET and not p.alerts


def test_growth_that_started_after_a_stable_period_is_forecast_from_its_start() -> None:
    # Flat at 30 % for 8 h, then +5 %/h for 12 h: at the limit in 2 h (the whole window's line says much later).
    times, values = sampled(lambda t, r: 30 + 5 * max(0.0, t + 12 * HOUR) / HOUR + r.gauss(0, 0.5), hours=20, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts and p.eta_s is not None and abs(p.eta_s - 2 * HOUR) < 0.2 * HOUR
    assert p.fit is not None and abs(p.fit.segment_start - (NOW - 12 * HOUR)) < HOUR and "stable before" in p.why


def test_the_rising_side_of_a_wave_is_not_a_new_trend() -> None:
    # Fell for 12 h, rising for 9 h toward a peak in 3 h: a V, not growth that started.
    times, values = sampled(lambda t, r: 55 + 15 * math.cos(2 * math.pi * (t - 3 * HOUR) / (24 * HOUR)) + r.gauss(0, 1),
                            hours=20, step=120)
    assert not forecast(times, values, 100.0, NOW).alerts


def test_one_level_shift_is_not_growth_but_a_staircase_is() -> None:
    # Flat at 35 %, one jump to 85 % eight hours ago, flat since: nothing grows.
    times, values = sampled(lambda t, r: (85 if t >= -8 * HOUR else 35) + r.gauss(0, 0.1), hours=16, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert not p.alerts and p.outcome == Outcome.NO_TREND and "level shift" in p.why
    # The same jump spread over three samples is still one shift.
    times, values = sampled(lambda t, r: 35 + 50 * min(1.0, max(0.0, (t + 8 * HOUR) / 360)) + r.gauss(0, 0.1),
                            hours=16, step=120)
    assert forecast(times, values, 100.0, NOW).outcome == Outcome.NO_TREND
    # +10 every two hours (scale-ups): at 100 in about 3 h.
    times, values = sampled(lambda t, r: 30 + 10 * math.floor((t + 14 * HOUR) / (2 * HOUR)) + r.gauss(0, 0.1),
                            hours=14, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts and p.eta_s is not None and 1 * HOUR < p.eta_s < 5 * HOUR


# --- resets seen once, and growth that stopped ------------------------------------------------


def restart_sawtooth(period_h: float, base: float, rise: float, phase_h: float, noise: float = 0.8
                     ) -> Callable[[float, random.Random], float]:
    """A value that climbs by ``rise`` from ``base`` and is restarted back every ``period_h``."""
    period = period_h * HOUR
    return lambda t, r: base + rise * (((t + phase_h * HOUR) % period) / period) + r.gauss(0, noise)


@settings(max_examples=60, deadline=None)
@given(period_h=st.sampled_from([6.0, 8.0, 10.0, 12.0, 16.0, 24.0]), base=st.floats(15, 40),
       peak=st.floats(70, 88), phase=st.floats(0, 1), hours=st.sampled_from([14.0, 18.0, 22.0, 30.0]),
       seed=st.integers(0, 10_000))
@example(period_h=16.0, base=15.0, peak=70.0, phase=13.5 / 16, hours=14.0, seed=0)  # 30 min of history before the reset
def test_a_scheduled_restart_sawtooth_never_alerts(period_h: float, base: float, peak: float, phase: float,
                                                   hours: float, seed: int) -> None:
    # Restarted on a schedule, far from the limit each time: whether the history holds one
    # reset or several, and wherever in its cycle ``now`` is, nothing is forecast. (A history
    # with no reset in it is a plain climb: nothing in it says it will be reset.)
    assume(phase * period_h < hours - 0.1)
    times, values = sampled(restart_sawtooth(period_h, base, peak - base, phase * period_h), hours=hours, step=120,
                            seed=seed)
    p = forecast(times, values, 100.0, NOW)
    assert not p.alerts, p.why


def test_one_reset_after_growth_leaves_the_period_unknown() -> None:
    # Restarted 6 h ago at 86 % after growing for 6 h (as far back as the history goes),
    # climbing at the same pace since: a cycle of about 17 h would reach the limit, and nothing
    # in 12 h of history rules one out.
    times, values = sampled(restart_sawtooth(12.0, 50, 36, 6.0), hours=12, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.outcome == Outcome.CYCLE_PERIOD_UNKNOWN and not p.alerts
    assert p.eta_s is not None and p.eta_s < 12 * HOUR  # the line alone would have alerted
    # A history that shows 21 h of growth without a reset rules out a cycle of 18 h: forecast.
    times, values = sampled(lambda t, r: (30 + 2 * (t + 30 * HOUR) / HOUR if t < -9 * HOUR else 40 + 3.33 * (t + 9 * HOUR) / HOUR)
                            + r.gauss(0, 0.8), hours=30, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts and p.eta_s is not None and abs(p.eta_s - 9 * HOUR) < HOUR


def test_a_leak_after_a_restart_from_a_flat_series_is_forecast() -> None:
    # Flat for hours, restarted (a deploy), growing since: a one-off reset, not a tooth of a cycle.
    times, values = sampled(lambda t, r: (45 if t < -8 * HOUR else 20 + 6 * (t + 8 * HOUR) / HOUR) + r.gauss(0, 0.6),
                            hours=20, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts and p.eta_s is not None and abs(p.eta_s - 5.3 * HOUR) < 0.5 * HOUR


def test_a_reset_at_the_limit_was_the_failure_and_growth_toward_it_again_is_forecast() -> None:
    # Killed at its limit 6 h ago (the kernel, not a schedule), growing the same way again.
    times, values = sampled(lambda t, r: min(99.5, (30 + 7 * (t + 16 * HOUR) / HOUR) if t < -6 * HOUR
                                             else 30 + 7 * (t + 6 * HOUR) / HOUR) + r.gauss(0, 0.5), hours=16, step=120)
    p = forecast(times, values, 100.0, NOW)
    assert p.alerts and p.eta_s is not None and abs(p.eta_s - 4 * HOUR) < 0.5 * HOUR


@settings(max_examples=40, deadline=None)
@given(level=st.floats(55, 85), climb_h=st.floats(3, 10), flat_h=st.floats(2.5, 10), seed=st.integers(0, 10_000))
def test_growth_that_levelled_off_does_not_alert(level: float, climb_h: float, flat_h: float, seed: int) -> None:
    # A cache that warmed up to its size, a backfill that finished: the average slope still
    # points up for hours after the series stopped growing.
    start = -(climb_h + flat_h) * HOUR

    def shape(t: float, r: random.Random) -> float:
        done = min(1.0, max(0.0, (t - start) / (climb_h * HOUR)))
        return 20 + (level - 20) * done + r.gauss(0, 0.6)
    times, values = sampled(shape, hours=climb_h + flat_h + 4, step=120, seed=seed)
    p = forecast(times, values, 100.0, NOW)
    assert not p.alerts, p.why
