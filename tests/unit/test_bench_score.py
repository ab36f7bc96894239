"""Scoring and the report on synthetic results with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisre.bench import report
from aisre.bench.investigate import concluded, outcome_of, ranked
from aisre.bench.score import (
    Cause,
    Hypothesis,
    Result,
    correct_at,
    expected_calibration_error,
    percentile,
    summarize,
)

WEB = Cause("BadImage", ("Deployment/web",))


def _h(category: str, resource: str | None, confidence: float | None = 0.5) -> Hypothesis:
    return Hypothesis(category, resource, confidence)


def _result(ranked, *, incident=True, expected=WEB, also=(), error=None, investigate_s=1.0, concluded=None) -> Result:
    return Result(
        "s", incident, expected, list(also), ranked=list(ranked), investigate_s=investigate_s, error=error,
        concluded=concluded if concluded is not None else (ranked[0].category if ranked else None),
    )


def test_correct_at_rank_k_needs_category_and_resource() -> None:
    r = _result([_h("BadImage", "Deployment/api"), _h("ImagePullAuth", "Deployment/web"), _h("BadImage", "Deployment/web")])
    assert not r.top1 and not correct_at(r, 2) and r.top3
    assert _result([_h("BadImage", "Deployment/web")]).top1
    assert not _result([_h("BadImage", None)]).top3
    fourth = _result([_h("X", "a/b")] * 3 + [_h("BadImage", "Deployment/web")])
    assert not fourth.top3


def test_also_acceptable_causes_count() -> None:
    also = [Cause("MissingConfig", ("Secret/db",))]
    r = _result([_h("MissingConfig", "Secret/db")], expected=Cause("MissingConfig", ("StatefulSet/db",)), also=also)
    assert r.top1
    assert not _result([_h("BadImage", "Secret/db")], also=also).top3


def test_a_node_expected_by_pod_selector_matches_any_of_its_nodes() -> None:
    nodes = Cause("NodeFailure", ("Node/kwok-node-0", "Node/kwok-node-1"))
    assert _result([_h("NodeFailure", "Node/kwok-node-1")], expected=nodes).top1
    assert not _result([_h("NodeFailure", "Node/kwok-node-2")], expected=nodes).top3
    assert nodes.display() == {"category": "NodeFailure", "resource": "Node/kwok-node-0|Node/kwok-node-1"}


def test_no_fault_scenarios_are_right_when_the_investigation_concludes_no_fault() -> None:
    nofault = Cause("NoFault", ())
    right = _result([_h("NoFault", None, 0.9), _h("BadImage", "Deployment/web")], incident=False, expected=nofault)
    assert right.top1 and right.top3 and right.incident_raised is False
    wrong = _result([_h("BadImage", "Deployment/web"), _h("NoFault", None)], incident=False, expected=nofault)
    assert not wrong.top1 and not wrong.top3 and wrong.incident_raised is True
    # the conclusion (rootCause) decides, the resource does not matter
    assert _result([_h("NoFault", "Deployment/web")], incident=False, expected=nofault).top1


def test_errors_and_timeouts_are_wrong_whatever_was_ranked() -> None:
    r = _result([_h("BadImage", "Deployment/web")], error="unsupported: metrics step")
    assert not r.top1 and not r.top3
    timeout = Result("t", False, Cause("NoFault", ()), ranked=[_h("NoFault", None)], error="timeout: ...")
    assert not timeout.top1 and timeout.incident_raised is None and timeout.latency_s is None


def test_latency_is_detect_plus_investigate() -> None:
    assert _result([], investigate_s=1.25).latency_s == 1.25
    r = _result([], investigate_s=1.25)
    r.detect_s = 2.0
    assert r.latency_s == 3.25


def test_percentiles_interpolate_linearly() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([2.0, 1.0], 50) == 1.5
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_ece_with_known_values() -> None:
    # perfectly calibrated: 0.8 confident and right 4 times out of 5
    assert expected_calibration_error([(0.8, True)] * 4 + [(0.8, False)]) == pytest.approx(0.0)
    # always 1.0 sure (last bin includes 1.0), right half the time
    assert expected_calibration_error([(1.0, True), (1.0, False)]) == pytest.approx(0.5)
    # two bins: [0.9, 1.0] -> acc 1, conf 0.95; [0.2, 0.3) -> acc 0, conf 0.25
    pairs = [(0.95, True), (0.95, True), (0.25, False), (0.25, False)]
    assert expected_calibration_error(pairs) == pytest.approx(0.5 * 0.05 + 0.5 * 0.25)
    # 0.1 falls in the second bin, 0.09 in the first
    assert expected_calibration_error([(0.1, True), (0.09, False)]) == pytest.approx(0.5 * 0.9 + 0.5 * 0.09)
    assert expected_calibration_error([]) is None


def test_summary_metrics() -> None:
    nofault = Cause("NoFault", ())
    results = [
        _result([_h("BadImage", "Deployment/web", 0.9)], investigate_s=1.0),  # top1
        _result([_h("X", "a/b", 0.6), _h("BadImage", "Deployment/web")], investigate_s=2.0),  # top3 only
        _result([_h("BadImage", "Deployment/web", 0.7)], investigate_s=None, error="timeout"),  # wrong
        _result([_h("NoFault", None, 0.8)], incident=False, expected=nofault, investigate_s=3.0),  # right
        _result([_h("BadImage", "Deployment/web", 0.5)], incident=False, expected=nofault, investigate_s=4.0),  # FP
    ]
    s = summarize(results)
    assert s["scenarios"] == 5 and s["errors"] == 1
    assert s["top1"] == pytest.approx(2 / 5) and s["top3"] == pytest.approx(3 / 5)
    assert s["false_positive_rate"] == 0.5
    assert s["latency_p50_s"] == 2.5 and s["latency_p95_s"] == pytest.approx(3.85)
    # bins: 0.9 ok -> |1-0.9|, 0.6 wrong -> 0.6, 0.7 wrong -> 0.7, 0.8 ok -> 0.2, 0.5 wrong -> 0.5
    assert s["ece"] == pytest.approx((0.1 + 0.6 + 0.7 + 0.2 + 0.5) / 5, abs=1e-4)
    assert summarize([])["top1"] is None and summarize(results[:3])["false_positive_rate"] is None


def test_the_held_out_part_is_scored_apart() -> None:
    right, wrong = _result([_h("BadImage", "Deployment/web", 0.9)]), _result([_h("X", "a/b", 0.9)])
    wrong.tags = ("logs", "heldout")
    assert report.build([right], mode="investigate").get("parts") is None
    built = report.build([right, wrong], mode="investigate")
    assert built["top1"] == 0.5
    assert built["parts"]["tuning"]["top1"] == 1.0 and built["parts"]["heldout"]["top1"] == 0.0
    assert [r.get("heldout", False) for r in built["results"]] == [False, True]
    assert "heldout: scenarios 1" in report.table(built)


def test_report_json_has_the_contract_keys(tmp_path: Path) -> None:
    results = [
        _result([_h("BadImage", "Deployment/web", 0.94)], investigate_s=0.7),
        _result([], error="timeout: the Investigation did not conclude within 60 s (state Pending)", investigate_s=None),
    ]
    data = report.build(results, mode="investigate", extra={"timeout_s": 60})
    for key in ("scenarios", "top1", "top3", "false_positive_rate", "ece", "latency_p50_s", "latency_p95_s", "results"):
        assert key in data
    first = data["results"][0]
    assert first == {
        "name": "s",
        "expected": {"category": "BadImage", "resource": "Deployment/web"},
        "ranked": [{"category": "BadImage", "resource": "Deployment/web", "confidence": 0.94}],
        "top1": True,
        "top3": True,
        "incident_raised": True,
        "latency_s": 0.7,
        "detect_s": None,
        "investigate_s": 0.7,
        "error": None,
        "timings": {},
    }
    assert data["results"][1]["error"].startswith("timeout") and data["results"][1]["latency_s"] is None
    path = tmp_path / "out" / "report.json"
    report.write_json(data, path)
    assert json.loads(path.read_text()) == data
    text = report.table(data)
    assert "BadImage Deployment/web" in text and "timeout" in text and "top1 0.500" in text


def test_investigation_status_is_read_into_ranked_hypotheses() -> None:
    status = {
        "state": "Completed",
        "conditions": [{"type": "Completed", "status": "True", "reason": "RootCauseFound"}],
        "rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.94},
        "hypotheses": [
            {"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.94, "evidenceIds": ["e1"]},
            {"category": "ImagePullAuth", "resource": {"kind": "Secret", "name": "creds"}, "confidence": 0.3},
            {"category": "NoFault", "confidence": 0.05},
        ],
    }
    assert concluded(status)
    out = outcome_of(status, 0.42)
    assert out.error is None and out.concluded == "BadImage" and out.investigate_s == 0.42
    assert [h.to_json() for h in out.ranked] == [
        {"category": "BadImage", "resource": "Deployment/web", "confidence": 0.94},
        {"category": "ImagePullAuth", "resource": "Secret/creds", "confidence": 0.3},
        {"category": "NoFault", "resource": None, "confidence": 0.05},
    ]
    # without hypotheses, the root cause alone is the ranking
    assert [h.category for h in ranked({"rootCause": status["rootCause"]})] == ["BadImage"]


def test_investigation_states() -> None:
    assert not concluded({"state": "Running"}) and not concluded({"state": "Pending", "conditions": []})
    assert concluded({"conditions": [{"type": "Completed", "status": "True"}]})
    failed = outcome_of({"state": "Failed", "conditions": [{"type": "Accepted", "status": "False", "reason": "InvalidSpec", "message": "bad"}]}, 1.0)
    assert failed.error == "investigation failed: Accepted: InvalidSpec bad"
    empty = outcome_of({"state": "Completed"}, 1.0)
    assert empty.error == "investigation concluded without a root cause"
