"""Scoring, exactly as SCENARIOS.md defines it (pure functions, no I/O).

- A result is correct at rank k when one of the first k hypotheses matches the expected
  root cause, or an ``alsoAcceptable`` one, in category AND resource (``Kind/name``).
- An ``incident: false`` scenario (investigate mode) is correct when the Investigation
  concludes NoFault (top-1 category NoFault; the resource does not matter).
- A scenario that errored or timed out is wrong, whatever it ranked.
- ``latency_s`` = ``detect_s`` (null in investigate mode) + ``investigate_s``; the
  percentiles are over the results that have one (linear interpolation between ranks).
- ``ece``: expected calibration error of the top-1 confidence against top-1 correctness,
  10 equal-width bins over [0, 1] (1.0 falls in the last), over the results with a top-1
  confidence: sum over bins of (bin size / n) * |accuracy(bin) - mean confidence(bin)|.
- ``false_positive_rate``: share of the ``incident: false`` scenarios where an incident was
  raised (in investigate mode: the Investigation concluded something other than NoFault).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

NO_FAULT = "NoFault"
HELDOUT_TAG = "heldout"  # scenarios never used to tune the ranking (SCENARIOS: tags are free)
ECE_BINS = 10


@dataclass(frozen=True)
class Cause:
    """An expected (or acceptable) root cause; ``resources`` are ``Kind/name`` strings, more
    than one when a Node expectation by podSelector resolved to several nodes."""

    category: str
    resources: tuple[str, ...]
    label: str | None = None  # shown instead, e.g. for a podSelector not resolved yet

    def display(self) -> dict[str, Any]:
        return {"category": self.category, "resource": self.label or "|".join(self.resources) or None}


@dataclass(frozen=True)
class Hypothesis:
    category: str
    resource: str | None  # Kind/name
    confidence: float | None
    score: float | None = None  # before calibration, when the Investigation reports it

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "resource": self.resource, "confidence": self.confidence,
                **({"score": self.score} if self.score is not None else {})}


@dataclass
class Result:
    """One scenario's outcome, as it appears in the report."""

    name: str
    incident: bool  # what the scenario expects
    expected: Cause
    also_acceptable: list[Cause] = field(default_factory=list)
    ranked: list[Hypothesis] = field(default_factory=list)
    concluded: str | None = None  # the root cause category the Investigation concluded
    detect_s: float | None = None
    investigate_s: float | None = None
    error: str | None = None
    incidents: list[str] | None = None  # detect mode: the Incidents raised about the scenario
    timings: dict[str, float] = field(default_factory=dict)  # setup_s, fault_s, ... (diagnostics)
    llm: dict[str, Any] | None = None  # the LLM's calls, tokens and cost (bench --llm-url)
    tags: tuple[str, ...] = ()  # the scenario's tags; `heldout` marks the held-out part

    @property
    def latency_s(self) -> float | None:
        if self.investigate_s is None:
            return None
        return (self.detect_s or 0.0) + self.investigate_s

    @property
    def top1(self) -> bool:
        return correct_at(self, 1)

    @property
    def top3(self) -> bool:
        return correct_at(self, 3)

    @property
    def incident_raised(self) -> bool | None:
        """Investigate mode: the Investigation concluded a fault (None: it concluded nothing,
        e.g. it timed out; partial hypotheses of an errored run are no conclusion).
        Detect mode: whether the operator raised an Incident."""
        if self.incidents is not None:
            return bool(self.incidents)
        category = self.concluded
        if category is None and self.error is None and self.ranked:
            category = self.ranked[0].category
        return None if category is None else category != NO_FAULT

    def to_json(self) -> dict[str, Any]:
        expected = self.expected.display()
        if self.also_acceptable:
            expected["alsoAcceptable"] = [c.display() for c in self.also_acceptable]
        return {
            "name": self.name,
            "expected": expected,
            "ranked": [h.to_json() for h in self.ranked],
            "top1": self.top1,
            "top3": self.top3,
            "incident_raised": self.incident_raised,
            "latency_s": _round(self.latency_s),
            "detect_s": _round(self.detect_s),
            "investigate_s": _round(self.investigate_s),
            "error": self.error,
            **({"heldout": True} if HELDOUT_TAG in self.tags else {}),
            **({"incidents": self.incidents} if self.incidents is not None else {}),
            "timings": {k: _round(v) for k, v in self.timings.items()},
            **({"llm": self.llm} if self.llm is not None else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def matches(hypothesis: Hypothesis, cause: Cause) -> bool:
    return hypothesis.category == cause.category and hypothesis.resource in cause.resources


def correct_at(result: Result, k: int) -> bool:
    if result.error is not None:
        return False
    if not result.incident:
        return result.incident_raised is False
    accepted = [result.expected, *result.also_acceptable]
    return any(matches(h, c) for h in result.ranked[:k] for c in accepted)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = ECE_BINS) -> float | None:
    """ECE of (confidence, correct) pairs over ``bins`` equal-width bins of [0, 1]."""
    if not pairs:
        return None
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, correct in pairs:
        index = min(int(max(0.0, min(1.0, confidence)) * bins), bins - 1)
        grouped[index].append((confidence, correct))
    total = 0.0
    for members in grouped:
        if members:
            accuracy = sum(c for _, c in members) / len(members)
            confidence = sum(p for p, _ in members) / len(members)
            total += len(members) / len(pairs) * abs(accuracy - confidence)
    return total


def summarize(results: Sequence[Result]) -> dict[str, Any]:
    """The report's headline metrics."""
    n = len(results)
    latencies = [r.latency_s for r in results if r.latency_s is not None]
    detects = [r.detect_s for r in results if r.detect_s is not None]
    no_fault = [r for r in results if not r.incident]
    calibration = [(r.ranked[0].confidence, r.top1) for r in results if r.ranked and r.ranked[0].confidence is not None]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "scenarios": n,
        "top1": rounded(sum(r.top1 for r in results) / n) if n else None,
        "top3": rounded(sum(r.top3 for r in results) / n) if n else None,
        "false_positive_rate": rounded(sum(r.incident_raised is True for r in no_fault) / len(no_fault)) if no_fault else None,
        "ece": rounded(expected_calibration_error(calibration)),
        "latency_p50_s": rounded(percentile(latencies, 50)),
        "latency_p95_s": rounded(percentile(latencies, 95)),
        "errors": sum(r.error is not None for r in results),
        **({"detect_p50_s": rounded(percentile(detects, 50)), "detect_p95_s": rounded(percentile(detects, 95)),
            "one_incident_rate": rounded(sum(len(r.incidents or []) == 1 for r in results if r.incident)
                                         / max(1, sum(1 for r in results if r.incident)))}
           if any(r.incidents is not None for r in results) else {}),
    }


def parts(results: Sequence[Result]) -> dict[str, Any]:
    """The tuning part and the held-out part scored apart (empty when nothing is held out),
    so a figure on scenarios the ranking was tuned on is never mistaken for one it was not."""
    heldout = [r for r in results if HELDOUT_TAG in r.tags]
    if not heldout:
        return {}
    tuning = [r for r in results if HELDOUT_TAG not in r.tags]
    return {"parts": {"tuning": summarize(tuning) if tuning else None, "heldout": summarize(heldout)}}
