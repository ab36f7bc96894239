"""Raw cluster objects → Signal envelopes. Pure: no I/O, the caller passes the owner chain.

Each function returns every signal the object shows *now*; an object that shows none is
healthy, and the detector clears what it had from it. Grace times travel with the signal
(``since`` + ``hold``) so the detector, not the watch, decides when trouble has lasted.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aisre.agents.base import cronjob_of, parse_time
from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource, signal_key
from aisre.api.taxonomy import Severity
from aisre.kube.resources import node_problem
from aisre.ranking.evidence import LIVENESS_KILLS
from aisre.operator.detection.thresholds import Thresholds

Obj = dict[str, Any]

# Waiting reasons that already mean "retried and still failing" when the kubelet reports them.
FAILING_WAITING = {
    "CrashLoopBackOff": Severity.HIGH,
    "ImagePullBackOff": Severity.HIGH,
    "CreateContainerConfigError": Severity.HIGH,
    "CreateContainerError": Severity.HIGH,
    "RunContainerError": Severity.HIGH,
    "InvalidImageName": Severity.HIGH,
    "ErrImageNeverPull": Severity.HIGH,
}
# Warning events that say something pod and workload status does not.
EVENT_REASONS = {
    "FailedCreate": Severity.MEDIUM,  # a controller cannot create pods (quota, admission, service account)
    "FailedMount": Severity.MEDIUM,
    "FailedAttachVolume": Severity.MEDIUM,
    "ProvisioningFailed": Severity.MEDIUM,
    "Evicted": Severity.HIGH,
    "SystemOOM": Severity.HIGH,
}
# Liveness (or startup) probes failing as often as the probe's failureThreshold (default 3)
# times LIVENESS_KILLS: the kubelet has killed the container that often — a fault below the
# restart threshold. One kill can be a cold start (a cache warming, a JIT) that a generous
# probe would have let through; the Investigation's ranking asks for the same number of
# kills before the workload counts as hurting, so detection and diagnosis agree.
LIVENESS_FAILED = re.compile(r"(Liveness|Startup) probe failed", re.I)
LIVENESS_FAILURES = 3
CONTAINER_PATH = re.compile(r"spec\.(?:init)?[cC]ontainers\{([^}]+)\}")


def probe_of(event: Obj) -> tuple[str, str] | None:
    """(container, "liveness" | "startup") of a probe-failure event, None for other events."""
    failed = LIVENESS_FAILED.match(event.get("message") or "") if event.get("reason") == "Unhealthy" else None
    path = CONTAINER_PATH.search((event.get("involvedObject") or {}).get("fieldPath") or "")
    return (path.group(1), failed.group(1).lower()) if failed and path else None


def pod_started(pod: Obj) -> bool:
    """Running, with every container running (the kubelet starts none before its volumes mount)."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all("running" in (c.get("state") or {}) for c in statuses)


QUOTA_NAME = re.compile(r"exceeded quota: ([a-z0-9]([-a-z0-9.]*[a-z0-9])?)")


def ref_of(obj: Obj, kind: str) -> ResourceRef:
    meta = obj.get("metadata") or {}
    return ResourceRef(kind=kind, name=meta.get("name", "?"), namespace=meta.get("namespace"))


def make_signal(source: SignalSource, reason: str, obj: Obj, kind: str, now: dt.datetime, *key: str,
            severity: Severity = Severity.MEDIUM, owners: tuple[ResourceRef, ...] = (), node: str | None = None,
            since: dt.datetime | None = None, hold: float = 0.0, message: str = "", **detail: Any) -> Signal:
    meta = obj.get("metadata") or {}
    uid = meta.get("uid") or f"{kind}/{meta.get('namespace')}/{meta.get('name')}"
    return Signal(source=source, reason=reason, time=now, object=ref_of(obj, kind), uid=uid, owners=owners, node=node,
                  severity=severity, since=since, hold=hold, message=message[:512],
                  key=signal_key(source.value, reason, uid, *key), detail=detail)


