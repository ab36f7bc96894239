"""The workloads agent: pods and containers of the scope and their owner chain —
states, waiting and terminated reasons, exit codes, restarts, readiness, scheduling,
evictions — plus the health of the owning workloads and of the nodes the pods run on.

Pods of one owner that show the same state are folded into one finding (one finding
per root, not per pod); the pod names are kept in its data.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from aisre.agents.base import AgentContext, Findings, cronjob_of, parse_time, resource_of
from aisre.api.evidence import AgentResult
from aisre.kube.resources import node_problem
from aisre.kube.scope import ref

AGENT = "workloads"


def _fold(groups: dict[tuple[str, ...], dict[str, Any]], key: tuple[str, ...], pod: str, **data: Any) -> None:
    entry = groups.setdefault(key, {"pods": [], **data})
    entry["pods"].append(pod)
    for k, v in data.items():
        if isinstance(v, int) and k in ("restarts",):
            entry[k] = max(entry.get(k, 0), v)


def _container_states(pod: dict[str, Any]) -> list[tuple[bool, dict[str, Any]]]:
    status = pod.get("status") or {}
    return [(True, c) for c in status.get("initContainerStatuses") or []] + [
        (False, c) for c in status.get("containerStatuses") or []
    ]


def memory_limit(pod: dict[str, Any], container: str) -> int | None:
    """The memory limit the container runs under, in bytes, as admitted (a LimitRange's
    default included, which the workload's template does not show)."""
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == container:
            value = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            try:
                return int(parse_quantity(str(value))) if value is not None else None
            except ValueError:
                return None
    return None


def _limit_of(pod: dict[str, Any], container: str) -> dict[str, int]:
    limit = memory_limit(pod, container)
    return {} if limit is None else {"memory_limit": limit}  # no nulls in evidence data


def _within(time: str | None, ctx: AgentContext) -> bool:
    """Whether a container's time falls in the investigation's window (a restart then is now)."""
    when = parse_time(time)
    return bool(when and when >= ctx.window_start)


def observe_pods(ctx: AgentContext, out: Findings) -> None:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    owners: dict[tuple[str, ...], Any] = {}
    for pod in ctx.scope.pods:
        owner = ctx.scope.top_owner(pod)
        owner_ref = ref(owner)
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        phase = status.get("phase", "Unknown")
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        is_job_pod = any(o.get("kind") == "Job" for o in pod["metadata"].get("ownerReferences") or [])

        def note(kind: str, *key: str, **data: Any) -> None:
            full = (kind, owner_ref, *key)
            owners[full] = owner
            _fold(groups, full, name, phase=phase, node=pod["spec"].get("nodeName", ""), deleting=deleting, **data)

        if status.get("reason") == "Evicted" or (phase == "Failed" and status.get("reason")):
            note("PodEvicted" if status.get("reason") == "Evicted" else "PodFailed",
                 status.get("reason", ""), reason=status.get("reason", ""), message=status.get("message", ""))
            continue
        if phase == "Succeeded":
            continue
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                note("PodUnschedulable", condition.get("reason", ""), reason=condition.get("reason", ""),
                     message=condition.get("message", ""), since=condition.get("lastTransitionTime", ""))
        for init, cs in _container_states(pod):
            container = cs.get("name", "")
            restarts = int(cs.get("restartCount") or 0)
            state = cs.get("state") or {}
            last = (cs.get("lastState") or {}).get("terminated")
            if "waiting" in state:
                waiting = state["waiting"] or {}
                reason = waiting.get("reason", "")
                if reason not in ("ContainerCreating", "PodInitializing"):
                    note("ContainerWaiting", container, reason, container=container, init=init, reason=reason,
                         message=waiting.get("message", ""), restarts=restarts)
            terminated = state.get("terminated")
            if terminated and not (terminated.get("exitCode") == 0 and (init or is_job_pod)):
                note("ContainerTerminated", container, terminated.get("reason", ""), str(terminated.get("exitCode")),
                     "current", container=container, init=init, current=True, reason=terminated.get("reason", ""),
                     exit_code=terminated.get("exitCode"), message=terminated.get("message", ""), restarts=restarts,
                     finished_at=terminated.get("finishedAt", ""), **_limit_of(pod, container))
            if last and not (last.get("exitCode") == 0 and init):
                note("ContainerTerminated", container, last.get("reason", ""), str(last.get("exitCode")), "last",
                     container=container, init=init, current=False, reason=last.get("reason", ""),
                     exit_code=last.get("exitCode"), message=last.get("message", ""), restarts=restarts,
                     finished_at=last.get("finishedAt", ""), **_limit_of(pod, container),
                     running_now="running" in state,
                     ready_now=bool(cs.get("ready")), recent=_within(last.get("finishedAt"), ctx))
            if init and "running" in state and not deleting:
                note("InitContainerRunning", container, container=container, init=True, restarts=restarts,
                     running_since=(state["running"] or {}).get("startedAt", ""))
            if not init and "running" in state and not cs.get("ready") and not deleting:
                note("ContainerNotReady", container, container=container, restarts=restarts,
                     running_since=(state["running"] or {}).get("startedAt", ""))
        if phase == "Pending" and not status.get("containerStatuses") and not any(
            k[0] == "PodUnschedulable" and name in g["pods"] for k, g in groups.items()
        ):
            note("PodPending", reason=status.get("reason", ""))

    for key, data in groups.items():
        kind, owner_ref = key[0], key[1]
        owner = owners[key]
        pods = data["pods"]
        detail = " ".join(str(x) for x in key[2:] if x)
        summary = f"{kind} {detail} on {owner_ref} ({len(pods)} pod{'s' if len(pods) != 1 else ''})"
        if data.get("message"):
            summary += f": {data['message']}"
        data["count"] = len(pods)
        data["pods"] = pods[:10]
        data["owner"] = owner_ref
        out.add(kind, summary, key=key, resource=resource_of(owner), **data)


def _desired_ready(workload: dict[str, Any]) -> tuple[int, int, int]:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if workload["kind"] == "DaemonSet":
        return status.get("desiredNumberScheduled", 0), status.get("numberReady", 0), status.get("numberAvailable", 0)
    desired = spec.get("replicas", 1)
    return desired, status.get("readyReplicas", 0), status.get("availableReplicas", status.get("readyReplicas", 0))


def _later_success(ctx: AgentContext, job: dict[str, Any], failed_at: str | None) -> dict[str, Any] | None:
    """A Job of the same CronJob that completed after this one failed, if any."""
    cronjob, failed = cronjob_of(job), parse_time(failed_at)
    if cronjob is None or failed is None:
        return None
    for other in ctx.scope.workloads:
        if other is job or other["kind"] != "Job" or cronjob_of(other) != cronjob:
            continue
        for condition in (other.get("status") or {}).get("conditions") or []:
            done = parse_time(condition.get("lastTransitionTime"))
            if condition.get("type") == "Complete" and condition.get("status") == "True" and done and done > failed:
                return other
    return None


def _serving_since(ctx: AgentContext, workload: dict[str, Any]) -> str | None:
    """When the first of the workload's ready pods became Ready (it has served since then)."""
    times = []
    for pod in ctx.scope.pods:
        if ctx.scope.top_owner(pod) is not workload:
            continue
        for condition in (pod.get("status") or {}).get("conditions") or []:
            became = parse_time(condition.get("lastTransitionTime"))
            if condition.get("type") == "Ready" and condition.get("status") == "True" and became:
                times.append(became)
    return min(times).isoformat() if times else None


def observe_workloads(ctx: AgentContext, out: Findings) -> None:
    for workload in ctx.scope.workloads:
        kind = workload["kind"]
        wref = ref(workload)
        res = resource_of(workload)
        status = workload.get("status") or {}
        if kind == "ReplicaSet":
            for condition in status.get("conditions") or []:
                if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                    out.add("ReplicaFailure", f"{wref} cannot create pods: {condition.get('message', '')}",
                            key=(wref, condition.get("reason", "")), resource=res, reason=condition.get("reason", ""),
                            message=condition.get("message", ""), owner=wref)
            continue
        if kind == "Job":
            for condition in status.get("conditions") or []:
                if condition.get("type") == "Failed" and condition.get("status") == "True":
                    later = _later_success(ctx, workload, condition.get("lastTransitionTime"))
                    if later is not None:
                        # A CronJob's failed run followed by one that completed: history.
                        out.add("JobSuperseded", f"{wref} failed, but {ref(later)} of the same CronJob completed after it",
                                key=(wref, "superseded"), resource=res, owner=wref, by=ref(later))
                        continue
                    out.add("JobFailed", f"{wref} failed: {condition.get('message', '')}", key=(wref,), resource=res,
                            reason=condition.get("reason", ""), message=condition.get("message", ""))
            continue
        desired, ready, available = _desired_ready(workload)
        updated = status.get("updatedReplicas", desired)
        common = dict(desired=desired, ready=ready, available=available, updated=updated, owner=wref,
                      generation_observed=status.get("observedGeneration") == workload["metadata"].get("generation"))
        if kind != "DaemonSet" and desired == 0:
            out.add("WorkloadScaledToZero", f"{wref} is scaled to zero replicas", key=(wref,), resource=res, **common)
        elif available < desired:
            out.add("WorkloadUnavailable", f"{wref}: {available}/{desired} available, {ready} ready, {updated} updated",
                    key=(wref,), resource=res, **common)
        else:
            out.add("WorkloadHealthy", f"{wref}: {available}/{desired} available", key=(wref,), resource=res, **common,
                    serving_since=_serving_since(ctx, workload))
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                out.add("RolloutStalled", f"{wref}: {condition.get('message', '')}", key=(wref, "deadline"),
                        resource=res, message=condition.get("message", ""), owner=wref)
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                out.add("ReplicaFailure", f"{wref} cannot create pods: {condition.get('message', '')}",
                        key=(wref, condition.get("reason", "")), resource=res, reason=condition.get("reason", ""),
                        message=condition.get("message", ""), owner=wref)


async def observe_nodes(ctx: AgentContext, out: Findings) -> None:
    for name in sorted(ctx.scope.node_names):
        node = await ctx.reader.get("nodes", name)
        if node is None:
            continue
        node.setdefault("kind", "Node")
        res = resource_of(node)
        pods_here = [p["metadata"]["name"] for p in ctx.scope.pods if p["spec"].get("nodeName") == name]
        for condition in (node.get("status") or {}).get("conditions") or []:
            ctype, cstatus = condition.get("type"), condition.get("status")
            if ctype == "Ready" and cstatus != "True":
                out.add("NodeNotReady", f"Node/{name} is not Ready ({condition.get('reason', '')}): "
                        f"{condition.get('message', '')}", key=(name, "Ready"), resource=res,
                        time=parse_time(condition.get("lastTransitionTime")), status=cstatus,
                        reason=condition.get("reason", ""), message=condition.get("message", ""), pods=pods_here[:10])
            elif node_problem(condition):
                out.add("NodePressure", f"Node/{name} has {ctype}: {condition.get('message', '')}", key=(name, ctype),
                        resource=res, time=parse_time(condition.get("lastTransitionTime")), condition=ctype,
                        reason=condition.get("reason", ""), message=condition.get("message", ""), pods=pods_here[:10])
        if (node.get("spec") or {}).get("unschedulable"):
            out.add("NodeCordoned", f"Node/{name} is cordoned", key=(name, "cordon"), resource=res, pods=pods_here[:10])


async def gather(ctx: AgentContext) -> AgentResult:
    started = time.perf_counter()
    out = Findings(AGENT, ctx.bounds.findings_per_agent)
    observe_pods(ctx, out)
    observe_workloads(ctx, out)
    await observe_nodes(ctx, out)
    result = out.result()
    result.latency_seconds = time.perf_counter() - started
    return result
