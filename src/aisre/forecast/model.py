"""Time to a limit: when will a series that grows toward a limit reach it, how sure is that,
and why.

The model, in the order it is applied (each step can end the forecast with an Outcome
that says why nothing is predicted):

1. **The segment.** A sharp fall (more than ``reset_drop`` of the series' range between two
   samples) is a reset: log rotation, a compaction, a restart. Only the samples after the
   last reset say where the series is heading now. A single sharp rise is a level shift (a
   deploy, a bulk load): the growth is measured after it; several are a staircase and stay. When at least two resets were seen, they
   come periodically: the limit counts only if it is reached before the next reset is due
   (and once a reset is overdue by half a period, it is no longer counted on). One reset
   after growth may be the first of a cycle whose period the history is too short to know:
   the limit counts only if the history already shows the series growing, reset-free, for
   as long as the current cycle would need to reach it (``CyclePeriodUnknown`` otherwise).
2. **The trend.** A Theil–Sen line (the median of pairwise slopes: robust to spikes and to
   a few outliers), with the slope's confidence interval from Kendall's tau. With at least
   two days of history, a daily profile (the median residual per hour of day) is taken
   out first and kept in the forecast, so a nightly peak counts where it would reach.
3. **The bar.** The slope's lower bound must be above zero (the series really grows) and
   the model must explain the segment (R² at least ``min_r2``): noise, a flat series or a
   slow weekly wave seen over a day do not make a forecast. When the latest quarter of the
   segment grows clearly slower than the whole (its slope's upper bound under half the
   whole's lower bound), the pace now is that quarter's; growth that stopped makes no forecast.
4. **The forecast.** The time the central line reaches the limit, the interval from the
   slope's bounds, and a confidence: the probability, under the fit's uncertainty (slope and
   residual noise), that the series is at the limit by the end of the horizon.

Pure: numbers in, a ``Prediction`` out. Times are epoch seconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

HOUR = 3600.0
DAY = 86400.0
RESET_NOISE_MULTIPLE = 8.0  # a reset falls by at least this many step-noise sds
JUMP_SAMPLES = 3  # sudden steps this few samples apart are one jump
BREAK_BIC_MARGIN = 10.0  # two lines must beat one by this much BIC ("very strong" evidence)
STABLE_SHARE = 0.1  # "stable before": not growing, or growing at under a tenth of the pace after
FAILED_NEAR = 0.9  # a reset from this share of the limit or more was the failure itself (an OOM kill)
RECENT_SHARE = 0.25  # the pace now: the latest quarter of the segment (at least min_span_s)
SLOWER_SHARE = 0.5  # ... which counts as the pace now when clearly slower: under half the whole's


class Outcome(str, Enum):
    PREDICTED = "Predicted"  # reaches the limit within the horizon, with enough confidence
    BEYOND_HORIZON = "BeyondHorizon"  # grows, but reaches the limit later (or not surely enough)
    NO_TREND = "NoTrend"  # not significantly growing
    POOR_FIT = "PoorFit"  # a trend, but it does not explain the data
    RESETS_FIRST = "ResetsFirst"  # a periodic reset comes before the limit
    CYCLE_PERIOD_UNKNOWN = "CyclePeriodUnknown"  # one reset after growth: too little history to rule out a cycle
    GROWTH_STOPPED = "GrowthStopped"  # grew, but the latest part of the segment no longer does
    TOO_LITTLE_HISTORY = "TooLittleHistory"
    RESET = "Reset"  # fell sharply lately (cleaned up, rotated, restarted): too little since to forecast
    AT_LIMIT = "AtLimit"  # already there: reactive detection's business, not a forecast


@dataclass(frozen=True)
class ForecastSettings:
    horizon_s: float = 12 * HOUR
    min_confidence: float = 0.8
    min_points: int = 20
    min_span_s: float = HOUR  # the segment used must cover at least this much time
    min_r2: float = 0.6  # the share of the segment's variance the model must explain
    reset_drop: float = 0.3  # a fall by this share of the series' range between two samples is a reset
    seasonal_min_span_s: float = 2 * DAY  # a daily profile needs two days at least
    seasonal_min_gain: float = 0.2  # ... and must remove this share of the residual variance
    max_points: int = 200  # Theil–Sen on at most this many samples (evenly thinned)
    z: float = 1.96  # the intervals are 95 %


@dataclass(frozen=True)
class Fit:
    """What the forecast was computed from, for the evidence."""

    window_start: float
    window_end: float
    segment_start: float  # after the last reset (== window_start when none)
    points: int  # samples in the segment
    slope_per_hour: float
    slope_low_per_hour: float
    slope_high_per_hour: float
    level_now: float  # the model's value at ``now``
    r2: float
    residual_sd: float
    resets: int = 0
    reset_period_s: float | None = None
    seasonal_amplitude: float | None = None  # peak-to-trough of the daily profile, when used


@dataclass(frozen=True)
class Prediction:
    outcome: Outcome
    limit: float
    why: str
    confidence: float = 0.0
    eta_s: float | None = None  # from now to the limit on the central line
    eta_early_s: float | None = None
    eta_late_s: float | None = None  # None: the slope's lower bound never gets there
    fit: Fit | None = None

    @property
    def alerts(self) -> bool:
        return self.outcome == Outcome.PREDICTED


# --- the pieces -----------------------------------------------------------------------------


def _thin(times: Sequence[float], values: Sequence[float], most: int) -> tuple[list[float], list[float]]:
    if len(times) <= most:
        return list(times), list(values)
    step = len(times) / most
    picked = [int(i * step) for i in range(most)]
    return [times[i] for i in picked], [values[i] for i in picked]


@dataclass(frozen=True)
class Line:
    slope: float  # per second
    low: float
    high: float
    intercept: float  # value at t = 0 (``now``; times are relative to it)


def intercept_for(slope: float, times: Sequence[float], values: Sequence[float]) -> float:
    """The Theil–Sen intercept of a line of this slope: the median of y - slope·t."""
    return statistics.median(v - slope * t for t, v in zip(times, values, strict=True))


def theil_sen(times: Sequence[float], values: Sequence[float], z: float) -> Line:
    """The median pairwise slope and its interval from Kendall's tau (Sen 1968)."""
    slopes = sorted((values[j] - values[i]) / (times[j] - times[i])
                    for i in range(len(times)) for j in range(i + 1, len(times)) if times[j] != times[i])
    n, pairs = len(times), len(slopes)
    slope = statistics.median(slopes)
    spread = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    low = slopes[max(0, int(math.floor((pairs - spread) / 2)))]
    high = slopes[min(pairs - 1, int(math.ceil((pairs + spread) / 2)))]
    return Line(slope, low, high, intercept_for(slope, times, values))