def pod_signals(pod: Obj, owners: tuple[ResourceRef, ...], now: dt.datetime, th: Thresholds) -> list[Signal]:
    """Container failures, restarts, OOM kills, unschedulable, stuck init, not ready, eviction."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    node = spec.get("nodeName")
    out: list[Signal] = []

    def add(reason: str, *key: str, **kw: Any) -> None:
        out.append(make_signal(SignalSource.POD, reason, pod, "Pod", now, *key, owners=owners, node=node, **kw))

    if status.get("reason") == "Evicted":
        add("Evicted", severity=Severity.HIGH, message=status.get("message", ""))
        return out
    if status.get("phase") in ("Succeeded",) or (status.get("phase") == "Failed" and owners and owners[0].kind == "Job"):
        return out  # finished pods; a failed Job says so itself
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        add("Unschedulable", since=parse_time(scheduled.get("lastTransitionTime")) or now, hold=th.pending_grace,
            message=scheduled.get("message", ""))
        return out

    init_statuses = status.get("initContainerStatuses") or []
    statuses = status.get("containerStatuses") or []
    for cs, init in [(c, True) for c in init_statuses] + [(c, False) for c in statuses]:
        name = cs.get("name", "")
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = int(cs.get("restartCount") or 0)
        waiting = (state.get("waiting") or {}).get("reason")
        terminated = state.get("terminated") or {}
        detail = {"container": name, "init": init, "restarts": restarts}
        if waiting in FAILING_WAITING:
            add(waiting, name, str(restarts), severity=FAILING_WAITING[waiting],
                message=(state.get("waiting") or {}).get("message", ""), **detail)
        elif waiting == "ErrImagePull":
            add("ErrImagePull", name, since=parse_time(status.get("startTime")) or now, hold=th.image_pull_grace,
                severity=Severity.HIGH, message=(state.get("waiting") or {}).get("message", ""), **detail)
        for term in (terminated, last):
            if term.get("reason") == "OOMKilled":
                finished = parse_time(term.get("finishedAt")) or now
                if (now - finished).total_seconds() <= th.restart_window:
                    add("OOMKilled", name, str(restarts), severity=Severity.HIGH, **detail)
                break
        if init and terminated and terminated.get("exitCode", 0) != 0:
            add("InitContainerFailed", name, str(restarts), severity=Severity.HIGH, **detail)
        if restarts >= th.restarts and waiting not in FAILING_WAITING:
            finished = parse_time(last.get("finishedAt"))
            if finished is not None and (now - finished).total_seconds() <= th.restart_window:
                add("RepeatedRestarts", name, str(restarts), severity=Severity.MEDIUM, **detail)
        if init and "running" in state:
            started = parse_time(state["running"].get("startedAt")) or now
            add("InitContainerStuck", name, since=started, hold=th.init_grace, **detail)

    ready = conditions.get("Ready") or {}
    running = pod_started(pod)
    if running and ready.get("status") == "False" and not out:
        since = parse_time(ready.get("lastTransitionTime")) or now
        not_ready = [c.get("name", "") for c in statuses if not c.get("ready")]
        add("NotReady", since=since, hold=th.not_ready_grace, containers=not_ready)
    return out


def event_signal(event: Obj, owners: tuple[ResourceRef, ...], now: dt.datetime, th: Thresholds,
                 kill_after: int | None = None) -> Signal | None:
    """A Warning event with a reason status does not show; None for the rest. ``kill_after``:
    the failureThreshold of the probe a probe-failure event is about, where the pod is known."""
    if event.get("type") != "Warning":
        return None
    reason = event.get("reason") or ""
    liveness = reason == "Unhealthy" and LIVENESS_FAILED.match(event.get("message") or "") \
        and int(event.get("count") or (event.get("series") or {}).get("count") or 1) \
        >= LIVENESS_KILLS * (kill_after or LIVENESS_FAILURES)
    if reason not in EVENT_REASONS and not liveness:
        return None
    if liveness:
        reason = "LivenessProbeFailing"
    involved = event.get("involvedObject") or {}
    last = parse_time(event.get("lastTimestamp")) or parse_time(event.get("eventTime")) or now
    if (now - last).total_seconds() > th.event_window:
        return None
    message = event.get("message") or ""
    detail: dict[str, Any] = {"count": int(event.get("count") or 1)}
    quota = QUOTA_NAME.search(message) if reason == "FailedCreate" else None
    if quota:
        # The quota's name locates the object; the fingerprint is built from that name, not the text.
        detail["quota"] = quota.group(1)
        reason = "QuotaExceeded"
    target = {"metadata": {"name": involved.get("name", "?"), "namespace": involved.get("namespace") or
                           (event.get("metadata") or {}).get("namespace"), "uid": involved.get("uid")}}
    hold = 0.0 if reason in ("QuotaExceeded", "Evicted", "SystemOOM") else th.not_ready_grace
    first = parse_time(event.get("firstTimestamp")) or last
    return make_signal(SignalSource.EVENT, reason, target, involved.get("kind") or "Object", now, detail.get("quota", ""),
                   severity=EVENT_REASONS.get(event.get("reason") or "", Severity.MEDIUM), owners=owners,
                   node=(event.get("source") or {}).get("host"), since=first, hold=hold, message=message, **detail)


def node_signals(node: Obj, now: dt.datetime, th: Thresholds) -> list[Signal]:
    out: list[Signal] = []
    name = (node.get("metadata") or {}).get("name")
    for cond in (node.get("status") or {}).get("conditions") or []:
        ctype, status = cond.get("type"), cond.get("status")
        since = parse_time(cond.get("lastTransitionTime")) or now
        if ctype == "Ready" and status in ("False", "Unknown"):
            reason = "NodeNotReady" if status == "False" else "NodeUnreachable"
            out.append(make_signal(SignalSource.NODE, reason, node, "Node", now, severity=Severity.CRITICAL, node=name,
                               since=since, hold=th.node_grace, message=cond.get("message", ""), condition=ctype))
        elif node_problem(cond):
            out.append(make_signal(SignalSource.NODE, ctype, node, "Node", now, severity=Severity.HIGH, node=name,
                               since=since, message=cond.get("message", ""), condition=ctype))
    return out


def workload_signals(obj: Obj, kind: str, now: dt.datetime, th: Thresholds, *, serves_traffic: bool) -> list[Signal]:
    """A rollout past its progress deadline; a workload scaled to zero that a Service routes to."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    out: list[Signal] = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False" and cond.get("reason") == "ProgressDeadlineExceeded":
            out.append(make_signal(SignalSource.WORKLOAD, "ProgressDeadlineExceeded", obj, kind, now, severity=Severity.HIGH,
                               message=cond.get("message", "")))
    if kind in ("Deployment", "StatefulSet") and spec.get("replicas") == 0 and serves_traffic:
        generation = str((obj.get("metadata") or {}).get("generation", ""))
        out.append(make_signal(SignalSource.WORKLOAD, "ScaledToZero", obj, kind, now, generation, severity=Severity.HIGH,
                           message=f"{kind} has 0 replicas but a Service routes to its pods"))
    return out


