"""aisre insights: the aggregation over Incidents, its Markdown and JSON, and the chart."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from aisre.insights import aggregate, draw_charts, parse_period, render_json, render_markdown

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
SINCE = NOW - dt.timedelta(days=7)


def iso(hours_ago: float) -> str:
    return (NOW - dt.timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def incident(name: str, ns: str = "shop", created_h: float = 24, *, cause: str | None = "MemoryLimitTooLow",
             resource: tuple[str, str] = ("Deployment", "api"), first_seen_h: float | None = None,
             identified_after_s: float | None = None, resolved_h: float | None = None,
             remediations: list[dict[str, Any]] | None = None, feedback: str | None = None, recurrences: int = 0,
             occurrences: int = 1, prediction: dict[str, Any] | None = None, state: str | None = None,
             resolved_reason: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"title": name, "resource": {"kind": resource[0], "name": resource[1], "namespace": ns},
                            "occurrences": occurrences}
    if first_seen_h is not None:
        spec["firstSeen"] = iso(first_seen_h)
    if feedback:
        spec["feedback"] = {"verdict": feedback, "by": "alice"}
    if prediction:
        spec["prediction"] = prediction
    status: dict[str, Any] = {"state": state or ("Resolved" if resolved_h is not None else "Identified")}
    if cause:
        status["rootCause"] = {"category": cause, "resource": {"kind": resource[0], "name": resource[1]}}
    if identified_after_s is not None:
        status["timeline"] = [{"time": (NOW - dt.timedelta(hours=created_h) + dt.timedelta(seconds=identified_after_s))
                               .isoformat(), "event": "RootCauseIdentified"}]
    if resolved_h is not None:
        status["resolvedAt"] = iso(resolved_h)
    if resolved_reason:
        status["conditions"] = [{"type": "Resolved", "status": "True", "reason": resolved_reason}]
    if remediations:
        status["remediations"] = remediations
    if recurrences:
        status["recurrences"] = recurrences
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": iso(created_h)}, "spec": spec, "status": status}


def executed(type_: str, created_h: float, after_s: float, result: str = "Succeeded", cleared: bool = True,
             approved_wait_s: float | None = None) -> dict[str, Any]:
    decided = NOW - dt.timedelta(hours=created_h)
    started = decided + dt.timedelta(seconds=approved_wait_s or 0)
    entry = {"id": "a1", "type": type_, "decision": "Execute", "result": result,
             "decidedAt": decided.isoformat(), "startedAt": started.isoformat(),
             "finishedAt": (decided + dt.timedelta(seconds=after_s)).isoformat(), "assessment": {"cleared": cleared}}
    if approved_wait_s is not None:
        entry["approvedBy"] = "bob"
    return entry


def test_counts_times_actions_and_feedback() -> None:
    items = [
        incident("a", created_h=30, first_seen_h=30 + 60 / 3600, identified_after_s=90, resolved_h=29,
                 remediations=[executed("setResources", 30, 300, approved_wait_s=120)], feedback="correct",
                 recurrences=2, occurrences=5),
        incident("b", created_h=10, first_seen_h=10 + 30 / 3600, identified_after_s=30, cause="StorageFailure",
                 resource=("PersistentVolumeClaim", "data"), feedback="wrong",
                 remediations=[executed("rolloutRestart", 10, 60, result="Reverted")]),
        incident("c", ns="pay", created_h=5, cause=None, remediations=[
            {"id": "x", "type": "scale", "decision": "AwaitingApproval", "result": "Pending"}]),
        incident("old", created_h=24 * 9),  # before the period
    ]
    i = aggregate(items, SINCE, NOW)
    assert i.incidents == 3 and i.reactive == 3
    assert i.by_root_cause == {"MemoryLimitTooLow": 1, "StorageFailure": 1, "Unknown": 1}
    assert i.by_namespace == {"shop": 2, "pay": 1}
    assert i.mean_seconds["detect"] == 45.0 and i.mean_seconds["identify"] == 60.0
    assert i.mean_seconds["mitigate"] == 300.0 and i.mean_seconds["resolve"] == 3660.0
    assert i.actions_executed == 2 and i.actions_verified == 1 and i.actions == {"setResources": 1, "rolloutRestart": 1}
    assert i.approvals == 1 and i.approval_wait_mean_seconds == 120.0 and i.awaiting_approval == 1
    assert i.feedback == 2 and i.confirmed == 1 and i.confirmed_share == 0.5
    assert i.recurring == 1 and i.recurrences == 2
    assert i.noisiest[0] == {"namespace": "shop", "workload": "Deployment/api", "incidents": 1, "signals": 5}


def test_forecasts_came_true_or_not() -> None:
    p = {"category": "StorageFailure", "failureTime": iso(-2), "latest": iso(-3), "signal": "volumeFull"}
    items = [
        incident("pred-reached", created_h=20, cause=None, resource=("PersistentVolumeClaim", "a"), prediction=p,
                 resolved_h=15, resolved_reason="LimitReached"),
        incident("pred-followed", created_h=20, cause=None, resource=("PersistentVolumeClaim", "b"), prediction=p,
                 resolved_h=15, resolved_reason="TrendTurned"),
        incident("reactive-b", created_h=16, cause="StorageFailure", resource=("PersistentVolumeClaim", "b")),
        incident("pred-averted", created_h=20, cause=None, resource=("PersistentVolumeClaim", "c"), prediction=p,
                 resolved_h=19, resolved_reason="TrendTurned"),
        incident("pred-open", created_h=1, cause=None, resource=("PersistentVolumeClaim", "d"), prediction=p,
                 state="Predicted"),
    ]
    i = aggregate(items, SINCE, NOW)
    outcomes = {f.incident.split("/")[1]: f.outcome for f in i.forecasts}
    assert outcomes == {"pred-reached": "cameTrue", "pred-followed": "cameTrue", "pred-averted": "averted",
                        "pred-open": "open"}
    assert i.reactive == 1 and i.forecasts_came_true == 2
    assert json.loads(render_json(i))["forecasts_came_true"] == 2


def test_markdown_has_every_section_and_the_chart_beside_it(tmp_path: Path) -> None:
    items = [incident("a", created_h=30), incident("b", created_h=50, cause="StorageFailure")]
    i = aggregate(items, SINCE, NOW)
    md = tmp_path / "week.md"
    charts = draw_charts(i, md)
    assert charts == {"causes": "week-causes.png"}
    png = (tmp_path / "week-causes.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    text = render_markdown(i, charts)
    for heading in ("Root causes", "Namespaces", "Response times", "Recurrences", "Actions", "Noisiest workloads",
                    "Feedback", "Forecasts"):
        assert f"## {heading}" in text
    assert "![Incidents per day by root cause](week-causes.png)" in text
    assert draw_charts(aggregate([], SINCE, NOW), md) == {}


@pytest.mark.parametrize("text, seconds", [("7d", 7 * 86400), ("36h", 36 * 3600), ("1d12h", 36 * 3600), ("90m", 5400)])
def test_periods(text: str, seconds: float) -> None:
    assert parse_period(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7w", "-1d", "0h"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)
