"""An Investigation from the handler's side: mark it Running, investigate within the
deadline, write conditions, state and result, and post Kubernetes Events for start and
result. Called by the Kopf handler; the work itself is ``investigation.investigate``.

The whole run is the root span of the Investigation's trace (a child of the trace its
Incident came with: the ``aisre.dev/traceparent`` annotation), and its trace id is written
in the status at once, so the trace can be found while the Investigation still runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from typing import Any

import httpx
import kopf
from pydantic import ValidationError

from aisre import audit
from aisre.agents.base import PrometheusSettings
from aisre.api.conditions import set_condition
from aisre.api.investigation import Investigation, InvestigationState
from aisre.api.meta import GROUP, VERSION, ConditionStatus
from aisre.kube.reader import ClusterReader
from aisre.operator.forecast_step import forecast_of
from aisre.operator.incidents import mirror_root_cause
from aisre.llm.cost import spent_today
from aisre.operator.investigation import Outcome, investigate, rfc3339, status_of
from aisre.operator.llm_step import LLM_USED, LLMService
from aisre.operator.recommend import bind_actions, prefer_proven
from aisre.operator.runbook_step import RunbookShelf, attach_runbooks
from aisre.operator.memory_step import incident_patch, recall
from aisre.knowledge.graph import investigation_batches
from aisre.knowledge.memory import Case, Memory
from aisre.operator.graph_store import GraphStore
from aisre.redact import redact_text
from aisre.tracing import TRACEPARENT_ANNOTATION, annotate, span, trace_id, traceparent
from aisre.operator.metrics import INVESTIGATION_SECONDS, INVESTIGATIONS, LLM_COST, LLM_TOKENS

COMPLETED = "Completed"
QUEUED = "Queued"  # condition: waiting for one of the operator's Investigation slots
FINISHED_STATES = {InvestigationState.COMPLETED.value, InvestigationState.FAILED.value}


def already_done(body: kopf.Body) -> bool:
    status = body.get("status") or {}
    return status.get("state") in FINISHED_STATES and status.get("observedGeneration") == body["metadata"].get("generation")


async def _mark_running(client: httpx.AsyncClient, namespace: str, name: str, started: dt.datetime) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/investigations/{name}/status"
    body = {"status": {"state": InvestigationState.RUNNING.value, "startedAt": rfc3339(started), **_trace()}}
    try:
        await client.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
    except httpx.HTTPError:
        pass  # progress display only; the result is written through Kopf's patch


def _trace() -> dict[str, str]:
    """The current trace's id and the root span's traceparent, for the status (nothing when off)."""
    found = trace_id()
    return {"traceId": found, "traceParent": traceparent() or ""} if found else {}


async def _spent_today(client: httpx.AsyncClient, namespace: str, name: str, llm: LLMService | None) -> float:
    """USD the namespace's other Investigations recorded today; the whole budget when unknown."""
    if llm is None or llm.client is None:
        return 0.0
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/investigations"
    try:
        response = await client.get(path)
        response.raise_for_status()
        items = response.json().get("items") or []
    except (httpx.HTTPError, ValueError):
        return llm.config.daily_budget_usd  # cannot tell what was spent: spend nothing
    return spent_today(items, dt.datetime.now(dt.UTC).date(), exclude=name)


def _queued_since(conditions: list[dict[str, Any]]) -> dt.datetime:
    when = next(c["lastTransitionTime"] for c in conditions if c["type"] == QUEUED)
    return dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))


def owning_incident(body: kopf.Body) -> dict[str, str] | None:
    """The Incident that controls this Investigation (its owner reference), if any."""
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Incident" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return {"name": ref["name"], "uid": ref["uid"]}
    return None


async def _mark_queued(client: httpx.AsyncClient, body: kopf.Body, waiting: int) -> list[dict[str, Any]]:
    """Pending, with a Queued condition, while every Investigation slot is taken."""
    conditions = set_condition((body.get("status") or {}).get("conditions"), type_=QUEUED, status=ConditionStatus.TRUE,
                               reason="WaitingForSlot", message=f"{waiting} Investigations are running; this one waits its turn",
                               observed_generation=body["metadata"].get("generation"),
                               now=dt.datetime.now(dt.UTC).replace(microsecond=0))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{body['metadata']['namespace']}/investigations/{body['metadata']['name']}/status"
    try:
        await client.patch(path, json={"status": {"state": InvestigationState.PENDING.value, "conditions": conditions}},
                           headers={"Content-Type": "application/merge-patch+json"})
    except httpx.HTTPError:
        pass  # display only
    return conditions


