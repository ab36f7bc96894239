"""The knowledge graph written to Neo4j: each Investigation's objects, their relations, the
evidence, the hypotheses, the root cause and its chain, and each Incident as a case.

Pure: this module turns a concluded Investigation into batches of rows, and holds the
Cypher that writes them (MERGE on stable keys, UNWIND per batch: writing the same
Investigation twice changes nothing) and the Cypher that reads similar past incidents with
the same score as the embedded memory (``aisre.knowledge.memory.similarity``). The schema
and example queries are in docs/knowledge.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aisre.knowledge.memory import Case

MAX_EDGES = 500  # topology edges written per Investigation

# One statement per kind of row; each takes $rows and MERGEs on stable keys.
CONSTRAINTS = (
    "CREATE CONSTRAINT aisre_object IF NOT EXISTS FOR (o:Object) REQUIRE o.key IS UNIQUE",
    "CREATE CONSTRAINT aisre_investigation IF NOT EXISTS FOR (i:Investigation) REQUIRE i.uid IS UNIQUE",
    "CREATE CONSTRAINT aisre_incident IF NOT EXISTS FOR (i:Incident) REQUIRE i.uid IS UNIQUE",
    "CREATE CONSTRAINT aisre_evidence IF NOT EXISTS FOR (e:Evidence) REQUIRE e.key IS UNIQUE",
    "CREATE CONSTRAINT aisre_hypothesis IF NOT EXISTS FOR (h:Hypothesis) REQUIRE h.key IS UNIQUE",
    "CREATE CONSTRAINT aisre_token IF NOT EXISTS FOR (t:Token) REQUIRE t.value IS UNIQUE",
    "CREATE INDEX aisre_incident_category IF NOT EXISTS FOR (i:Incident) ON (i.namespace, i.category)",
)

WRITE_OBJECTS = """
UNWIND $rows AS row
MERGE (o:Object {key: row.key})
SET o.kind = row.kind, o.name = row.name, o.namespace = row.namespace
"""
WRITE_EDGES = """
UNWIND $rows AS row
MATCH (a:Object {key: row.src}), (b:Object {key: row.dst})
MERGE (a)-[r:RELATES {relation: row.relation}]->(b)
SET r.lastSeen = row.seen
"""
WRITE_INVESTIGATION = """
UNWIND $rows AS row
MERGE (i:Investigation {uid: row.uid})
SET i.name = row.name, i.namespace = row.namespace, i.category = row.category, i.confidence = row.confidence,
    i.summary = row.summary, i.concludedAt = datetime(row.concludedAt)
WITH i, row
OPTIONAL MATCH (root:Object {key: row.root})
FOREACH (_ IN CASE WHEN root IS NULL THEN [] ELSE [1] END | MERGE (i)-[:CONCLUDED]->(root))
"""
WRITE_HYPOTHESES = """
UNWIND $rows AS row
MATCH (i:Investigation {uid: row.investigation})
MERGE (h:Hypothesis {key: row.key})
SET h.category = row.category, h.confidence = row.confidence, h.rank = row.rank, h.summary = row.summary
MERGE (i)-[:HYPOTHESIS]->(h)
WITH h, row
OPTIONAL MATCH (o:Object {key: row.about})
FOREACH (_ IN CASE WHEN o IS NULL THEN [] ELSE [1] END | MERGE (h)-[:ABOUT]->(o))
"""
WRITE_EVIDENCE = """
UNWIND $rows AS row
MATCH (i:Investigation {uid: row.investigation})
MERGE (e:Evidence {key: row.key})
SET e.id = row.id, e.kind = row.kind, e.agent = row.agent, e.summary = row.summary
MERGE (i)-[:FOUND]->(e)
WITH e, row
OPTIONAL MATCH (o:Object {key: row.on})
FOREACH (_ IN CASE WHEN o IS NULL THEN [] ELSE [1] END | MERGE (e)-[:OBSERVED_ON]->(o))
WITH e, row
UNWIND row.citedBy AS hypothesis
MATCH (h:Hypothesis {key: hypothesis})
MERGE (h)-[:CITES]->(e)
"""
WRITE_CHAIN = """
UNWIND $rows AS row
MATCH (i:Investigation {uid: row.investigation}), (o:Object {key: row.object})
MERGE (i)-[c:CHAIN {step: row.step}]->(o)
"""
WRITE_CASE = """
UNWIND $rows AS row
MERGE (c:Incident {uid: row.uid})
SET c.name = row.name, c.namespace = row.namespace, c.category = row.category, c.kind = row.kind,
    c.resource = row.resource, c.identity = row.identity, c.tokens = size(row.signature),
    c.concludedAt = datetime(row.concludedAt), c.actions = row.actions
WITH c, row
OPTIONAL MATCH (i:Investigation {uid: row.investigation})
FOREACH (_ IN CASE WHEN i IS NULL THEN [] ELSE [1] END | MERGE (i)-[:FOR]->(c))
WITH c, row
OPTIONAL MATCH (c)-[old:HAS_SIGNATURE]->(:Token)
DELETE old
WITH DISTINCT c, row
UNWIND row.signature AS token
MERGE (t:Token {value: token})
MERGE (c)-[:HAS_SIGNATURE]->(t)
"""

# The embedded memory's score, in Cypher, for a case given as parameters (it need not be
# written yet): same category (required), 0.35; same kind, 0.15; a shared identity, 0.2;
# 0.3 x the Jaccard overlap of the signatures.
SIMILAR = """
MATCH (old:Incident {namespace: $namespace, category: $category})
WHERE old.uid <> $uid AND old.concludedAt <= datetime($concludedAt)
OPTIONAL MATCH (old)-[:HAS_SIGNATURE]->(t:Token) WHERE t.value IN $signature
WITH old, collect(t.value) AS shared
WITH old, shared, size($signature) + old.tokens - size(shared) AS union,
     [x IN $identity WHERE x IN old.identity] AS identity, old.kind = $kind AND $kind <> '' AS sameKind
