"""Verification that knows the workload: how long an action's effect is waited for, what
"done" means for each kind, and whether the state after the action is better, unchanged
or worse than before it.

The window follows the workload's own rollout, not one fixed timeout: a Deployment's
``progressDeadlineSeconds`` (after which its controller itself says the rollout failed), a
StatefulSet's ordered update (every replica in turn, each with ``minReadySeconds``), a
DaemonSet's update (``maxUnavailable`` nodes at a time). The policy's verification timeout
is the floor, one hour the ceiling (``window_seconds``).

A rollout still progressing when looked at is not a failure. What decides is the state
after the window compared with the state before the change (``judge``), on the workload's
availability and on the fault's own signal: new OOM kills, new restarts and not-ready pods
among the pods the change created. Only an unchanged or worse state is reverted.

Pure functions decide; ``observe`` and ``verify_workloads`` read the cluster (pods by the
workload's selector, watches on the workload) through ``kubeapi``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from aisre.remediation import kubeapi

ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
COMPLETE, PROGRESSING, STALLED = "Complete", "Progressing", "Stalled"
CLEARED, IMPROVED, UNCHANGED, WORSE = "Cleared", "Improved", "Unchanged", "Worse"
DEFAULT_PROGRESS_DEADLINE = 600  # what the API server defaults progressDeadlineSeconds to
PER_POD_SECONDS = 120  # a StatefulSet's or DaemonSet's pod's turn in an update: start, pass readiness
SLACK_SECONDS = 15  # the controller's own reaction after its deadline (conditions are written late)
MAX_WINDOW = 3600
# After a rollout completes, the fault's signal is watched a little longer where the fault
# needs load or time to show (an OOM kill happens when memory grows, not at start).
SOAK_SECONDS = float(os.environ.get("AISRE_VERIFY_SOAK_SECONDS") or 30)


@dataclass(frozen=True)
class PodCounts:
    """One pod's fault signal: restarts and OOM kills of its containers, and readiness."""

    restarts: int = 0
    oom_kills: int = 0
    ready: bool = False


@dataclass(frozen=True)
class Health:
    """A workload's state at one moment, as verification compares it."""

    ref: str  # Kind/name
    desired: int = 0
    available: int = 0
    rollout: str = PROGRESSING
    pods: Mapping[str, PodCounts] = field(default_factory=dict)  # by pod uid
    at: dt.datetime | None = None

    @property
    def not_ready(self) -> int:
        return sum(1 for p in self.pods.values() if not p.ready)

    @property
    def healthy(self) -> bool:
        return self.rollout == COMPLETE and self.available >= self.desired


@dataclass(frozen=True)
class Judgement:
    outcome: str  # Cleared | Improved | Unchanged | Worse
    detail: str

    @property
    def keep(self) -> bool:
        """The change stays: it cleared the fault, or made things better and is not done yet."""
        return self.outcome in (CLEARED, IMPROVED)


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _observed(obj: Mapping[str, Any]) -> bool:
    return (_status(obj).get("observedGeneration") or 0) >= ((obj.get("metadata") or {}).get("generation") or 0)


def desired_available(obj: Mapping[str, Any]) -> tuple[int, int]:
    spec, status = obj.get("spec") or {}, _status(obj)
    if obj.get("kind") == "DaemonSet":
        return int(status.get("desiredNumberScheduled") or 0), int(status.get("numberAvailable") or 0)
    if obj.get("kind") == "StatefulSet":
        return int(spec.get("replicas", 1)), int(status.get("availableReplicas", status.get("readyReplicas", 0)) or 0)
    return int(spec.get("replicas", 1)), int(status.get("availableReplicas") or 0)


