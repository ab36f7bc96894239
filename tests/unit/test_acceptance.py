"""Accepting specs and keeping conditions, without a cluster."""

from __future__ import annotations

import datetime as dt

from aisre.api import Incident, Investigation, RemediationPolicy
from aisre.api.conditions import ACCEPTED, find_condition, set_condition
from aisre.operator.acceptance import accept

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def _body(spec, generation=1, status=None):
    return {"metadata": {"name": "x", "generation": generation}, "spec": spec, "status": status or {}}


def test_valid_investigation_is_accepted_and_pending() -> None:
    patch = accept(Investigation, _body({"target": {"kind": "Deployment", "name": "web"}}, generation=3), T0)
    assert patch["observedGeneration"] == 3
    cond = find_condition(patch["conditions"], ACCEPTED)
    assert cond["status"] == "True" and cond["reason"] == "SpecAccepted" and cond["observedGeneration"] == 3
    assert patch["state"] == "Pending"
    assert patch["target"] == "Deployment/web"


def test_selector_target_is_described() -> None:
    patch = accept(Investigation, _body({"target": {"selector": {"matchLabels": {"tier": "db", "app": "pg"}}}}), T0)
    assert patch["target"] == "selector app=pg,tier=db"
    patch = accept(Investigation, _body({"target": {"selector": {}}}), T0)
    assert patch["target"] == "namespace"


def test_invalid_spec_is_refused_with_the_field() -> None:
    patch = accept(Investigation, _body({"target": {"kind": "Deployment", "name": "web"}, "deadlineSeconds": 0}), T0)
    cond = find_condition(patch["conditions"], ACCEPTED)
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec"
    assert "deadlineSeconds" in cond["message"]
    assert patch["state"] == "Failed"


def test_existing_state_is_kept() -> None:
    body = _body({"title": "t", "resource": {"kind": "Deployment", "name": "web"}}, status={"state": "Investigating"})
    assert accept(Incident, body, T0)["state"] == "Investigating"
    assert accept(Incident, _body(body["spec"]), T0)["state"] == "Open"


def test_policy_actions_summary() -> None:
    spec = {"actions": [{"type": "rollback", "mode": "suggest"}, {"type": "deletePod", "mode": "auto"}]}
    assert accept(RemediationPolicy, _body(spec), T0)["actionsSummary"] == "rollback=suggest,deletePod=auto"
    assert accept(RemediationPolicy, _body({}), T0)["actionsSummary"] == "none"


def test_transition_time_changes_only_with_status() -> None:
    first = set_condition(None, type_="Accepted", status="True", reason="A", message="", observed_generation=1, now=T0)
    again = set_condition(first, type_="Accepted", status="True", reason="B", message="m", observed_generation=2, now=T1)
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert again[0]["reason"] == "B" and again[0]["observedGeneration"] == 2
    flipped = set_condition(again, type_="Accepted", status="False", reason="C", message="", observed_generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]
    other = set_condition(flipped, type_="Ready", status="True", reason="D", message="", observed_generation=2, now=T1)
    assert [c["type"] for c in other] == ["Accepted", "Ready"]
