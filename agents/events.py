"""The events agent: Kubernetes Events of the scope's pods, their owners, claims and
services, and of the nodes they run on, folded by (object, reason) and in time order.

Warning events are kept; Normal ones only where they mark a change people care about
(scaling, a container killed). Each folded event points at the object's top owner, so
events of ten pods of one Deployment make one finding, not ten.
"""

from __future__ import annotations

import time
from typing import Any

from aisre.agents.base import AgentContext, Findings, parse_time
from aisre.api.evidence import AgentResult
from aisre.api.meta import ResourceRef
from aisre.kube.reader import KubeAccessError
from aisre.kube.resources import RESOURCES
from aisre.kube.scope import ref

AGENT = "events"
# The workloads whose deletion leaves a Service routing nowhere, by their API plural.
DELETABLE = {r.kind: r.plural for r in RESOURCES.values() if r.kind in ("Deployment", "StatefulSet", "DaemonSet")}
MAX_DELETED_CHECKS = 5  # API reads an Investigation spends on workloads its events name
NORMAL_KEPT = {"Killing", "ScalingReplicaSet", "SuccessfulDelete", "Preempted", "NodeNotReady", "RemovingNode"}


def _event_time(event: dict[str, Any]) -> str:
    return (
        event.get("lastTimestamp")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event["metadata"].get("creationTimestamp", "")
    )


async def gather(ctx: AgentContext) -> AgentResult:
    started = time.perf_counter()
    out = Findings(AGENT, ctx.bounds.findings_per_agent)
    scope = ctx.scope
    events = await ctx.reader.list("events", scope.namespace)
    truncated: list[str] = []
    if len(events) > ctx.bounds.events:
        truncated.append(f"events: kept the newest {ctx.bounds.events} of {len(events)}")
        events = sorted(events, key=_event_time)[-ctx.bounds.events:]
    node_events = [
        e for e in await ctx.reader.list("events", "default")
        if (e.get("involvedObject") or {}).get("kind") == "Node"
        and (e.get("involvedObject") or {}).get("name") in scope.node_names
    ] if scope.node_names else []

    pods_by_name = {p["metadata"]["name"]: p for p in scope.pods}
    in_scope = {ref(w) for w in scope.workloads} | {f"Pod/{n}" for n in pods_by_name}
    folded: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in sorted(events + node_events, key=_event_time):
        involved = event.get("involvedObject") or {}
        kind, name = involved.get("kind", ""), involved.get("name", "")
        involved_ref = f"{kind}/{name}"
        if event.get("type") != "Warning" and event.get("reason") not in NORMAL_KEPT:
            continue
        if not scope.whole_namespace and involved_ref not in in_scope and kind != "Node":
            continue
        last = parse_time(_event_time(event))
        if last and last < ctx.window_start:
            continue
        owner_ref, owner_ns = involved_ref, involved.get("namespace")
        if kind == "Pod" and name in pods_by_name:
            owner_ref = ref(scope.top_owner(pods_by_name[name]))
        elif kind == "ReplicaSet":
            replicaset = next((w for w in scope.workloads if ref(w) == involved_ref), None)
            if replicaset is not None:
                owner_ref = ref(scope.top_owner(replicaset))
        key = (owner_ref, event.get("reason", ""), event.get("type", ""))
        entry = folded.setdefault(key, {"count": 0, "objects": [], "first": _event_time(event), "namespace": owner_ns,
                                        "messages": []})
        entry["count"] += int(event.get("count") or (event.get("series") or {}).get("count") or 1)
        entry["message"] = event.get("message", "")
        # Folding must not lose the telling message ("401 Unauthorized") under a later terse one
        # ("Error: ImagePullBackOff"): keep the distinct ones, longest first.
        if entry["message"] and entry["message"] not in entry["messages"]:
            entry["messages"].append(entry["message"])
        entry["last"] = _event_time(event)
        entry["source"] = (event.get("source") or {}).get("component") or event.get("reportingComponent", "")
        if involved_ref not in entry["objects"]:
            entry["objects"].append(involved_ref)

    await _deleted_workloads(ctx, folded, out)
    for (owner_ref, reason, etype), entry in folded.items():
        okind, _, oname = owner_ref.partition("/")
        messages = sorted(entry["messages"], key=len, reverse=True)[:5]
        out.add(
            "Event",
            f"{etype} {reason} on {owner_ref} (x{entry['count']}): {messages[0] if messages else ''}",
            key=(owner_ref, reason, etype),
            resource=ResourceRef(kind=okind, name=oname, namespace=entry["namespace"]),
            time=parse_time(entry["last"]),
            type=etype,
            reason=reason,
            message=(messages[0] if messages else "")[:600],
            messages=[m[:600] for m in messages],
            count=entry["count"],
            objects=entry["objects"][:10],
            first=entry["first"],
            last=entry["last"],
            source=entry["source"],
            owner=owner_ref,
        )
    result = out.result(truncated=truncated)
    result.latency_seconds = time.perf_counter() - started
    return result


async def _deleted_workloads(ctx: AgentContext, folded: dict[tuple[str, str, str], dict[str, Any]], out: Findings) -> None:
    """Workloads the namespace's recent events speak of that no longer exist: deleted (an
    uninstalled release, a cleanup) — whatever routed to them now routes nowhere."""
    if not ctx.scope.whole_namespace:
        return
    present = {ref(w) for w in ctx.scope.workloads}
    named: dict[str, str] = {}
    for (owner_ref, _, _), entry in folded.items():
        if owner_ref.partition("/")[0] in DELETABLE and owner_ref not in present:
            named[owner_ref] = max(named.get(owner_ref, ""), entry["last"])
    for owner_ref, last in sorted(named.items())[:MAX_DELETED_CHECKS]:
        kind, _, name = owner_ref.partition("/")
        try:
            gone = await ctx.reader.get(DELETABLE[kind], name, ctx.scope.namespace) is None
        except KubeAccessError:
            continue  # not readable is not deleted
        if gone:
            out.add("WorkloadDeleted", f"{owner_ref} no longer exists; its last event was at {last}",
                    key=(owner_ref, "deleted"), resource=ResourceRef(kind=kind, name=name, namespace=ctx.scope.namespace),
                    time=parse_time(last), workload=owner_ref, name=name, last=last)
