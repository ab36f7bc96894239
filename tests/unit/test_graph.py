"""What one Investigation writes to the knowledge graph (pure: the rows and their keys)."""

from __future__ import annotations

import datetime as dt

from aisre.knowledge.graph import (
    WRITE_CASE,
    WRITE_CHAIN,
    WRITE_EDGES,
    WRITE_EVIDENCE,
    WRITE_HYPOTHESES,
    WRITE_OBJECTS,
    investigation_batches,
    object_key,
    similar_parameters,
)
from aisre.knowledge.memory import case_of_investigation

META = {"uid": "inv-1", "name": "bench", "namespace": "shop"}
STATUS = {
    "completedAt": "2026-12-01T12:00:00Z",
    "rootCause": {"category": "BadConfigChange", "resource": {"kind": "ConfigMap", "name": "checkout-config"},
                  "confidence": 0.91, "summary": "timeout unit changed"},
    "hypotheses": [
        {"category": "BadConfigChange", "resource": {"kind": "ConfigMap", "name": "checkout-config"}, "confidence": 0.91,
         "evidenceIds": ["c-1", "l-1"], "chain": [{"ref": "Deployment/frontend"}, {"ref": "Service/checkout"},
                                                  {"ref": "Deployment/checkout"}, {"ref": "ConfigMap/checkout-config"}]},
        {"category": "DependencyFailure", "resource": {"kind": "Deployment", "name": "checkout"}, "confidence": 0.3,
         "evidenceIds": ["l-1"]},
    ],
    "evidence": [
        {"id": "c-1", "agent": "changes", "kind": "ConfigChanged", "summary": "changed",
         "resource": {"kind": "ConfigMap", "name": "checkout-config"}, "data": {}},
        {"id": "l-1", "agent": "logs", "kind": "LogSignature", "summary": "timeouts",
         "resource": {"kind": "Deployment", "name": "frontend"}, "data": {"signature": "timeout"}},
        {"id": "n-1", "agent": "workloads", "kind": "NodeNotReady", "summary": "node", "resource": {"kind": "Node", "name": "n1"}},
    ],
}
EDGES = [{"src": "Deployment/frontend", "dst": "Service/checkout", "relation": "dependsOn"},
         {"src": "Service/checkout", "dst": "Deployment/checkout", "relation": "routesTo"},
         {"src": "Deployment/checkout", "dst": "Node/n1", "relation": "runsOn"}]


def rows(batches, statement):
    return next(r for s, r in batches.statements if s == statement)


def test_objects_are_keyed_by_namespace_unless_cluster_scoped() -> None:
    assert object_key("Deployment/checkout", "shop") == "shop/Deployment/checkout"
    assert object_key("Node/n1", "shop") == "Node/n1"


def test_an_investigation_becomes_objects_relations_evidence_hypotheses_and_its_chain() -> None:
    batches = investigation_batches(META, STATUS, EDGES)
    objects = {r["key"]: r for r in rows(batches, WRITE_OBJECTS)}
    assert set(objects) == {"shop/ConfigMap/checkout-config", "shop/Deployment/frontend", "shop/Service/checkout",
                            "shop/Deployment/checkout", "Node/n1"}
    assert objects["Node/n1"]["namespace"] == "" and objects["shop/Service/checkout"]["namespace"] == "shop"
    assert {(e["src"], e["relation"], e["dst"]) for e in rows(batches, WRITE_EDGES)} == {
        ("shop/Deployment/frontend", "dependsOn", "shop/Service/checkout"),
        ("shop/Service/checkout", "routesTo", "shop/Deployment/checkout"),
        ("shop/Deployment/checkout", "runsOn", "Node/n1")}
    assert [(h["key"], h["about"]) for h in rows(batches, WRITE_HYPOTHESES)] == [
        ("inv-1/1", "shop/ConfigMap/checkout-config"), ("inv-1/2", "shop/Deployment/checkout")]
    evidence = {e["id"]: e for e in rows(batches, WRITE_EVIDENCE)}
    assert evidence["l-1"]["citedBy"] == ["inv-1/1", "inv-1/2"] and evidence["n-1"]["citedBy"] == []
    assert evidence["c-1"]["key"] == "inv-1/c-1"  # evidence ids are per Investigation
    assert [c["object"] for c in rows(batches, WRITE_CHAIN)] == [
        "shop/Deployment/frontend", "shop/Service/checkout", "shop/Deployment/checkout", "shop/ConfigMap/checkout-config"]
    assert all(s != WRITE_CASE for s, _ in batches.statements)  # no Incident, no case
    assert investigation_batches(META, STATUS, EDGES).statements == batches.statements  # deterministic


def test_the_case_goes_with_its_investigation_and_the_query_takes_it_as_parameters() -> None:
    case = case_of_investigation(STATUS, uid="inc-1", namespace="shop", name="checkout-slow",
                                 now=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC), labels={"app": "checkout"})
    assert case is not None
    batches = investigation_batches(META, STATUS, EDGES, case)
    [row] = rows(batches, WRITE_CASE)
    assert row["uid"] == "inc-1" and row["investigation"] == "inv-1" and row["signature"] == sorted(case.signature)
    params = similar_parameters(case, 3, 0.6)
    assert params["namespace"] == "shop" and params["category"] == "BadConfigChange"
    assert params["concludedAt"] == "2026-12-01T12:00:00Z" and params["identity"] == ["name:checkout-config", "app:checkout"]