WITH old, shared, union, identity, sameKind,
     0.35 + CASE WHEN sameKind THEN 0.15 ELSE 0.0 END + CASE WHEN size(identity) > 0 THEN 0.2 ELSE 0.0 END
     + CASE WHEN union > 0 THEN 0.3 * size(shared) / toFloat(union) ELSE 0.0 END AS raw
WITH old, shared, union, identity, sameKind, floor(raw * 1000 + 0.5) / 1000.0 AS similarity
WHERE similarity >= $minimum
RETURN old.uid AS uid, old.name AS name, old.namespace AS namespace, old.category AS category, old.kind AS kind,
       old.resource AS resource, old.identity AS identity, old.concludedAt AS concludedAt, old.actions AS actions,
       shared, union, identity AS sharedIdentity, sameKind, similarity
ORDER BY similarity DESC, old.concludedAt DESC, old.uid
LIMIT $limit
"""


def similar_parameters(case: Case, limit: int, minimum: float) -> dict[str, Any]:
    return {"uid": case.uid, "namespace": case.namespace, "category": case.category, "kind": case.kind,
            "identity": list(case.identity), "signature": sorted(case.signature),
            "concludedAt": case.concluded_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": limit, "minimum": minimum}


def object_key(ref: str, namespace: str) -> str:
    """A stable key for an object named ``Kind/name``: namespaced unless cluster-scoped."""
    kind = ref.partition("/")[0]
    return ref if kind in ("Node", "Namespace", "PersistentVolume", "StorageClass") else f"{namespace}/{ref}"


def _object(ref: str, namespace: str) -> dict[str, Any]:
    kind, _, name = ref.partition("/")
    key = object_key(ref, namespace)
    return {"key": key, "kind": kind, "name": name, "namespace": "" if key == ref else namespace}


def _ref(resource: dict[str, Any] | None) -> str | None:
    if not resource or not resource.get("kind") or not resource.get("name"):
        return None
    return f"{resource['kind']}/{resource['name']}"


@dataclass
class Batches:
    """The rows of one Investigation (and its case), one list per statement."""

    statements: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def rows(self) -> int:
        return sum(len(rows) for _, rows in self.statements)


def investigation_batches(meta: dict[str, Any], status: dict[str, Any], edges: list[dict[str, Any]],
                          case: Case | None = None) -> Batches:
    """What one concluded Investigation writes: ``meta`` its metadata (uid, name, namespace),
    ``status`` as written, ``edges`` the topology agent's Edge findings (src, dst, relation)."""
    namespace, uid = meta.get("namespace", ""), meta.get("uid", "")
    root = status.get("rootCause") or {}
    objects: dict[str, dict[str, Any]] = {}

    def obj(ref: str | None) -> str | None:
        if not ref or "/" not in ref:
            return None
        row = _object(ref, namespace)
        objects.setdefault(row["key"], row)
        return row["key"]

    root_key = obj(_ref(root.get("resource")))
    edge_rows = []
    for edge in edges[:MAX_EDGES]:
        src, dst = obj(edge.get("src")), obj(edge.get("dst"))
        if src and dst:
            edge_rows.append({"src": src, "dst": dst, "relation": str(edge.get("relation", "")),
                              "seen": status.get("completedAt", "")})
    hypotheses, cited_by = [], {}
    for rank, h in enumerate(status.get("hypotheses") or [], 1):
        key = f"{uid}/{rank}"
        hypotheses.append({"investigation": uid, "key": key, "category": h.get("category"), "rank": rank,
                           "confidence": h.get("confidence"), "summary": h.get("summary", ""), "about": obj(_ref(h.get("resource")))})
        for evidence_id in h.get("evidenceIds") or []:
            cited_by.setdefault(evidence_id, []).append(key)
    evidence = [{"investigation": uid, "key": f"{uid}/{e['id']}", "id": e["id"], "kind": e.get("kind", ""),
                 "agent": e.get("agent", ""), "summary": e.get("summary", "")[:500], "on": obj(_ref(e.get("resource"))),
                 "citedBy": cited_by.get(e["id"], [])} for e in status.get("evidence") or [] if e.get("id")]
    top = (status.get("hypotheses") or [{}])[0]
    chain = [{"investigation": uid, "step": step, "object": key}
             for step, link in enumerate(top.get("chain") or [], 1) if (key := obj(link.get("ref")))]
    investigation = [{"uid": uid, "name": meta.get("name", ""), "namespace": namespace, "category": root.get("category"),
                      "confidence": root.get("confidence"), "summary": root.get("summary", ""),
                      "concludedAt": status.get("completedAt"), "root": root_key}]
    batches = Batches([(WRITE_OBJECTS, list(objects.values())), (WRITE_EDGES, edge_rows),
                       (WRITE_INVESTIGATION, investigation), (WRITE_HYPOTHESES, hypotheses),
                       (WRITE_EVIDENCE, evidence), (WRITE_CHAIN, chain)])
    if case is not None:
        batches.statements.append((WRITE_CASE, [case_row(case, uid)]))
    return batches


def case_row(case: Case, investigation_uid: str = "") -> dict[str, Any]:
    return {"uid": case.uid, "name": case.name, "namespace": case.namespace, "category": case.category,
            "kind": case.kind, "resource": case.resource, "identity": list(case.identity),
            "signature": sorted(case.signature), "concludedAt": case.concluded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actions": [f"{t}:{r}" for t, r in case.actions], "investigation": investigation_uid}