async def run(body: kopf.Body, patch: kopf.Patch, client: httpx.AsyncClient, llm: LLMService | None = None,
              prometheus: PrometheusSettings | None = None, key: bytes | None = None,
              operator_namespace: str | None = None, slots: Slots | None = None, memory: Memory | None = None,
              graph: GraphStore | None = None, shelf: RunbookShelf | None = None) -> None:
    """One Investigation, once one of ``slots`` is free (FIFO: the first queued runs first)."""
    try:
        Investigation.model_validate({"spec": body.get("spec") or {}})
    except ValidationError:
        return  # the Accepted condition already says why
    if slots is None:
        await _traced(body, patch, client, llm, prometheus, key, operator_namespace, None, memory, graph, shelf)
        return
    queued = await _mark_queued(client, body, slots.size) if slots.full else None
    async with slots.semaphore:
        await _traced(body, patch, client, llm, prometheus, key, operator_namespace, queued, memory, graph, shelf)


async def _traced(body: kopf.Body, *args: Any) -> None:
    """``_run`` as the root span of the Investigation's trace."""
    meta = body["metadata"]
    target = (body.get("spec") or {}).get("target") or {}
    incident = owning_incident(body)
    with span("investigation", parent=(meta.get("annotations") or {}).get(TRACEPARENT_ANNOTATION), attributes={
            "aisre.investigation": f"{meta['namespace']}/{meta['name']}", "aisre.investigation.uid": meta.get("uid"),
            "aisre.target": f"{target.get('kind') or 'selector'}/{target.get('name') or ''}",
            "aisre.incident": incident["name"] if incident else None}):
        await _run(body, *args)


def _audit(body: kopf.Body, outcome: Outcome, status: dict[str, Any], incident: dict[str, str] | None) -> None:
    """The Investigation's decisions in the audit trail: the plan, then the root cause chosen."""
    meta = body["metadata"]
    obj = {"kind": "Investigation", "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid")}
    actor = f"aisre-operator/{os.environ.get('HOSTNAME', 'aisre')}"
    for entry in outcome.timeline:
        if entry["event"] == "Planned":
            audit.emit("PlanChosen", actor=actor, obj=obj, reason=f"agents: {entry['message']}",
                       detail={"incident": incident["name"] if incident else None})
    root = status.get("rootCause") or {}
    audit.emit("RootCauseChosen" if outcome.ok else f"Investigation{outcome.reason}", actor=actor, obj=obj,
               reason=root.get("summary") or outcome.message,
               detail={"category": root.get("category"), "resource": root.get("resource"), "confidence": root.get("confidence"),
                       "alternatives": [{"category": h.get("category"), "confidence": h.get("confidence")}
                                        for h in (status.get("hypotheses") or [])[1:3]],
                       "runbooks": [r["name"] for r in status.get("runbooks") or []],
                       "incident": incident["name"] if incident else None})


