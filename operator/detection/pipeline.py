"""The detection path from a watch event to the detector: keep the index current, turn
the object into signals, and hand them over. ``handle`` is what every watch calls, and
what the throughput benchmark drives."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aisre.operator.detection.detector import Detector
from aisre.operator.detection.signals import (event_signal, job_signals, node_signals, pod_signals, probe_of, pvc_signals,
                                              service_signals, workload_signals)
from aisre.operator.detection.thresholds import Thresholds

Obj = dict[str, Any]
CONTROLLER_KINDS = {"ReplicaSet", "Job"}  # owned by a Deployment / CronJob: the index links them up
ROLLOUT_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
# A pod's volume could not be mounted (yet): history once the pod's containers run, since
# the kubelet starts none of them before every volume is mounted.
MOUNT_REASONS = {"FailedMount", "FailedAttachVolume"}
GONE_PODS_KEPT = 4096


def _uid(obj: Obj, kind: str) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{kind}/{meta.get('namespace')}/{meta.get('name')}"


class Pipeline:
    def __init__(self, detector: Detector, thresholds: Thresholds,
                 namespace_allowed: Callable[[str], bool] = lambda _: True,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.detector = detector
        self.index = detector.index
        self.th = thresholds
        self.allowed = namespace_allowed
        self.clock = clock
        self.generations: dict[str, int] = {}  # rollout kinds, by uid: the spec generation last seen
        self.changed_at: dict[str, dt.datetime] = {}  # per namespace: when a workload's spec last changed
        self.mount_failures: dict[str, set[str]] = {}  # pod uid -> uids of its mount-failure events
        # Pods deleted lately: what their events still say (a mount that failed as the pod
        # was torn down) is about nothing that runs. Bounded: the oldest are forgotten.
        self.gone_pods: OrderedDict[str, None] = OrderedDict()

    def changed_since(self, namespace: str, since: dt.datetime) -> bool:
        """Whether a workload's spec (template, replicas) changed in the namespace since then."""
        when = self.changed_at.get(namespace)
        return when is not None and when >= since

    def _note_generation(self, uid: str, namespace: str, kind: str, obj: Obj, deleted: bool, now: dt.datetime) -> None:
        # A spec change bumps metadata.generation; the first sight of an object is not a change.
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        if deleted:
            self.generations.pop(uid, None)
            return
        before = self.generations.get(uid)
        self.generations[uid] = generation
        if before is not None and generation > before:
            self.changed_at[namespace] = now
        # A zero set while we watch is someone's act, whether or not anything depends on it.
        self.index.note_scaled(kind, obj, zeroed=(obj.get("spec") or {}).get("replicas") == 0 and before is not None
                               and generation > before)

    def handle(self, kind: str, event_type: str, obj: Obj) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of one object of ``kind``."""
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace is not None and not self.allowed(namespace):
            return
        deleted = event_type == "DELETED"
        uid = _uid(obj, kind)
        if deleted:
            self.detector.forget(uid)
        now = self.clock()
        if kind == "Pod":
            owners = self.index.owners(obj)
            self.index.set_pod(obj, owners, deleted)
            if deleted or self.index.pod_is_started(uid):
                for event_uid in self.mount_failures.pop(uid, set()):
                    self.detector.forget(event_uid)
            if deleted:
                self.gone_pods[uid] = None
                while len(self.gone_pods) > GONE_PODS_KEPT:
                    self.gone_pods.popitem(last=False)
            if not deleted:
                self.detector.observe(uid, pod_signals(obj, owners, now, self.th))
        elif kind == "Event":
            if deleted:
                return
            involved = obj.get("involvedObject") or {}
            owners = self.index.chain_from(involved.get("namespace") or "", involved.get("kind", ""),
                                           involved.get("name", ""), involved.get("uid", ""))
            pod_uid = involved.get("uid", "") if involved.get("kind") == "Pod" else None
            if pod_uid in self.gone_pods:
                return
            if pod_uid is not None and obj.get("reason") in MOUNT_REASONS:
                if self.index.pod_is_started(pod_uid):
                    self.detector.forget(uid)
                    return
                self.mount_failures.setdefault(pod_uid, set()).add(uid)
            probe = probe_of(obj) if pod_uid is not None else None
            kill_after = self.index.probe_failure_threshold(pod_uid, *probe) if pod_uid is not None and probe else None
            signal = event_signal(obj, owners, now, self.th, kill_after)
            if signal is not None:
                self.detector.observe(uid, [signal])
        elif kind == "Node":
            if not deleted:
                self.detector.observe(uid, node_signals(obj, now, self.th))
        elif kind == "Service":
            self.index.set_service(obj, deleted)
            if not deleted:
                selector = (obj.get("spec") or {}).get("selector") or {}
                selects = not self.index.selects_no_workload(namespace or "", selector)
                self.detector.observe(uid, service_signals(obj, now, self.th, selects))
        elif kind == "PersistentVolumeClaim":
            if not deleted:
                self.detector.observe(uid, pvc_signals(obj, now, self.th))
        else:
            self.index.set_controller(obj, kind, deleted)
            if kind in ROLLOUT_KINDS or kind == "Job" and not self.index.owners(obj):
                self.index.set_workload(obj, kind, deleted)
            if kind in ROLLOUT_KINDS and namespace is not None:
                self._note_generation(uid, namespace, kind, obj, deleted, now)
            if deleted:
                return
            if kind in ROLLOUT_KINDS:
                self.detector.observe(uid, workload_signals(obj, kind, now, self.th,
                                                            serves_traffic=self.index.serves_traffic(obj, kind)))
            elif kind == "Job":
                self.detector.observe(uid, job_signals(obj, self.index.owners(obj), now, self.th))
        if kind == "Job":
            self.index.set_job(obj, deleted)