def _jump_bar(values: Sequence[float], share: float) -> float | None:
    """How far one step must move to be sudden: ``share`` of the range, and far more than the
    step-to-step noise (so noise alone never is). None: a flat series."""
    span = max(values) - min(values)
    if span <= 0 or len(values) < 3:
        return None
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    middle = statistics.median(steps)
    noise = 1.4826 * statistics.median(abs(d - middle) for d in steps)  # robust sd of one step
    return max(share * span, RESET_NOISE_MULTIPLE * noise)


def _events(indices: list[int]) -> list[int]:
    """Sudden steps a few samples apart are one event (a jump spread over a scrape or two):
    its last index."""
    out: list[int] = []
    for i in indices:
        if out and i - out[-1] <= JUMP_SAMPLES:
            out[-1] = i
        else:
            out.append(i)
    return out


def resets_in(values: Sequence[float], share: float) -> list[int]:
    """Where the series falls suddenly (a reset: rotation, compaction, restart)."""
    bar = _jump_bar(values, share)
    return [] if bar is None else _events([i for i in range(1, len(values)) if values[i - 1] - values[i] > bar])


def shifts_in(values: Sequence[float], share: float) -> list[int]:
    """Where the series rises suddenly (a level shift: a deploy, a bulk load)."""
    bar = _jump_bar(values, share)
    return [] if bar is None else _events([i for i in range(1, len(values)) if values[i] - values[i - 1] > bar])