def rollout_state(obj: Mapping[str, Any] | None) -> str:
    """Complete, Progressing or Stalled, as the workload's controller reports it (pure).

    Deployment: every replica updated and available, old ones gone; Stalled when its
    Progressing condition says ProgressDeadlineExceeded. StatefulSet: every replica
    updated and ready, currentRevision == updateRevision. DaemonSet: updatedNumberScheduled
    and numberAvailable at desiredNumberScheduled. Neither of the two has a deadline of its
    own, so they are Progressing until the window ends."""
    if not obj:
        return STALLED  # deleted: nothing will progress
    spec, status = obj.get("spec") or {}, _status(obj)
    kind = obj.get("kind")
    if not _observed(obj):
        return PROGRESSING
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled") or 0)
        done = int(status.get("updatedNumberScheduled") or 0) == want and int(status.get("numberAvailable") or 0) == want
        return COMPLETE if done else PROGRESSING
    want = int(spec.get("replicas", 1))
    if kind == "StatefulSet":
        ready = int(status.get("readyReplicas") or 0)
        done = (int(status.get("updatedReplicas") or 0) == want and ready == want
                and int(status.get("availableReplicas", ready) or 0) == want  # minReadySeconds passed
                and status.get("currentRevision") == status.get("updateRevision"))
        return COMPLETE if done else PROGRESSING
    if (int(status.get("updatedReplicas") or 0) == want and int(status.get("availableReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want):
        return COMPLETE
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return STALLED
    return PROGRESSING


def settled(obj: Mapping[str, Any] | None) -> bool:
    return rollout_state(obj) != PROGRESSING


def _scaled(value: Any, replicas: int, round_up: bool) -> int:
    """An int-or-percent rollout bound resolved against the replicas, as the controllers do."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * replicas / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def rollout_unavailable(obj: dict[str, Any]) -> int | None:
    """How many of a workload's replicas its own update takes out of service at once (pure):
    a Deployment's rolling update resolves maxUnavailable (rounded down) against maxSurge
    (rounded up; both zero means one), a Recreate takes them all, a StatefulSet's or
    DaemonSet's rolling update its maxUnavailable (1 by default). None for anything else."""
    spec, kind = obj.get("spec") or {}, obj.get("kind")
    if kind == "Deployment":
        replicas = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return replicas
        rolling = strategy.get("rollingUpdate") or {}
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        return 1 if unavailable == 0 and surge == 0 else unavailable
    if kind in ("StatefulSet", "DaemonSet"):
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return None
        replicas = int(spec.get("replicas", 1)) if kind == "StatefulSet" else int(
            (obj.get("status") or {}).get("desiredNumberScheduled") or 1)
        return max(1, _scaled((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), replicas, round_up=False))
    return None


def window_seconds(obj: Mapping[str, Any] | None, floor: float) -> float:
    """How long the workload's own rollout may take (pure): a Deployment's progress
    deadline, a StatefulSet's replicas one after another, a DaemonSet's nodes
    ``maxUnavailable`` at a time; never below ``floor`` (the policy's timeout), never above
    an hour."""
    if not obj or obj.get("kind") not in ROLLOUT_KINDS:
        return min(float(floor), MAX_WINDOW)
    spec = obj.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    kind = obj.get("kind")
    if kind == "Deployment":
        own = int(spec.get("progressDeadlineSeconds") or DEFAULT_PROGRESS_DEADLINE) + min_ready + SLACK_SECONDS
    elif kind == "StatefulSet":
        own = max(1, int(spec.get("replicas", 1))) * (PER_POD_SECONDS + min_ready)
    else:
        desired = max(1, int(_status(obj).get("desiredNumberScheduled") or 1))
        own = math.ceil(desired / (rollout_unavailable(obj) or 1)) * (PER_POD_SECONDS + min_ready)
    return float(min(max(float(floor), own), MAX_WINDOW))


def pod_counts(pod: Mapping[str, Any]) -> PodCounts:
    """Restarts, OOM kills (a container whose last or current termination is OOMKilled
    counts every restart of it, and the current kill) and readiness of one pod (pure)."""
    status = pod.get("status") or {}
    restarts = ooms = 0
    for cs in status.get("containerStatuses") or []:
        count = int(cs.get("restartCount") or 0)
        restarts += count
        last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
        now = ((cs.get("state") or {}).get("terminated") or {}).get("reason")
        if last == "OOMKilled":
            ooms += count
        if now == "OOMKilled":
            ooms += 1
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodCounts(restarts, ooms, ready)


def health_of(obj: Mapping[str, Any] | None, pods: list[Mapping[str, Any]], ref: str,
              at: dt.datetime | None = None) -> Health:
    """The workload's Health from it and its pods (pure); deleted pods are skipped."""
    if not obj:
        return Health(ref, rollout=STALLED, at=at)
    desired, available = desired_available(obj)
    counted = {str((p.get("metadata") or {}).get("uid")): pod_counts(p) for p in pods
               if not (p.get("metadata") or {}).get("deletionTimestamp")}
    return Health(ref, desired, available, rollout_state(obj), counted, at)


def fresh_pods(before: Health | None, after: Health) -> list[PodCounts]:
    """The pods the change created, i.e. those not there before it (pure). Pods of the old
    revision keep failing until they are replaced; they say nothing about the change."""
    old = set(before.pods) if before is not None else set(after.pods)
    return [counts for uid, counts in after.pods.items() if uid not in old]


def new_faults(before: Health | None, after: Health) -> tuple[int, int, int]:
    """(new OOM kills, new restarts, not-ready pods) among the pods the change created (pure)."""
    fresh = fresh_pods(before, after)
    return (sum(c.oom_kills for c in fresh), sum(c.restarts for c in fresh), sum(1 for c in fresh if not c.ready))


def judge(before: Health | None, after: Health) -> Judgement:
    """Cleared, Improved, Unchanged or Worse, after the window (pure).

    Cleared: the rollout completed, every replica available, no new pod OOM-killed or
    restarted. Worse: fewer available than before, or a new pod failing while availability
    did not grow. Unchanged: the fault's signal goes on in the new pods, or nothing got
    better (no new pod ready: none created, or none passing readiness). Improved: more
    available than before, or a rollout still in progress whose new revision has pods
    Ready and none failing ("still rolling out" is not "failed")."""
    ooms, restarts, unready = new_faults(before, after)
    faults = f"{ooms} new OOM kill(s), {restarts} restart(s) in new pods"
    shown = f"{after.ref}: {after.available}/{after.desired} available, rollout {after.rollout}"
    if after.healthy and not ooms and not restarts:
        return Judgement(CLEARED, f"{shown}, no new OOM kill or restart")
    was = before.available if before is not None else after.available
    if after.available < was:
        return Judgement(WORSE, f"{shown}, was {was} available; {faults}")
    if ooms or restarts:
        return Judgement(UNCHANGED if after.available <= was else IMPROVED, f"{shown} (was {was}); {faults}")
    fresh = len(fresh_pods(before, after))
    if after.rollout == PROGRESSING and fresh > unready:
        return Judgement(IMPROVED, f"{shown}: still rolling out, {fresh - unready} new pod(s) ready, none failing"
                                   f" ({unready} not ready yet)")
    if after.available > was:
        return Judgement(IMPROVED, f"{shown}, was {was} available")
    return Judgement(UNCHANGED, f"{shown}, as before; {fresh} new pod(s), {fresh - unready} of them ready")


OUTCOME_ORDER = (WORSE, UNCHANGED, IMPROVED, CLEARED)


def overall(judgements: list[Judgement]) -> Judgement | None:
    """The worst of several workloads' judgements (a restored ConfigMap's users)."""
    if not judgements:
        return None
    worst = min(judgements, key=lambda j: OUTCOME_ORDER.index(j.outcome))
    return Judgement(worst.outcome, "; ".join(j.detail for j in judgements)[:900])


def unhealthy(objs: list[Mapping[str, Any]]) -> set[str]:
    """Kind/name of the workloads not fully available (pure): side effects are the ones in
    this set after an action and not before it."""
    out = set()
    for obj in objs:
        desired, available = desired_available(obj)
        if available < desired:
            out.add(f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}")
    return out


def selector_text(obj: Mapping[str, Any]) -> str | None:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


# ---------------------------------------------------------------- reading the cluster


async def _get(client: httpx.AsyncClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    obj = await kubeapi.get_or_none(client, kubeapi.object_path(kind, namespace, name))
    if obj is not None:
        obj.setdefault("kind", kind)
    return obj


async def observe(client: httpx.AsyncClient, namespace: str, ref: str) -> Health:
    """One workload's Health now (its pods by its selector)."""
    kind, _, name = ref.partition("/")
    obj = await _get(client, kind, namespace, name)
    pods: list[dict[str, Any]] = []
    selector = selector_text(obj) if obj else None
    if selector:
        listing = await kubeapi.get(client, kubeapi.collection("Pod", namespace), {"labelSelector": selector})
        pods = listing.get("items") or []
    return health_of(obj, pods, ref, dt.datetime.now(dt.UTC))


async def unhealthy_now(client: httpx.AsyncClient, namespace: str) -> set[str]:
    """The namespace's workloads not fully available now."""
    found: list[dict[str, Any]] = []
    for kind in ROLLOUT_KINDS:
        listing = await kubeapi.get(client, kubeapi.collection(kind, namespace))
        found += [{**item, "kind": kind} for item in listing.get("items") or []]
    return unhealthy(found)


async def window_for(client: httpx.AsyncClient, namespace: str, refs: list[str], floor: float) -> float:
    """The longest own window among ``refs`` (a change restarting several workloads)."""
    windows = [float(min(floor, MAX_WINDOW))]
    for ref in refs:
        kind, _, name = ref.partition("/")
        if kind in ROLLOUT_KINDS:
            windows.append(window_seconds(await _get(client, kind, namespace, name), floor))
    return max(windows)


LOOK_EVERY_S = 15.0  # while a rollout runs: how often its new pods are looked at for the fault's signal


async def _wait_settled(client: httpx.AsyncClient, namespace: str, ref: str, before: Health | None,
                        deadline: float) -> None:
    """Watch the workload until its rollout settles or the deadline; every ``LOOK_EVERY_S``
    its new pods are looked at, and a new OOM kill or restart among them ends the wait at
    once (the change did not remove the fault: no need to sit out the whole deadline)."""
    kind, _, name = ref.partition("/")
    while (left := deadline - time.monotonic()) > 0:
        if await kubeapi.wait_for(client, kind, namespace, name, settled, min(left, LOOK_EVERY_S)):
            return
        ooms, restarts, _ = new_faults(before, await observe(client, namespace, ref))
        if before is not None and (ooms or restarts):
            return


async def verify_workloads(client: httpx.AsyncClient, namespace: str, refs: list[str], extra: dict[str, Any],
                           timeout: float, soak: float | None = 0.0) -> tuple[bool, str]:
    """Wait for each workload's rollout to settle (complete or stalled) within ``timeout``,
    watch the fault's signal ``soak`` seconds longer once complete (None: ``SOAK_SECONDS``), and judge each against
    its state before the change (``extra["before"]``, taken by the executor). Records the
    judgements and the time the fault cleared in ``extra`` for the journal's assessment."""
    deadline = time.monotonic() + timeout
    soak = SOAK_SECONDS if soak is None else soak  # None: the configured soak, read now
    before: Mapping[str, Health] = extra.get("before") or {}
    judgements: list[Judgement] = []
    for ref in refs:
        kind, _, name = ref.partition("/")
        await _wait_settled(client, namespace, ref, before.get(ref), deadline)
        after = await observe(client, namespace, ref)
        if after.healthy and soak > 0:
            cleared_at = after.at
            await asyncio.sleep(min(soak, max(0.0, deadline - time.monotonic())))  # one bounded look later, not a poll
            after = await observe(client, namespace, ref)
            after = Health(after.ref, after.desired, after.available, after.rollout, after.pods, cleared_at)
        judgements.append(judge(before.get(ref), after))
        if judgements[-1].outcome == CLEARED:
            extra["cleared_at"] = max(extra.get("cleared_at") or after.at, after.at) if after.at else extra.get("cleared_at")
    verdict = overall(judgements) or Judgement(CLEARED, "no workload to verify")
    extra["judgement"] = verdict
    return verdict.keep, f"{verdict.outcome}: {verdict.detail}"
