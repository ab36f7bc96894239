"""The knowledge graph on a real Neo4j (hack/neo4j.sh: Neo4j's test harness on loopback):
idempotent writes, the documented queries, Cypher similarity that agrees with the embedded
memory, an outage that degrades to the embedded memory without failing anything, and the
operator writing its Investigations and cases as they conclude."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
import urllib.request
from typing import Any

import neo4j
import pytest

from aisre.api import GROUP, VERSION
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.knowledge.graph import WRITE_CASE, Batches, case_row, investigation_batches
from aisre.knowledge.memory import Case, Memory
from aisre.operator.graph_store import GraphSettings, GraphStore
from conftest_helpers import deployment, wait_pods

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


async def drained(store: GraphStore, timeout: float = 30.0) -> None:
    assert await store.flush(timeout), store.state()
    assert store.up, store.state()


async def query(settings: GraphSettings, cypher: str, **params: Any) -> list[dict[str, Any]]:
    auth = (settings.user or "neo4j", settings.password) if settings.password else None
    async with neo4j.AsyncGraphDatabase.driver(settings.uri, auth=auth) as driver:
        records, _, _ = await driver.execute_query(cypher, params)
    return [r.data() for r in records]


def status(namespace: str, config: str = "checkout-config") -> dict[str, Any]:
    return {
        "completedAt": "2026-12-01T12:00:00Z",
        "rootCause": {"category": "BadConfigChange", "resource": {"kind": "ConfigMap", "name": config}, "confidence": 0.9},
        "hypotheses": [{"category": "BadConfigChange", "resource": {"kind": "ConfigMap", "name": config}, "confidence": 0.9,
                        "evidenceIds": ["c-1"], "chain": [{"ref": "Deployment/checkout"}, {"ref": f"ConfigMap/{config}"}]}],
        "evidence": [{"id": "c-1", "agent": "changes", "kind": "ConfigChanged", "summary": "changed",
                      "resource": {"kind": "ConfigMap", "name": config}}],
    }


async def shape(settings: GraphSettings, namespace: str, investigation: str) -> dict[str, int]:
    """How many of each node and relationship one Investigation and its case account for."""
    [row] = await query(settings, """
        MATCH (o:Object {namespace: $ns}) WITH count(o) AS objects
        OPTIONAL MATCH (:Object {namespace: $ns})-[rel:RELATES]->() WITH objects, count(rel) AS relates
        OPTIONAL MATCH (:Investigation {uid: $inv})-[r]->() WITH objects, relates, count(r) AS investigationLinks
        OPTIONAL MATCH (h:Hypothesis) WHERE h.key STARTS WITH $inv + '/' WITH objects, relates, investigationLinks,
             count(h) AS hypotheses
        OPTIONAL MATCH (h:Hypothesis)-[c:CITES]->() WHERE h.key STARTS WITH $inv + '/'
        WITH objects, relates, investigationLinks, hypotheses, count(c) AS cites
        OPTIONAL MATCH (e:Evidence) WHERE e.key STARTS WITH $inv + '/'
        WITH objects, relates, investigationLinks, hypotheses, cites, count(e) AS evidence
        OPTIONAL MATCH (:Incident {namespace: $ns})-[s:HAS_SIGNATURE]->()
        RETURN objects, relates, investigationLinks, hypotheses, cites, evidence, count(s) AS signature""",
                         ns=namespace, inv=investigation)
    return row


async def test_writes_are_idempotent_and_the_documented_queries_answer(neo4j_settings: GraphSettings) -> None:
    namespace = f"kg-{random.randrange(10**8)}"
    store = GraphStore(neo4j_settings)
    store.start()
    try:
        edges = [{"src": "Deployment/checkout", "dst": "ConfigMap/checkout-config", "relation": "mounts"}]
        meta = {"uid": f"{namespace}-inv", "name": "inv", "namespace": namespace}
        case = Case(f"{namespace}-inc", namespace, "checkout-slow", T0, "BadConfigChange", "ConfigMap",
                    "ConfigMap/checkout-config", ("name:checkout-config",), frozenset({"evidence:ConfigChanged"}),
                    (("rollback", "Succeeded"),))
        batches = investigation_batches(meta, status(namespace), edges, case)
        assert store.submit(batches)
        await drained(store)
        once = await shape(neo4j_settings, namespace, meta["uid"])
        for _ in range(2):  # written again (a retry after an outage, a resumed handler): nothing changes
            assert store.submit(investigation_batches(meta, status(namespace), edges, case))
        await drained(store)
        assert await shape(neo4j_settings, namespace, meta["uid"]) == once
    finally:
        await store.close()
    assert once == {"objects": 2, "relates": 1, "investigationLinks": 6, "hypotheses": 1, "cites": 1, "evidence": 1,
                    "signature": 1}, once
    chain = await query(neo4j_settings, """
        MATCH (inv:Investigation)-[:CHAIN]->(:Object {key: $key}) MATCH (inv)-[:FOR]->(inc:Incident)
        RETURN inc.name AS name, inc.category AS category""", key=f"{namespace}/ConfigMap/checkout-config")
    assert chain == [{"name": "checkout-slow", "category": "BadConfigChange"}]
    fixed = await query(neo4j_settings, """
        MATCH (inc:Incident {namespace: $ns}) WHERE 'name:checkout-config' IN inc.identity RETURN inc.actions AS actions""",
                        ns=namespace)
    assert fixed == [{"actions": ["rollback:Succeeded"]}]


async def test_cypher_similarity_agrees_with_the_embedded_memory(neo4j_settings: GraphSettings) -> None:
    """The same cases in both; every probe gets the same past incidents, in the same order,
    with the same scores and the same explanation, from Cypher as from the index."""
    namespace = f"kg-{random.randrange(10**8)}"
    rng = random.Random(11)
    tokens = ["reason:oomkilled", "evidence:ContainerTerminated", "changed:resources", "changed:image", "log:timeout",
              "evidence:Event", "chain:Deployment", "chain:Service>Deployment", "template:heap <n> over limit"]
    categories = ["MemoryLimitTooLow", "MemoryLeak", "BadImage"]
    workloads = ["checkout", "search", "cart"]
    cases = [Case(f"{namespace}-{i}", namespace, f"inc-{i}", T0 + dt.timedelta(hours=i), rng.choice(categories),
                  rng.choice(["Deployment", "StatefulSet"]), "Deployment/x", (f"name:{rng.choice(workloads)}",),
                  frozenset(rng.sample(tokens, rng.randint(1, 5)))) for i in range(40)]
    memory = Memory()
    store = GraphStore(neo4j_settings)
    store.start()
    try:
        for case in cases:
            memory.add(case)
        store.submit(Batches([(WRITE_CASE, [case_row(c) for c in cases])]))
        await drained(store)
        compared = 0
        for probe in cases[-15:]:
            from_graph = await store.similar(probe, limit=5)
            from_memory = memory.similar(probe, limit=5, namespace=namespace)
            assert from_graph is not None
            assert [(m.case.uid, m.similarity, m.matched_on) for m in from_graph] == \
                [(m.case.uid, m.similarity, m.matched_on) for m in from_memory], probe
            compared += len(from_memory)
        assert compared >= 10  # the probes did find past cases
    finally:
        await store.close()


async def test_what_is_queued_when_the_operator_stops_is_written(neo4j_settings: GraphSettings) -> None:
    namespace = f"kg-{random.randrange(10**8)}"
    store = GraphStore(neo4j_settings)
    store.start()
    assert await store.similar(Case("probe", namespace, "p", T0, "BadImage")) == []  # in contact
    cases = [Case(f"{namespace}-{i}", namespace, f"inc-{i}", T0, "BadImage") for i in range(20)]
    for case in cases:
        store.submit(Batches([(WRITE_CASE, [case_row(case)])]))
    await store.close()  # no flush asked for: stopping drains the queue (within its grace)
    written = await query(neo4j_settings, "MATCH (i:Incident {namespace: $ns}) RETURN count(i) AS n", ns=namespace)
    assert written == [{"n": 20}]


async def test_an_outage_degrades_to_the_embedded_memory() -> None:
    store = GraphStore(GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}"))  # nothing listens there
    store.start()
    try:
        case = Case("u", "ns", "i", T0, "BadImage")
        started = time.monotonic()
        assert await store.similar(case) is None  # the caller uses the embedded index
        assert time.monotonic() - started < 5
        assert store.submit(Batches([(WRITE_CASE, [case_row(case)])]))  # queued, never waited for
        await asyncio.sleep(0.5)
        assert store.state()["state"] == "down" and store.state()["error"]
    finally:
        await store.close()


def _readyz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
        return json.loads(answer.read())


@pytest.mark.usefixtures("crds")
def test_the_operator_writes_what_it_concludes(kubeconfig, kubectl, own_namespace: str,
                                               neo4j_settings: GraphSettings) -> None:
    ns = own_namespace
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("ledger", cpu="64")))
    wait_pods(kubectl, ns, "app=ledger", lambda pods: any(
        any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
    port = free_port()
    with OperatorThread(kubeconfig, port, namespaces=(ns,), detection=False, operator_namespace=ns, neo4j=neo4j_settings):
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": "ledger-pending"},
            "spec": {"title": "ledger pending", "resource": {"kind": "Deployment", "name": "ledger"}}}))
        started, found = time.monotonic(), []
        while not found and time.monotonic() - started < 60:
            found = asyncio.run(query(neo4j_settings, """
                MATCH (inv:Investigation {namespace: $ns})-[:FOR]->(inc:Incident {name: 'ledger-pending'})
                MATCH (inv)-[:CONCLUDED]->(o:Object)
                RETURN inc.category AS category, o.key AS root""", ns=ns))
            time.sleep(0.3)
        assert found == [{"category": "InsufficientResources", "root": f"{ns}/Deployment/ledger"}]
        assert _readyz(port)["neo4j"]["state"] == "up"