def daily_profile(times: Sequence[float], residuals: Sequence[float], epoch_offset: float) -> Callable[[float], float] | None:
    """The median residual per hour of day (UTC), or None when an hour has too few samples."""
    bins: list[list[float]] = [[] for _ in range(24)]
    for t, r in zip(times, residuals, strict=True):
        bins[int(((t + epoch_offset) % DAY) // HOUR)].append(r)
    if any(len(b) < 3 for b in bins):
        return None
    medians = [statistics.median(b) for b in bins]
    centre = statistics.fmean(medians)
    profile = [m - centre for m in medians]
    return lambda t: profile[int(((t + epoch_offset) % DAY) // HOUR)]


def _ols_sse(times: Sequence[float], values: Sequence[float]) -> float:
    n = len(times)
    mt, mv = statistics.fmean(times), statistics.fmean(values)
    stt = sum((t - mt) ** 2 for t in times)
    slope = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True)) / stt if stt else 0.0
    return sum((v - mv - slope * (t - mt)) ** 2 for t, v in zip(times, values, strict=True)) if n else 0.0


def growth_start(times: Sequence[float], values: Sequence[float], s: ForecastSettings) -> float | None:
    """Where a stable series started to grow, when it did: the breakpoint of the best
    two-line fit, taken only when two lines beat one by a wide margin (BIC) and the part
    before it does not grow (a series that was already moving, e.g. along a daily wave, is
    not split: with less than two days of history a wave and a new trend look alike)."""
    n = len(times)
    if n < 3 * s.min_points:
        return None
    whole = _ols_sse(times, values)
    best: tuple[float, int] | None = None
    for i in range(n // 5, n - n // 5, max(1, n // 40)):
        if n - i < s.min_points or times[-1] - times[i] < s.min_span_s:
            continue
        sse = _ols_sse(times[:i], values[:i]) + _ols_sse(times[i:], values[i:])
        if best is None or sse < best[0]:
            best = (sse, i)
    if best is None or best[0] <= 0 or whole <= 0:
        return None
    sse, i = best
    one, two = n * math.log(whole / n) + 2 * math.log(n), n * math.log(sse / n) + 5 * math.log(n)
    if two > one - BREAK_BIC_MARGIN:
        return None
    before = theil_sen(times[:i], values[:i], s.z)
    after = theil_sen(times[i:], values[i:], s.z)
    # Stable: flat within its noise, or moving (either way) at a small share of the new pace.
    # A fall before a rise is a wave or a V, not a stable series that started to grow.
    stable_before = abs(before.slope) <= STABLE_SHARE * after.slope or (
        before.low <= 0 <= before.high and abs(before.slope) <= 0.5 * after.slope)
    return times[i] if stable_before and after.low > 0 else None


def _r2(values: Sequence[float], fitted: Sequence[float]) -> float:
    mean = statistics.fmean(values)
    total = sum((v - mean) ** 2 for v in values)
    residual = sum((v - f) ** 2 for v, f in zip(values, fitted, strict=True))
    return 1.0 - residual / total if total > 0 else 0.0


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _first_crossing(level: Callable[[float], float], limit: float, until: float, steps: int = 2000) -> float | None:
    """The first t in (0, until] where ``level`` reaches ``limit`` (scanned, then bisected)."""
    previous = 0.0
    for k in range(1, steps + 1):
        t = until * k / steps
        if level(t) >= limit:
            lo, hi = previous, t
            for _ in range(30):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if level(mid) >= limit else (mid, hi)
            return hi
        previous = t
    return None


# --- the forecast ---------------------------------------------------------------------------


@dataclass
class _Segment:
    times: list[float]  # relative to now (<= 0)
    values: list[float]
    resets: int = 0
    period_s: float | None = None
    next_reset_s: float | None = None  # relative to now, when periodic resets are still expected
    # One reset after growth: how long the series was seen growing before it without a reset
    # (a lower bound on that cycle's length: the window cuts it), and when the reset was.
    cycle_seen_s: float | None = None
    reset_at_s: float | None = None
    shifted: bool = False  # cut after a level shift
    notes: list[str] = field(default_factory=list)


def _may_be_a_tooth(times: list[float], values: list[float], cut: int, limit: float, s: ForecastSettings) -> bool:
    """Whether the part before the only reset may be a tooth of a sawtooth (a restart or
    rotation on a schedule): it grew significantly, or is too short to tell, and was reset
    short of the limit. Not a one-off fall from a flat series (a deploy), nor the failure
    itself (a reset at the limit)."""
    before_t, before_v = times[:cut], values[:cut]
    if before_v and max(before_v[-JUMP_SAMPLES - 1:]) >= FAILED_NEAR * limit:
        return False
    if len(before_t) < s.min_points or before_t[-1] - before_t[0] < s.min_span_s:
        return True  # too little before it to say it was flat: a cycle is not ruled out
    t, v = _thin(before_t, before_v, s.max_points)
    return theil_sen(t, v, s.z).low > 0


def _segment(times: list[float], values: list[float], limit: float, s: ForecastSettings) -> _Segment:
    cuts = resets_in(values, s.reset_drop)
    seg = _Segment(times[cuts[-1]:], values[cuts[-1]:], resets=len(cuts)) if cuts else _Segment(times, values)
    # One sudden rise is a change of level, not growth: the growth is measured after it. Two
    # or more are how the series grows (a staircase of scale-ups), and stay in.
    rises = shifts_in(seg.values, s.reset_drop)
    if len(rises) == 1:
        seg.notes.append(f"a level shift {-seg.times[rises[0]] / HOUR:.1f} h ago; growth measured since")
        seg.times, seg.values = seg.times[rises[0]:], seg.values[rises[0]:]
        seg.shifted = True
    if not cuts:
        return seg
    if len(cuts) == 1 and _may_be_a_tooth(times, values, cuts[0], limit, s):
        seg.cycle_seen_s, seg.reset_at_s = times[cuts[0] - 1] - times[0], times[cuts[0]]
    if len(cuts) >= 2:
        at = [times[i] for i in cuts]
        seg.period_s = statistics.median(b - a for a, b in zip(at, at[1:], strict=False))
        due = at[-1] + seg.period_s
        if -at[-1] <= 1.5 * seg.period_s:  # the next reset is not yet overdue
            seg.next_reset_s = due
        else:
            seg.notes.append(f"the periodic reset (every {seg.period_s / HOUR:.1f} h) is overdue")
    return seg


def forecast(times: Sequence[float], values: Sequence[float], limit: float, now: float,
             settings: ForecastSettings | None = None) -> Prediction:
    """When the series reaches ``limit`` (from below), with the fit that says so."""
    s = settings or ForecastSettings()
    pairs = sorted((t - now, v) for t, v in zip(times, values, strict=True)
                   if t <= now and math.isfinite(v) and math.isfinite(t))
    if len(pairs) < s.min_points:
        return Prediction(Outcome.TOO_LITTLE_HISTORY, limit, f"{len(pairs)} samples, fewer than {s.min_points}")
    rel, vals = [p[0] for p in pairs], [p[1] for p in pairs]
    seg = _segment(rel, vals, limit, s)
    span = seg.times[-1] - seg.times[0]
    if (len(seg.times) < s.min_points or span < s.min_span_s) and seg.resets and not seg.shifted:
        return Prediction(Outcome.RESET, limit, f"fell sharply {-seg.times[0] / 60:.0f} min ago (from "
                          f"{vals[len(rel) - len(seg.times) - 1]:.4g} to {seg.values[0]:.4g}); too little since to forecast")
    if len(seg.times) < s.min_points or span < s.min_span_s:
        return Prediction(Outcome.TOO_LITTLE_HISTORY, limit,
                          f"{len(seg.times)} samples over {span / HOUR:.1f} h since the last reset; the model needs "
                          f"{s.min_points} over {s.min_span_s / HOUR:.1f} h")
    t, v = _thin(seg.times, seg.values, s.max_points)
    start = growth_start(t, v, s) if span < s.seasonal_min_span_s else None
    if start is not None:
        keep = [k for k, x in enumerate(seg.times) if x >= start]
        seg.times, seg.values = [seg.times[k] for k in keep], [seg.values[k] for k in keep]
        seg.notes.append(f"growing since {-start / HOUR:.1f} h ago, stable before")
        span = seg.times[-1] - seg.times[0]
        t, v = _thin(seg.times, seg.values, s.max_points)
    line = theil_sen(t, v, s.z)
    # The slope is the segment's average: a series that grew and has since levelled off (a
    # cache at its size, a backfill done) keeps a positive average for hours after. When the
    # latest quarter grows clearly slower than the whole, the pace now is the latest quarter's.
    slowed = False
    if span < s.seasonal_min_span_s:
        recent = [k for k, x in enumerate(seg.times) if x >= seg.times[-1] - max(RECENT_SHARE * span, s.min_span_s)]
        if s.min_points <= len(recent) < len(seg.times):
            rt, rv = _thin([seg.times[k] for k in recent], [seg.values[k] for k in recent], s.max_points)
            now_line = theil_sen(rt, rv, s.z)
            if now_line.high < SLOWER_SHARE * line.low:
                seg.notes.append(f"slower over the last {-rt[0] / HOUR:.1f} h than the {span / HOUR:.1f} h before: "
                                 "measured there")
                seg.times, seg.values = seg.times[recent[0]:], seg.values[recent[0]:]
                span, t, v, line, slowed = rt[-1] - rt[0], rt, rv, now_line, True
    season: Callable[[float], float] | None = None
    amplitude = None
    if span >= s.seasonal_min_span_s:
        residuals = [y - (line.intercept + line.slope * x) for x, y in zip(t, v, strict=True)]
        profile = daily_profile(t, residuals, now)
        if profile is not None:
            kept = [r - profile(x) for x, r in zip(t, residuals, strict=True)]
            if statistics.pvariance(kept) <= (1 - s.seasonal_min_gain) * statistics.pvariance(residuals):
                season = profile
                line = theil_sen(t, [y - profile(x) for x, y in zip(t, v, strict=True)], s.z)
                hours = [profile(h * HOUR - now % DAY) for h in range(24)]
                amplitude = max(hours) - min(hours)

    def seasonal(x: float) -> float:
        return season(x) if season is not None else 0.0

    fitted = [line.intercept + line.slope * x + seasonal(x) for x in t]
    residual_sd = statistics.pstdev(y - f for y, f in zip(v, fitted, strict=True))
    r2 = _r2(v, fitted)
    level_now = line.intercept + seasonal(0.0)
    fit = Fit(window_start=now + rel[0], window_end=now + rel[-1], segment_start=now + seg.times[0], points=len(seg.times),
              slope_per_hour=line.slope * HOUR, slope_low_per_hour=line.low * HOUR, slope_high_per_hour=line.high * HOUR,
              level_now=level_now, r2=round(r2, 4), residual_sd=residual_sd, resets=seg.resets,
              reset_period_s=seg.period_s, seasonal_amplitude=amplitude)
    trend = f"{line.slope * HOUR:+.4g}/h [{line.low * HOUR:+.4g}, {line.high * HOUR:+.4g}], R² {r2:.2f}" + "".join(
        f"; {note}" for note in seg.notes)
    if level_now >= limit or v[-1] >= limit:
        return Prediction(Outcome.AT_LIMIT, limit, f"already at the limit ({max(level_now, v[-1]):.4g} of {limit:.4g})",
                          confidence=1.0, eta_s=0.0, eta_early_s=0.0, eta_late_s=0.0, fit=fit)
    if slowed and line.low <= 0:
        return Prediction(Outcome.GROWTH_STOPPED, limit, f"grew, but no longer: {trend}", fit=fit)
    if line.low <= 0:
        return Prediction(Outcome.NO_TREND, limit, f"not significantly growing: {trend}", fit=fit)
    if r2 < s.min_r2:
        return Prediction(Outcome.POOR_FIT, limit, f"the trend explains too little of the data: {trend}", fit=fit)

    def along(slope: float) -> Callable[[float], float]:
        intercept = intercept_for(slope, t, [y - seasonal(x) for x, y in zip(t, v, strict=True)])
        return lambda x: intercept + slope * x + seasonal(x)

    search = max(4 * s.horizon_s, 7 * DAY)
    eta = _first_crossing(along(line.slope), limit, search)
    early = _first_crossing(along(line.high), limit, search)
    late = _first_crossing(along(line.low), limit, search)
    # The probability the series is at the limit by the end of the horizon: the central line
    # plus the slope's and the residuals' uncertainty, at the most telling point on the way.
    slope_sd = (line.high - line.low) / (2 * s.z)
    confidence = max(_normal_cdf((along(line.slope)(x) - limit) / math.hypot(slope_sd * x, residual_sd or 1e-12))
                     for x in (s.horizon_s * k / 48 for k in range(1, 49)))
    confidence = round(confidence, 4)
    if seg.next_reset_s is not None and (eta is None or eta > seg.next_reset_s):
        return Prediction(Outcome.RESETS_FIRST, limit,
                          f"resets every {seg.period_s / HOUR:.1f} h; the next is due in {seg.next_reset_s / HOUR:.1f} h, "
                          f"before the limit: {trend}", confidence, eta, early, late, fit)
    if seg.cycle_seen_s is not None and seg.reset_at_s is not None and eta is not None \
            and seg.cycle_seen_s < eta - seg.reset_at_s:
        # A reset every P hours with P between the current cycle's age and its age at the
        # limit would come first; only a reset-free stretch that long in the history rules
        # that out. Here the history is shorter than the pattern's period could be.
        return Prediction(Outcome.CYCLE_PERIOD_UNKNOWN, limit,
                          f"reset {-seg.reset_at_s / HOUR:.1f} h ago after growing for at least "
                          f"{seg.cycle_seen_s / HOUR:.1f} h; reaching the limit needs a cycle of "
                          f"{(eta - seg.reset_at_s) / HOUR:.1f} h, longer than any seen: {trend}",
                          confidence, eta, early, late, fit)
    within = eta is not None and eta <= s.horizon_s
    if not within or confidence < s.min_confidence:
        when = f"in {eta / HOUR:.1f} h" if eta is not None else "not within the search window"
        return Prediction(Outcome.BEYOND_HORIZON, limit, f"reaches the limit {when} (confidence {confidence:.2f}): {trend}",
                          confidence, eta, early, late, fit)
    assert eta is not None
    return Prediction(Outcome.PREDICTED, limit,
                      f"reaches {limit:.4g} in {eta / HOUR:.1f} h (confidence {confidence:.2f}): {trend}",
                      confidence, eta, early, late, fit)
