"""Calibration: from a pattern's evidence score to a confidence that means what it says.

A piecewise-linear map through (score, confidence) knots. The knots are fitted on the
scenario suite's results (``aisre bench`` writes the scores and whether each top-1 was
right; ``fit_knots`` turns them into knots by isotonic binning) and then fixed here, so
the mapping is the same for scenarios it has never seen.

The fit uses only the tuning part of the suite (``bench/calibration_split.py`` reports it on
the held-out part) and shrinks each bin's accuracy toward the bin's own mean score, with
``PRIOR_WEIGHT`` pseudo-answers: the suite's top-1 is 0.99 where blind first runs of new
scenarios scored 0.70-0.80, so its answers move a confidence only part of the way (an
unshrunk fit maps every score above 0.87 to 1.0, a certainty nothing here has earned).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

# Pseudo-answers per bin that say "the score means what it says" (see the module's doc).
PRIOR_WEIGHT = 40.0

# (score, confidence), increasing in both: fit_knots(tuning pairs, prior_weight=PRIOR_WEIGHT)
# on bench/results/investigate.json (bench/results/calibration.json has the split's figures).
KNOTS: list[tuple[float, float]] = [
    (0.0, 0.0), (0.748, 0.791), (0.868, 0.901), (0.887, 0.915), (0.9, 0.925), (0.902, 0.926),
    (0.921, 0.94), (0.935, 0.951), (0.954, 0.965), (0.97, 0.972), (1.0, 0.99),
]


_active: list[tuple[float, float]] = list(KNOTS)


def checked_knots(knots: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Knots as a map needs them: from (0, 0) to score 1.0, increasing, within [0, 1]."""
    out = [(float(x), float(y)) for x, y in knots]
    if len(out) < 2 or out[0][0] != 0.0 or out[-1][0] != 1.0:
        raise ValueError("knots run from score 0.0 to score 1.0")
    for (x0, y0), (x1, y1) in zip(out, out[1:]):
        if not (x1 > x0 and y1 >= y0):
            raise ValueError(f"knots must increase: ({x0}, {y0}) then ({x1}, {y1})")
    if any(not 0.0 <= v <= 1.0 for pair in out for v in pair):
        raise ValueError("knots lie within [0, 1]")
    return out


def use_knots(knots: Sequence[Sequence[float]] | None) -> None:
    """The map this process calibrates with: a cluster's own fit (``aisre calibration``
    refits it on its people's verdicts; AISRE_CALIBRATION_KNOTS), or the suite's (None)."""
    global _active
    _active = checked_knots(knots) if knots is not None else list(KNOTS)


def calibrate(score: float, knots: Sequence[tuple[float, float]] | None = None) -> float:
    knots = _active if knots is None else knots
    score = min(max(score, 0.0), 1.0)
    xs = [k[0] for k in knots]
    i = bisect_right(xs, score)
    if i == 0:
        return knots[0][1]
    if i >= len(knots):
        return knots[-1][1]
    (x0, y0), (x1, y1) = knots[i - 1], knots[i]
    return round(y0 + (y1 - y0) * (score - x0) / (x1 - x0 or 1.0), 3)


def fit_knots(pairs: Sequence[tuple[float, bool]], bins: int = 8,
              prior_weight: float = 0.0) -> list[tuple[float, float]]:
    """Isotonic, equal-count binning of (score, correct) pairs into increasing knots; each
    bin's accuracy counts ``prior_weight`` extra answers right at the bin's mean score."""
    ordered = sorted(pairs)
    if not ordered:
        return list(KNOTS)
    size = max(1, len(ordered) // bins)
    knots: list[tuple[float, float]] = [(0.0, 0.0)]
    for start in range(0, len(ordered), size):
        chunk = ordered[start:start + size]
        mean_score = sum(s for s, _ in chunk) / len(chunk)
        right = sum(1 for _, ok in chunk if ok)
        accuracy = (right + prior_weight * mean_score) / (len(chunk) + prior_weight)
        accuracy = max(accuracy, knots[-1][1])  # keep it monotone
        if mean_score > knots[-1][0]:
            knots.append((round(mean_score, 3), round(accuracy, 3)))
    if knots[-1][0] < 1.0:
        knots.append((1.0, max(knots[-1][1], 0.99)))
    return knots
