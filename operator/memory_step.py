"""The memory of past incidents, from the operator's side: the index (rebuilt from the
cases Incidents hold, kept current by their watch events), and what a concluded
Investigation is shown of it.

The embedded default: nothing to configure; the cluster's Incidents are the store. Never
fails an Investigation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aisre.kube.reader import ClusterReader
from aisre.knowledge.memory import Case, Memory, action_record, case_of_incident, case_of_investigation, seen_before, status_entries
from aisre.operator.metrics import MEMORY_CASES, ROOT_CAUSES_CONFIRMED
from aisre.knowledge.graph import WRITE_CASE, Batches, case_row
from aisre.operator.graph_store import GraphStore
from aisre.operator.runbook_step import root_labels

# How long a concluding Investigation waits for Neo4j's answer before the embedded index,
# which holds the same cases and scores them alike, answers instead: the graph may be
# slow (a busy JVM, a remote server), an Investigation's conclusion is not kept waiting.
GRAPH_RECALL_BUDGET_S = 0.08


def observe_incident(memory: Memory, event_type: str | None, incident: dict[str, Any],
                     graph: GraphStore | None = None) -> None:
    """An Incident's watch event: its case joins (or leaves) the index. The initial listing
    at start-up sends every Incident, which rebuilds the index. A case that changed since
    the index last saw it (an action ran, someone gave feedback) is written to the graph too."""
    uid = (incident.get("metadata") or {}).get("uid")
    if not uid:
        return
    if event_type == "DELETED":
        memory.remove(uid)
        memory.note_verdict(uid, None)
    else:
        case = case_of_incident(incident)
        previous = memory.get(uid)
        if case is not None:
            memory.add(case)
            if graph is not None and previous is not None and previous != case:
                graph.submit(Batches([(WRITE_CASE, [case_row(case)])]))
        else:
            memory.remove(uid)  # corrected to NoFault, or its case is gone
        memory.note_verdict(uid, ((incident.get("spec") or {}).get("feedback") or {}).get("verdict"))
    MEMORY_CASES.set(len(memory))
    share = memory.confirmed_share()
    if share is not None:
        ROOT_CAUSES_CONFIRMED.set(share)


async def recall(memory: Memory, reader: ClusterReader, status: dict[str, Any], namespace: str,
                 owner: dict[str, str], graph: GraphStore | None = None,
                 proven: list[tuple[float, list[tuple[str, bool]]]] | None = None,
                 answered_by: list[str] | None = None) -> Case | None:
    """Adds the most similar past Incidents of this namespace and how often this recurred to
    an Investigation's status; returns its case (``owner``: the uid and name of its Incident,
    or of the Investigation itself when no Incident owns it)."""
    root = status.get("rootCause") or {}
    if not root or root.get("category") == "NoFault":
        return None
    labels = await root_labels(reader, root.get("resource") or {}, namespace)
    case = case_of_investigation(status, uid=owner["uid"], namespace=namespace, name=owner["name"],
                                 now=dt.datetime.now(dt.UTC).replace(microsecond=0), labels=labels)
    if case is None:
        return None
    # With Neo4j, retrieval is Cypher over the graph; the embedded index answers when it cannot
    # (down, or not within the budget: the query goes on and its answer is dropped).
    matches = None
    if graph is not None:
        try:
            matches = await asyncio.wait_for(asyncio.shield(graph.similar(case)), GRAPH_RECALL_BUDGET_S)
        except TimeoutError:
            matches = None
    if answered_by is not None:
        answered_by.append("Neo4j" if matches is not None else "embedded index")
    if matches is None:
        matches = memory.similar(case, namespace=namespace)
    if matches:
        status["similarIncidents"] = status_entries(matches)
        if proven is not None:  # what their actions did, for the recommendation's order (recommend.prefer_proven)
            proven.extend((m.similarity, action_record(m.case)) for m in matches)
    line = seen_before(case, memory.recurrences(case, namespace=namespace))
    if line:
        status["seenBefore"] = line
    return case


def incident_patch(memory: Memory, case: Case) -> dict[str, Any]:
    """What the Incident's status records: its case, its recurrences and the line for people."""
    earlier = memory.recurrences(case, namespace=case.namespace)
    patch: dict[str, Any] = {"case": case.record(), "recurrences": len(earlier)}
    line = seen_before(case, earlier)
    if line:
        patch["seenBefore"] = line
    return patch
