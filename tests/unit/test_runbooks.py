"""Runbooks: which apply to a conclusion and why, the actions they propose, and how the
reports print them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aisre.api.runbook import Runbook
from aisre.knowledge.runbooks import MAX_MATCHED, conclusion_of, matching, needs_labels
from aisre.operator.recommend import runbook_actions
from aisre.remediation.actions import CATALOG
from aisre.report import render_incident, render_investigation

KINDS_OF = {action.value: module.kinds for action, module in CATALOG.items()}


def runbook(name: str, match: dict[str, Any], namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "aisre.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": name, "namespace": namespace},
            "spec": {"title": f"{name} runbook", "match": match, "steps": ["look", "fix"], **spec}}


def status(category: str = "MemoryLimitTooLow", kind: str = "Deployment", name: str = "checkout",
           evidence: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    evidence = evidence if evidence is not None else [
        {"id": "w-1", "agent": "workloads", "kind": "ContainerTerminated", "summary": "killed",
         "resource": {"kind": kind, "name": name}, "data": {"reason": "OOMKilled"}},
        {"id": "l-1", "agent": "logs", "kind": "LogTemplates", "summary": "templates",
         "resource": {"kind": "Deployment", "name": "other"},
         "data": {"templates": [{"template": "java.lang.OutOfMemoryError: Java heap space", "count": 3}]}},
        {"id": "e-9", "agent": "events", "kind": "Event", "summary": "noise", "resource": {"kind": "Deployment", "name": "noise"},
         "data": {"reason": "FailedMount"}},
    ]
    return {"rootCause": {"category": category, "resource": {"kind": kind, "name": name, "namespace": "shop"},
                          "confidence": 0.9, "summary": "s"},
            "hypotheses": [{"category": category, "evidenceIds": ["w-1"], "chain": [{"ref": "x", "evidenceIds": ["l-1"]}]}],
            "evidence": evidence}


def names(matched: list[dict[str, Any]]) -> list[str]:
    return [m["name"] for m in matched]


def test_every_given_field_must_hold_and_the_reasons_are_kept() -> None:
    conclusion = conclusion_of(status(), {"team": "payments"})
    assert conclusion is not None
    books = [
        runbook("oom", {"categories": ["MemoryLimitTooLow", "MemoryLeak"]}),
        runbook("oom-java", {"categories": ["MemoryLimitTooLow"], "logContains": ["OutOfMemoryError"]}),
        runbook("oom-payments", {"categories": ["MemoryLimitTooLow"], "selector": {"matchLabels": {"team": "payments"}}}),
        runbook("oom-search", {"categories": ["MemoryLimitTooLow"], "selector": {"matchLabels": {"team": "search"}}}),
        runbook("image", {"categories": ["BadImage"]}),
        runbook("deployments", {"kinds": ["Deployment"], "signalReasons": ["oomkilled"]}),
        runbook("mounts", {"signalReasons": ["FailedMount"]}),  # only uncited noise says FailedMount
    ]
    matched = matching(books, conclusion, "shop")
    assert len(matched) == MAX_MATCHED
    # the most specific first (two fields held), then by priority and name
    assert names(matched) == ["deployments", "oom-java", "oom-payments"]
    by_name = {m["name"]: m for m in matching(books[:2], conclusion, "shop")}
    assert by_name["oom-java"]["matchedOn"] == ["category MemoryLimitTooLow", "log text 'OutOfMemoryError'"]
    assert by_name["oom"]["steps"] == ["look", "fix"] and by_name["oom"]["namespace"] == "shop"
    assert names(matching([books[3], books[4], books[6]], conclusion, "shop")) == []


def test_priority_then_the_namespaces_own_runbook_come_first() -> None:
    conclusion = conclusion_of(status())
    assert conclusion is not None
    books = [runbook("a-starter", {"categories": ["MemoryLimitTooLow"]}, namespace="aisre-system", priority=-10),
             runbook("b-cluster", {"categories": ["MemoryLimitTooLow"]}, namespace="aisre-system"),
             runbook("c-team", {"categories": ["MemoryLimitTooLow"]}),
             runbook("d-urgent", {"categories": ["MemoryLimitTooLow"]}, namespace="aisre-system", priority=50)]
    assert names(matching(books, conclusion, "shop")) == ["d-urgent", "c-team", "b-cluster"]


def test_no_fault_matches_only_a_runbook_written_for_it() -> None:
    conclusion = conclusion_of(status("NoFault", evidence=[
        {"id": "w-1", "agent": "workloads", "kind": "ContainerTerminated", "summary": "old",
         "resource": {"kind": "Deployment", "name": "checkout"}, "data": {"reason": "OOMKilled"}}]))
    assert conclusion is not None
    books = [runbook("deployments", {"kinds": ["Deployment"]}), runbook("oom", {"signalReasons": ["OOMKilled"]}),
             runbook("quiet", {"categories": ["NoFault"]})]
    assert names(matching(books, conclusion, "shop")) == ["quiet"]
    assert conclusion_of({"state": "Running"}) is None


def test_an_invalid_runbook_is_skipped_not_fatal() -> None:
    conclusion = conclusion_of(status())
    assert conclusion is not None
    broken = runbook("broken", {"categories": ["NotACategory"]})
    assert names(matching([broken, runbook("ok", {"categories": ["MemoryLimitTooLow"]})], conclusion, "shop")) == ["ok"]


def test_labels_are_read_only_when_a_runbook_selects_by_them() -> None:
    assert not needs_labels([runbook("a", {"categories": ["BadImage"]})])
    assert needs_labels([runbook("a", {"categories": ["BadImage"]}), runbook("b", {"selector": {"matchLabels": {"a": "b"}}})])


def test_the_model_refuses_a_runbook_that_matches_nothing_or_has_no_steps() -> None:
    with pytest.raises(ValidationError):
        Runbook.model_validate(runbook("empty", {}) | {"spec": {"title": "t", "match": {}, "steps": []}})
    with pytest.raises(ValidationError):
        Runbook.model_validate(runbook("bad-link", {"kinds": ["Pod"]}, links=[{"title": "x", "url": "javascript:alert(1)"}]))
    rules = Runbook.model_json_schema(by_alias=True)["$defs"]["RunbookMatch"]["x-kubernetes-validations"]
    assert "has(self.categories)" in rules[0]["rule"]


def test_runbook_actions_go_to_the_policy_on_the_root_cause_only_where_they_apply() -> None:
    matched = [{"name": "oom", "namespace": "aisre-system", "actions": [
        {"type": "setResources", "parameters": {"memoryIncreasePercent": 50}, "reason": "more memory"},
        {"type": "cordonNode"},  # does not apply to a Deployment
        {"type": "rollback"}]}]
    root = {"resource": {"kind": "Deployment", "name": "checkout"}}
    existing = [{"id": "rollback-1", "type": "rollback", "target": {"kind": "Deployment", "name": "checkout"}}]
    added = runbook_actions(matched, root, "shop", existing, KINDS_OF)
    assert [(a["type"], a["target"]) for a in added] == [
        ("setResources", {"kind": "Deployment", "name": "checkout", "namespace": "shop"})]
    assert added[0]["parameters"] == {"memoryIncreasePercent": 50}
    assert added[0]["reason"] == "proposed by runbook aisre-system/oom: more memory"
    assert runbook_actions(matched, {"resource": None}, "shop", [], KINDS_OF) == []


def test_reports_print_the_runbook_under_the_root_cause() -> None:
    conclusion = conclusion_of(status())
    assert conclusion is not None
    [matched] = matching([runbook("oom", {"categories": ["MemoryLimitTooLow"]},
                                  links=[{"title": "dashboard", "url": "https://grafana.example/d/1"}],
                                  actions=[{"type": "setResources", "parameters": {"memoryIncreasePercent": 50}}])],
                         conclusion, "shop")
    inv = {"metadata": {"name": "i", "namespace": "shop"}, "spec": {"target": {"kind": "Deployment", "name": "checkout"}},
           "status": {**status(), "runbooks": [matched]}}
    text = render_investigation(inv)
    assert "### Runbook: oom runbook (`shop/oom`)" in text and "1. look\n2. fix" in text
    assert "[dashboard](https://grafana.example/d/1)" in text and "**setResources** (memoryIncreasePercent=50)" in text
    assert text.index("## Root cause") < text.index("### Runbook") < text.index("## Hypotheses")
    incident = {"metadata": {"name": "inc", "namespace": "shop"}, "spec": {"title": "t"}, "status": {}}
    assert "The runbook for this root cause: **oom runbook** (`shop/oom`)" in render_incident(incident, inv)


def test_the_watch_index_answers_only_for_namespaces_the_operator_watches() -> None:
    from aisre.operator.runbook_step import RunbookShelf

    book = {"metadata": {"name": "oom", "namespace": "shop"}}
    index = {"shop": [book]}
    assert RunbookShelf(index, ()).runbooks("shop") == [book]
    assert RunbookShelf(index, ()).runbooks("empty") == []  # cluster-wide: an empty namespace has none
    scoped = RunbookShelf(index, ("shop", "team-*"))
    assert scoped.runbooks("team-a") == [] and scoped.runbooks("shop") == [book]
    assert scoped.runbooks("aisre-system") is None  # not watched: read from the API server
    assert RunbookShelf(index, ("!kube-*",)).runbooks("shop") is None  # exclusions: the API decides