def job_signals(job: Obj, owners: tuple[ResourceRef, ...], now: dt.datetime, th: Thresholds) -> list[Signal]:
    """A failed Job. A failed run of a CronJob waits ``rerun_grace`` for a later run to complete
    (the detector then drops it as superseded); one that fails every run still counts."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            hold = th.rerun_grace if cronjob_of(job) else 0.0
            return [make_signal(SignalSource.JOB, "JobFailed", job, "Job", now, owners=owners, severity=Severity.MEDIUM,
                                since=parse_time(cond.get("lastTransitionTime")) or now, hold=hold,
                                message=cond.get("message", ""), jobReason=cond.get("reason", ""))]
    return []


def service_signals(svc: Obj, now: dt.datetime, th: Thresholds, selects_a_workload: bool) -> list[Signal]:
    """A Service whose selector matches no workload's pods. It counts only while some
    workload's config names it and no pod matches either (the detector asks again at each
    decision, as the workloads may be created after it): a leftover nobody calls is no fault."""
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector or selects_a_workload:
        return []
    return [make_signal(SignalSource.SERVICE, "SelectsNoPods", svc, "Service", now, severity=Severity.HIGH,
                        hold=th.not_ready_grace, message=f"selector {selector} matches no pod, and a client names it")]


def pvc_signals(pvc: Obj, now: dt.datetime, th: Thresholds) -> list[Signal]:
    phase = (pvc.get("status") or {}).get("phase")
    if phase == "Pending":
        created = parse_time((pvc.get("metadata") or {}).get("creationTimestamp")) or now
        return [make_signal(SignalSource.PVC, "ClaimPending", pvc, "PersistentVolumeClaim", now, since=created,
                        hold=th.pvc_grace)]
    if phase == "Lost":
        return [make_signal(SignalSource.PVC, "ClaimLost", pvc, "PersistentVolumeClaim", now, severity=Severity.HIGH)]
    return []
