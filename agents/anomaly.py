"""Anomaly math for metric series: robust baselines, change points, trends and onsets.

Pure functions over ``(times, values)`` lists, no I/O; the metrics agent calls them.
Not an agent itself (a shared helper, like ``base.py``): it is outside the independence
contract.

The methods, and why these:

- **Robust z-score** against a baseline window: ``(x - median) / (1.4826 * MAD)``. The
  median and MAD ignore the odd outlier of a noisy baseline, where mean and standard
  deviation would be dragged by it. The scale has a floor (a share of the median) so a
  perfectly flat baseline does not make every wiggle infinitely significant.
- **Change point** (one mean shift, the split that maximises the between-segment
  difference over the pooled spread — binary segmentation's first step): a step or the
  start of a spike, with the time it began.
- **Trend** (least squares slope and r² over the part after the change point): a leak is
  a slope that explains the series (high r²) and keeps climbing; a step is not a leak.
- **Onset**: the first time from which the series stays anomalous, used to order
  anomalies across the dependency graph (the origin starts first).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MAD_SCALE = 1.4826
REL_SCALE_FLOOR = 0.05  # the baseline's spread is taken as at least 5 % of its median
ABS_SCALE_FLOOR = 1e-9
Z_THRESHOLD = 4.0
MIN_SEGMENT = 4
REGIME_STRENGTH = 3.0  # a change point this many pooled standard deviations wide is a new regime
REGIME_RELATIVE = 0.1


@dataclass(frozen=True)
class Baseline:
    median: float
    scale: float  # robust standard deviation (1.4826 MAD, floored)

    def z(self, value: float) -> float:
        return (value - self.median) / self.scale


def baseline(values: Sequence[float]) -> Baseline:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    return Baseline(med, max(MAD_SCALE * mad, REL_SCALE_FLOOR * abs(med), ABS_SCALE_FLOOR))


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first index of the new regime
    before: float  # mean before
    after: float  # mean after
    strength: float  # |after - before| / pooled standard deviation


def change_point(values: Sequence[float], min_segment: int = MIN_SEGMENT) -> ChangePoint | None:
    """The single mean shift that best splits the series (None if too short)."""
    n = len(values)
    if n < 2 * min_segment:
        return None
    prefix = [0.0]
    prefix_sq = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
        prefix_sq.append(prefix_sq[-1] + v * v)
    best: ChangePoint | None = None
    for k in range(min_segment, n - min_segment + 1):
        m1 = prefix[k] / k
        m2 = (prefix[n] - prefix[k]) / (n - k)
        ss1 = prefix_sq[k] - k * m1 * m1
        ss2 = (prefix_sq[n] - prefix_sq[k]) - (n - k) * m2 * m2
        pooled = math.sqrt(max(ss1 + ss2, 0.0) / max(n - 2, 1))
        floor = max(REL_SCALE_FLOOR * max(abs(m1), abs(m2)) * 0.2, ABS_SCALE_FLOOR)
        strength = abs(m2 - m1) / max(pooled, floor)
        if best is None or strength > best.strength:
            best = ChangePoint(k, m1, m2, strength)
    return best


@dataclass(frozen=True)
class Trend:
    slope: float  # units per second
    r2: float
    rise: float  # fitted value at the end minus at the start


def trend(times: Sequence[float], values: Sequence[float]) -> Trend | None:
    n = len(values)
    if n < 3:
        return None
    mt, mv = sum(times) / n, sum(values) / n
    stt = sum((t - mt) ** 2 for t in times)
    if stt == 0:
        return None
    stv = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True))
    slope = stv / stt
    svv = sum((v - mv) ** 2 for v in values)
    r2 = 1.0 if svv == 0 else (stv * stv) / (stt * svv)
    return Trend(slope, r2, slope * (times[-1] - times[0]))


def onset(times: Sequence[float], values: Sequence[float], base: Baseline, *, upward: bool = True,
          threshold: float = Z_THRESHOLD, share: float = 0.8) -> float | None:
    """The first time from which at least ``share`` of the points stay beyond ``threshold``
    robust z-scores of the baseline (in the given direction); None if never."""
    sign = 1.0 if upward else -1.0
    flags = [sign * base.z(v) >= threshold for v in values]
    n = len(flags)
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + int(flags[i])
    for i in range(n):
        if flags[i] and suffix[i] >= share * (n - i) and n - i >= 2:
            return times[i]
    return None


def current(times: Sequence[float], values: Sequence[float], recent_s: float = 300.0,
            cp: ChangePoint | None = None) -> float:
    """The level now: the median of the recent window or — when the series changed regime
    inside it — of the new regime alone, so a fault that began two minutes ago is not
    diluted by what came before it."""
    cp = cp if cp is not None else change_point(values)
    since = times[-1] - recent_s
    # Only a clear shift counts as a new regime; the best split of pure noise is not one.
    clear = cp is not None and cp.strength >= REGIME_STRENGTH \
        and abs(cp.after - cp.before) >= REGIME_RELATIVE * max(abs(cp.before), ABS_SCALE_FLOOR)
    if clear and times[cp.index] > since:
        since = times[cp.index]
    tail = [v for t, v in zip(times, values, strict=True) if t >= since]
    return statistics.median(tail or values[-MIN_SEGMENT:])


def sustained_growth(times: Sequence[float], values: Sequence[float], *, recent_s: float = 300.0,
                     min_rise: float = 0.15, min_r2: float = 0.8) -> Trend | None:
    """A climb that explains the series and has not stopped: a straight-line fit (over the
    whole window, or its later half or three quarters, when the climb began inside it)
    with r² ≥ ``min_r2``, a fitted rise of at least ``min_rise`` of the fitted start, and a
    recent slope that keeps at least half of it. Needs no flat baseline: a leak that was
    already under way when the window began is still a leak."""
    n = len(values)
    for start in (0, n // 4, n // 2):
        t, v = times[start:], values[start:]
        if len(v) < 2 * MIN_SEGMENT:
            break
        fit = trend(t, v)
        if fit is None or fit.slope <= 0 or fit.r2 < min_r2:
            continue
        fitted_start = sum(v) / len(v) - fit.slope * (sum(t) / len(t) - t[0])
        if fitted_start <= 0 or fit.rise < min_rise * fitted_start:
            continue
        recent_t = [x for x in t if x >= t[-1] - recent_s]
        recent = trend(recent_t, v[len(v) - len(recent_t):]) if len(recent_t) >= MIN_SEGMENT else None
        if recent is not None and recent.slope >= 0.5 * fit.slope:
            return fit
    return None


@dataclass(frozen=True)
class Anomaly:
    """How a series departs from its baseline, if it does."""

    kind: str  # "step" | "trend" | "spike" | "none"
    z: float  # robust z-score of the recent median against the baseline
    baseline: Baseline
    recent: float  # median of the recent window
    onset: float | None  # when it began (same clock as ``times``)
    trend: Trend | None = None


def assess(times: Sequence[float], values: Sequence[float], *, recent_s: float = 300.0, baseline_share: float = 0.3,
           threshold: float = Z_THRESHOLD, min_relative: float = 0.2) -> Anomaly | None:
    """Compare the recent window (the last ``recent_s`` seconds) with the baseline (the
    earliest ``baseline_share`` of the series, or everything before a change point).

    An anomaly must be large against the baseline's spread (``threshold`` robust z) *and*
    in relative terms (``min_relative`` of the baseline), and it must hold now (the recent
    median), so a blip that is over is not an anomaly. None when the series is too short.
    """
    n = len(values)
    if n < 2 * MIN_SEGMENT:
        return None
    end = times[-1]
    cp = change_point(values)
    recent = current(times, values, recent_s, cp)
    cut = max(MIN_SEGMENT, int(n * baseline_share))
    if cp is not None and MIN_SEGMENT <= cp.index < cut:
        cut = cp.index
    base = baseline(values[:cut])
    z = base.z(recent)
    relative = abs(recent - base.median) / max(abs(base.median), ABS_SCALE_FLOOR)
    if abs(z) < threshold or relative < min_relative:
        return Anomaly("none", z, base, recent, None)
    upward = z > 0
    start = onset(times, values, base, upward=upward, threshold=threshold)
    # After the onset: a straight climb is a trend, a level is a step.
    tail_t = [t for t in times if start is None or t >= start]
    tail_v = [v for t, v in zip(times, values, strict=True) if start is None or t >= start]
    fit = trend(tail_t, tail_v)
    # A trend must still be climbing now: the recent window's slope keeps at least half of
    # the overall slope (a rise that has levelled off — load that went up and stays — is a step).
    recent_t = [t for t in tail_t if t >= end - recent_s]
    recent_fit = trend(recent_t, tail_v[len(tail_v) - len(recent_t):]) if len(recent_t) >= MIN_SEGMENT else None
    still = fit is not None and recent_fit is not None and recent_fit.slope * fit.slope > 0 \
        and abs(recent_fit.slope) >= 0.5 * abs(fit.slope)
    if fit is not None and fit.r2 >= 0.8 and len(tail_v) >= 2 * MIN_SEGMENT and still \
            and abs(fit.rise) >= 0.5 * abs(recent - base.median):
        kind = "trend"
    else:
        kind = "step"
    return Anomaly(kind, z, base, recent, start, fit)
