"""Calibration fitted on one half of the suite and judged on the other.

Reads a benchmark report (``aisre bench --json``; its hypotheses carry the ranking's raw
``score``), fits the piecewise-linear calibration map on the top-1 (score, correct) pairs
of the tuning part (``aisre.ranking.calibration.fit_knots``, shrunk by its ``PRIOR_WEIGHT``), and reports the expected
calibration error of that map on the held-out part (scenarios tagged ``heldout``), next to
the ECE of the map in force. The knots it prints are what ``calibration.KNOTS`` holds; the
held-out part never takes part in the fit.

    .venv/bin/python bench/calibration_split.py bench/results/investigate.json [--json bench/results/calibration.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aisre.bench.score import expected_calibration_error
from aisre.ranking.calibration import KNOTS, PRIOR_WEIGHT, calibrate, fit_knots


def pairs(results: list[dict[str, Any]]) -> list[tuple[float, bool]]:
    out = []
    for result in results:
        ranked = result.get("ranked") or []
        if ranked and ranked[0].get("score") is not None:
            out.append((float(ranked[0]["score"]), bool(result["top1"])))
    return out


def split(report: dict[str, Any]) -> dict[str, Any]:
    results = report["results"]
    tuning = pairs([r for r in results if not r.get("heldout")])
    heldout = pairs([r for r in results if r.get("heldout")])
    knots = fit_knots(tuning, prior_weight=PRIOR_WEIGHT)
    unshrunk = fit_knots(tuning)
    def ece(data: list[tuple[float, bool]], map_: list[tuple[float, float]]) -> float | None:
        value = expected_calibration_error([(calibrate(s, map_), ok) for s, ok in data])
        return None if value is None else round(value, 4)
    return {
        "tuning_scenarios": len(tuning), "heldout_scenarios": len(heldout),
        "fitted_knots": knots,
        "heldout_ece_fitted": ece(heldout, knots), "heldout_ece_in_force": ece(heldout, list(KNOTS)),
        "tuning_ece_fitted": ece(tuning, knots), "knots_in_force": list(KNOTS),
        "prior_weight": PRIOR_WEIGHT, "heldout_ece_identity": ece(heldout, [(0.0, 0.0), (1.0, 1.0)]),
        "unshrunk_knots": unshrunk, "heldout_ece_unshrunk": ece(heldout, unshrunk),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = split(json.loads(args.report.read_text()))
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