class Slots:
    """At most ``size`` Investigations at once; the rest wait in arrival order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.semaphore = asyncio.Semaphore(size)

    @property
    def full(self) -> bool:
        return self.semaphore.locked()


async def _run(body: kopf.Body, patch: kopf.Patch, client: httpx.AsyncClient, llm: LLMService | None,
               prometheus: PrometheusSettings | None, key: bytes | None, operator_namespace: str | None,
               queued: list[dict[str, Any]] | None, memory: Memory | None = None,
               graph: GraphStore | None = None, shelf: RunbookShelf | None = None) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    spec = Investigation.model_validate({"spec": body.get("spec") or {}}).spec
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    await _mark_running(client, namespace, name, started)
    # kopf.event, not kopf.info: these are posted on purpose, whatever the log-posting level.
    kopf.event(body, type="Normal", reason="InvestigationStarted", message=f"investigating {spec.target.kind or 'selector'} "
              f"{spec.target.name or ''} with a {spec.deadline_seconds} s deadline".replace("  ", " "))
    reader = ClusterReader(client)
    spent = await _spent_today(client, namespace, name, llm)
    incident = owning_incident(body)
    forecast = None
    if incident is not None and key is not None:
        try:
            forecast = await forecast_of(client, namespace, incident["name"], key)
        except httpx.HTTPError:
            pass  # investigated like any Incident: the agents' evidence alone
    try:
        outcome = await asyncio.wait_for(investigate(spec, namespace, reader, prometheus, llm=llm, spent_today=spent,
                                                     node_wide=namespace == operator_namespace, forecast=forecast),
                                         timeout=spec.deadline_seconds)
    except TimeoutError:
        outcome = Outcome(False, "DeadlineExceeded", f"no conclusion within {spec.deadline_seconds} s")
    status = status_of(outcome, namespace, started)
    knowing = time.perf_counter()

    took: dict[str, float] = {}  # each part's own time, for the Recalled entry
    source: list[str] = []  # who answered the memory's question: Neo4j or the embedded index

    async def runbooks() -> None:
        with span("runbooks"):
            await attach_runbooks(client, reader, status, namespace, operator_namespace, shelf)
        took["runbooks"] = time.perf_counter() - knowing

    async def remember() -> Case | None:
        if memory is None:
            return None
        try:
            with span("memory recall"):
                return await recall(memory, reader, status, namespace,
                                    incident or {"uid": body["metadata"]["uid"], "name": name}, graph, proven, source)
        finally:
            took["memory" + (f" ({source[0]})" if source else "")] = time.perf_counter() - knowing

    # Runbooks (from the API server) and past incidents (from Neo4j, or the embedded index) at
    # once: they write different parts of the status, and the Investigation waits for the slower.
    proven: list[tuple[float, list[tuple[str, bool]]]] = []  # what similar past Incidents' actions did
    _, case = await asyncio.gather(runbooks(), remember())
    if proven and status.get("recommendedActions"):
        status["recommendedActions"] = prefer_proven(status["recommendedActions"], proven)
    if graph is not None and status.get("rootCause"):
        edges = [f.data for f in outcome.findings if f.kind == "Edge"]
        graph.submit(investigation_batches(dict(body["metadata"]), status, edges, case if incident is not None else None))
    if status.get("rootCause"):
        # What knowledge added, and what it cost (before the final Completed entry).
        status["timeline"].insert(len(status["timeline"]) - 1, {
            "time": rfc3339(dt.datetime.now(dt.UTC)), "event": "Recalled",
            "message": f"{len(status.get('runbooks') or [])} runbooks, {len(status.get('similarIncidents') or [])} similar "
                       f"past Incidents ({', '.join(f'{part} {1000 * t:.1f} ms' for part, t in took.items())}) "
                       f"in {1000 * (time.perf_counter() - knowing):.1f} ms"})
    if incident is not None and key is not None and status.get("recommendedActions"):
        status["recommendedActions"] = bind_actions(status["recommendedActions"], namespace, incident["uid"],
                                                    body["metadata"]["uid"], key)
    # LLMUsed before Completed, so that the conclusion stays the last condition.
    conditions = patch.status.get("conditions") or queued or (body.get("status") or {}).get("conditions")
    if queued is not None:
        conditions = set_condition(conditions, type_=QUEUED, status=ConditionStatus.FALSE, reason="Started",
                                   message=f"started after waiting {(started - _queued_since(queued)).total_seconds():.0f} s",
                                   observed_generation=generation, now=started.replace(microsecond=0))
    conditions = set_condition(
        conditions,
        type_=LLM_USED, status=ConditionStatus.TRUE if outcome.llm.used else ConditionStatus.FALSE,
        reason=outcome.llm.reason, message=outcome.llm.message[:1000], observed_generation=generation,
        now=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    conditions = set_condition(
        conditions,
        type_=COMPLETED,
        status=ConditionStatus.TRUE if outcome.ok else ConditionStatus.FALSE,
        reason=outcome.reason,
        message=redact_text(outcome.message)[:1000],
        observed_generation=generation,
        now=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    if outcome.llm.spend is not None and outcome.llm.model:
        LLM_TOKENS.labels(outcome.llm.model, "input").inc(outcome.llm.spend.input_tokens)
        LLM_TOKENS.labels(outcome.llm.model, "output").inc(outcome.llm.spend.output_tokens)
        LLM_COST.labels(outcome.llm.model).inc(outcome.llm.spend.usd)
    status.update(
        conditions=conditions,
        observedGeneration=generation,
        state=(InvestigationState.COMPLETED if outcome.ok else InvestigationState.FAILED).value,
        durationSeconds=round(time.perf_counter() - clock, 3),
        **_trace(),
    )
    annotate(**{"aisre.state": status["state"], "aisre.reason": outcome.reason,
                "aisre.root_cause.category": (status.get("rootCause") or {}).get("category"),
                "aisre.root_cause.confidence": (status.get("rootCause") or {}).get("confidence")})
    patch.status.update(status)
    try:
        # The result at once (Kopf writes the same patch again when the handler returns),
        # while this Investigation still holds its slot: the state shown is the work done,
        # and whoever the Incident's new root cause wakes (remediation) reads the
        # recommendations from this Investigation at once.
        await client.patch(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/investigations/{name}/status",
                           json={"status": status}, headers={"Content-Type": "application/merge-patch+json"})
        if incident is not None:
            recorded = incident_patch(memory, case) if memory is not None and case is not None else None
            await mirror_root_cause(client, namespace, incident["name"], body, status, recorded)
            if memory is not None and case is not None:
                memory.add(case)  # at once: its watch event brings the same case a moment later
    except httpx.HTTPError:
        pass  # the Incident shows the link on the next resume; the Investigation holds the result
    elapsed = time.perf_counter() - clock
    _audit(body, outcome, status, incident)
    INVESTIGATIONS.labels(outcome.reason).inc()
    INVESTIGATION_SECONDS.observe(elapsed)
    root: dict[str, Any] = status.get("rootCause") or {}
    if outcome.ok:
        resource = root.get("resource") or {}
        kopf.event(body, type="Normal", reason="InvestigationCompleted",
                  message=f"{root.get('category')} {resource.get('kind', '')}/{resource.get('name', '')} "
                  f"confidence {root.get('confidence')} in {elapsed:.2f} s")
    else:
        kopf.event(body, type="Warning", reason=outcome.reason, message=redact_text(outcome.message)[:500])
