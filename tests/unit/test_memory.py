"""The memory of past incidents: cases, explained similarity, recurrences, the bounded index
and what the statuses and reports show."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aisre.knowledge.memory import (
    Case,
    Memory,
    case_of_incident,
    case_of_investigation,
    identity_of,
    seen_before,
    signature_of,
    similarity,
    stable_name,
    status_entries,
)
from aisre.report import render_investigation

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def oom_status(name: str = "checkout", pod: str = "checkout-7d9f8b6c5d-x2k4p", extra: str = "") -> dict[str, Any]:
    return {
        "rootCause": {"category": "MemoryLimitTooLow", "resource": {"kind": "Deployment", "name": name}, "confidence": 0.9},
        "hypotheses": [{"category": "MemoryLimitTooLow", "evidenceIds": ["w-1", "c-1"],
                        "chain": [{"ref": f"Deployment/{name}", "evidenceIds": []}]}],
        "evidence": [
            {"id": "w-1", "agent": "workloads", "summary": "OOMKilled", "kind": "ContainerTerminated", "resource": {"kind": "Deployment", "name": name},
             "data": {"reason": "OOMKilled", "pod": pod}},
            {"id": "c-1", "agent": "changes", "summary": "resources changed", "kind": "TemplateChange", "resource": {"kind": "Deployment", "name": name},
             "data": {"fields": ["resources"]}},
            {"id": "l-1", "agent": "logs", "summary": "templates", "kind": "LogTemplates", "resource": {"kind": "Deployment", "name": name},
             "data": {"templates": [{"template": f"heap {extra}usage 981234 bytes over limit", "count": 2}]}},
        ],
    }


def case(status: dict[str, Any], uid: str, at: dt.datetime, labels: dict[str, str] | None = None,
         namespace: str = "shop", name: str | None = None) -> Case:
    made = case_of_investigation(status, uid=uid, namespace=namespace, name=name or f"inc-{uid}", now=at, labels=labels)
    assert made is not None
    return made


def test_generated_suffixes_do_not_make_another_workload() -> None:
    assert stable_name("checkout-7d9f8b6c5d-x2k4p") == "checkout"
    assert stable_name("checkout-7d9f8b6c5d") == "checkout"
    assert stable_name("postgres-0") == "postgres"
    assert stable_name("app-config-k2c8mbf9t7") == "app-config"
    assert stable_name("checkout") == "checkout" and stable_name("api-v2") == "api-v2"
    assert identity_of("checkout-v2", {"app.kubernetes.io/name": "checkout"}) == ("name:checkout-v2", "app:checkout")


def test_the_signature_is_what_the_conclusion_rests_on_with_numbers_masked() -> None:
    tokens = signature_of(oom_status())
    assert {"evidence:ContainerTerminated", "reason:oomkilled", "changed:resources", "chain:Deployment",
            "template:heap usage <n> bytes over limit"} <= tokens
    assert signature_of(oom_status(pod="checkout-55b8c9d7f4-q9w8e")) == tokens  # other pod names, same signature


def test_a_recurrence_under_another_revision_is_found_and_explained() -> None:
    memory = Memory()
    first = case(oom_status(), "a", T0, {"app": "checkout"})
    other = case(oom_status(name="search"), "b", T0 + dt.timedelta(hours=1), {"app": "search"})
    image = case({**oom_status(), "rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "checkout"}}},
                 "c", T0 + dt.timedelta(hours=2), {"app": "checkout"})
    for c in (first, other, image):
        memory.add(c)
    again = case(oom_status(pod="checkout-55b8c9d7f4-q9w8e"), "d", T0 + dt.timedelta(days=2), {"app": "checkout"})
    matches = memory.similar(again)
    assert [m.case.uid for m in matches] == ["a", "b"]  # the same workload first; another category never
    best = matches[0]
    assert best.similarity == 1.0
    assert best.matched_on[:3] == ("category MemoryLimitTooLow", "kind Deployment", "same workload (app:checkout, name:checkout)")
    assert best.matched_on[3].startswith("evidence 7 of 7: chain:Deployment, changed:resources")
    assert matches[1].similarity < best.similarity and "same workload" not in " ".join(matches[1].matched_on)
    assert [c.uid for c in memory.recurrences(again)] == ["a"]


def test_only_the_namespaces_own_past_is_shown_and_never_the_future() -> None:
    memory = Memory()
    memory.add(case(oom_status(), "theirs", T0, namespace="other-team"))
    memory.add(case(oom_status(), "later", T0 + dt.timedelta(days=3)))
    now = case(oom_status(), "now", T0 + dt.timedelta(days=1))
    assert memory.similar(now, namespace="shop") == []
    assert [m.case.uid for m in memory.similar(now)] == ["theirs"]
    assert memory.recurrences(now, namespace="shop") == []


def test_no_fault_makes_no_case() -> None:
    quiet = {"rootCause": {"category": "NoFault", "confidence": 0.9}, "evidence": []}
    assert case_of_investigation(quiet, uid="x", namespace="shop", name="i", now=T0) is None
    incident = {"metadata": {"uid": "u", "name": "i", "namespace": "shop"},
                "status": {"case": {"category": "NoFault", "concludedAt": "2026-12-01T12:00:00Z"}}}
    assert case_of_incident(incident) is None


def test_an_incident_keeps_its_case_and_its_outcome_for_the_index() -> None:
    made = case(oom_status(), "u1", T0, {"app": "checkout"}, name="checkout-oom")
    incident = {"metadata": {"uid": "u1", "name": "checkout-oom", "namespace": "shop"},
                "spec": {"feedback": {"verdict": "correct"}},
                "status": {"case": made.record(), "remediations": [
                    {"type": "setResources", "decision": "Execute", "result": "Reverted"},
                    {"type": "rollback", "decision": "Execute", "result": "Succeeded"},
                    {"type": "scale", "decision": "Suggested", "result": "Skipped"}]}}
    back = case_of_incident(incident)
    assert back is not None
    assert (back.category, back.identity, back.signature, back.concluded_at) == \
        (made.category, made.identity, made.signature, made.concluded_at)
    assert back.actions == (("setResources", "Reverted"), ("rollback", "Succeeded")) and back.verdict == "correct"
    line = seen_before(made, [back])
    assert line == "seen once in 30 days; last 2026-12-01 12:00 UTC (checkout-oom): fixed by rollback, verified"
    [entry] = status_entries([similarity(made, back)])  # type: ignore[list-item]
    assert entry["outcome"] == "fixed by rollback, verified" and entry["verdict"] == "correct"


def test_the_index_is_bounded_and_forgets_the_oldest_first() -> None:
    memory = Memory(max_cases=50)
    order = list(range(80))
    random.Random(7).shuffle(order)  # a start-up listing comes in no particular order
    for i in order:
        memory.add(case(oom_status(), f"u{i}", T0 + dt.timedelta(minutes=i)))
    assert len(memory) == 50
    probe = case(oom_status(), "probe", T0 + dt.timedelta(days=1))
    assert all(int(m.case.uid[1:]) >= 30 for m in memory.similar(probe, limit=50))
    memory.remove("u79")
    assert len(memory) == 49


@given(st.lists(st.sampled_from(["reason:oomkilled", "evidence:Event", "log:timeout", "changed:image", "chain:Service>Deployment"]),
                max_size=5), st.lists(st.sampled_from(["reason:oomkilled", "evidence:Event", "log:timeout"]), max_size=3))
def test_similarity_is_symmetric_and_bounded(left: list[str], right: list[str]) -> None:
    a = Case("a", "shop", "a", T0, "MemoryLeak", "Deployment", "Deployment/x", ("name:x",), frozenset(left))
    b = Case("b", "shop", "b", T0, "MemoryLeak", "StatefulSet", "StatefulSet/x", ("name:x",), frozenset(right))
    ab, ba = similarity(a, b), similarity(b, a)
    assert ab is not None and ba is not None
    assert ab.similarity == ba.similarity and 0.35 <= ab.similarity <= 1.0


def test_the_report_shows_what_memory_recalls() -> None:
    status = {**oom_status(), "seenBefore": "seen 2 times in 30 days; last ...: fixed by rollback, verified",
              "similarIncidents": [{"name": "checkout-oom", "namespace": "shop", "concludedAt": "2026-12-01T12:00:00Z",
                                    "category": "MemoryLimitTooLow", "resource": "Deployment/checkout", "similarity": 0.93,
                                    "matchedOn": ["category MemoryLimitTooLow", "kind Deployment"],
                                    "outcome": "fixed by rollback, verified"}]}
    text = render_investigation({"metadata": {"name": "i", "namespace": "shop"}, "spec": {}, "status": status})
    assert "## Seen before" in text and "seen 2 times in 30 days" in text
    assert "`shop/checkout-oom` 2026-12-01T12:00:00Z: MemoryLimitTooLow on `Deployment/checkout`, similarity 0.93" in text


def test_feedback_corrects_what_memory_keeps_and_counts_the_confirmed_share() -> None:
    import pytest
    from pydantic import ValidationError

    from aisre.knowledge.feedback import feedback_entry

    assert feedback_entry("correct", "alice") == {"verdict": "correct", "by": "alice", "comment": ""}
    with pytest.raises(ValueError):
        feedback_entry("correct", "alice", category="BadImage")
    with pytest.raises(ValidationError):
        feedback_entry("wrong", "alice", category="Gremlins")
    made = case(oom_status(), "u1", T0, {"app": "checkout"}, name="checkout-oom")
    wrong = feedback_entry("wrong", "bob", category="MemoryLeak", resource={"kind": "Deployment", "name": "cache"})
    corrected = case_of_incident({"metadata": {"uid": "u1", "name": "checkout-oom", "namespace": "shop"},
                                  "spec": {"feedback": wrong}, "status": {"case": made.record()}})
    assert corrected is not None and (corrected.category, corrected.resource, corrected.verdict) == \
        ("MemoryLeak", "Deployment/cache", "wrong")
    nothing = case_of_incident({"metadata": {"uid": "u1", "name": "i", "namespace": "shop"},
                                "spec": {"feedback": feedback_entry("wrong", "bob", category="NoFault")},
                                "status": {"case": made.record()}})
    assert nothing is None  # it was no fault at all: nothing to recur
    memory = Memory()
    assert memory.confirmed_share() is None
    for uid, verdict in (("a", "correct"), ("b", "correct"), ("c", "wrong"), ("d", "correct")):
        memory.note_verdict(uid, verdict)
    memory.note_verdict("d", None)
    assert memory.confirmed_share() == 2 / 3


def test_a_clusters_own_calibration_from_its_verdicts() -> None:
    import pytest

    from aisre.knowledge.feedback import verdict_pairs
    from aisre.operator.config import OperatorConfig
    from aisre.ranking.calibration import KNOTS, calibrate, use_knots

    def incident(name: str, verdict: str | None) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "shop"}, "status": {"investigationRef": {"name": f"inv-{name}"}},
                "spec": {"feedback": {"verdict": verdict, "by": "alice"}} if verdict else {}}

    investigations = {("shop", f"inv-{n}"): {"status": {"hypotheses": [{"score": s}]}}
                      for n, s in (("a", 0.9), ("b", 0.8), ("c", 0.95))}
    assert verdict_pairs([incident("a", "correct"), incident("b", "wrong"), incident("c", None), incident("gone", "correct")],
                         investigations) == [(0.9, True), (0.8, False)]
    mine = [[0.0, 0.0], [0.9, 0.7], [1.0, 0.95]]
    config = OperatorConfig.from_env({"AISRE_CALIBRATION_KNOTS": "[[0, 0], [0.9, 0.7], [1, 0.95]]"})
    assert config.calibration_knots == ((0.0, 0.0), (0.9, 0.7), (1.0, 0.95))
    for bad in ("[[0, 0], [0.9, 0.7]]", "[[0, 0], [0.5, 0.9], [0.4, 0.95], [1, 1]]", "not json"):
        with pytest.raises(ValueError, match="AISRE_CALIBRATION_KNOTS"):
            OperatorConfig.from_env({"AISRE_CALIBRATION_KNOTS": bad})
    try:
        use_knots(mine)
        assert calibrate(0.9) == 0.7
    finally:
        use_knots(None)
    assert calibrate(0.9) == calibrate(0.9, KNOTS)
