"""Calibration: from a pattern's evidence score to a confidence that means what it says.

A piecewise-linear map through (score, confidence) knots. The knots are fitted on the
scenario suite's results (``aisre bench`` writes the scores and whether each top-1 was
right; ``fit_knots`` turns them into knots by isotonic binning) and then fixed here, so
the mapping is the same for scenarios it has never seen.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

# (score, confidence), increasing in both. Identity until fitted on the suite.
KNOTS: list[tuple[float, float]] = [(0.0, 0.0), (1.0, 1.0)]


def calibrate(score: float, knots: Sequence[tuple[float, float]] = KNOTS) -> float:
    score = min(max(score, 0.0), 1.0)
    xs = [k[0] for k in knots]
    i = bisect_right(xs, score)
    if i == 0:
        return knots[0][1]
    if i >= len(knots):
        return knots[-1][1]
    (x0, y0), (x1, y1) = knots[i - 1], knots[i]
    return round(y0 + (y1 - y0) * (score - x0) / (x1 - x0 or 1.0), 3)


def fit_knots(pairs: Sequence[tuple[float, bool]], bins: int = 8) -> list[tuple[float, float]]:
    """Isotonic, equal-count binning of (score, correct) pairs into increasing knots."""
    ordered = sorted(pairs)
    if not ordered:
        return list(KNOTS)
    size = max(1, len(ordered) // bins)
    knots: list[tuple[float, float]] = [(0.0, 0.0)]
    for start in range(0, len(ordered), size):
        chunk = ordered[start:start + size]
        mean_score = sum(s for s, _ in chunk) / len(chunk)
        accuracy = sum(1 for _, ok in chunk if ok) / len(chunk)
        accuracy = max(accuracy, knots[-1][1])  # keep it monotone
        if mean_score > knots[-1][0]:
            knots.append((round(mean_score, 3), round(accuracy, 3)))
    if knots[-1][0] < 1.0:
        knots.append((1.0, max(knots[-1][1], 0.99)))
    return knots
