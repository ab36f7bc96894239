"""The ``runtime`` fault step: pods report what a real kubelet would, for the whole scenario.

How (docs/scenarios.md has the long version):

1. Before the fault's first step, every runtime step of the scenario gets a *hold* Stage
   (``kwok.pod_hold_stage``): its pods are no longer touched by KWOK's default stages.
2. A watch on the scenario namespace sees every pod (the existing ones, a rollout's new
   ones, replacements) and writes the status ``pod_status.simulated_status`` computes for
   the active steps that match it, through the status subresource as field manager
   ``kubelet``. The status is computed once per pod and set of steps, so it is stable
   (timestamps do not move) and the watch settles instead of looping.
3. With the status come a ``Logs`` object (``kubectl logs`` / ``--previous``) and the
   step's Events, posted once per pod as the kubelet would (``kubelet_events``).

A ``newPodsOnly`` step is active from the start of the fault (it is about pods the fault
creates, from their first status on); the others become active when the runner reaches
them. ``Evicted`` applies to the pods that match when the step is reached, not to their
replacements (which would otherwise be evicted in turn, without end).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from aisre.bench import kwok
from aisre.bench.kube import Kube, Stream, api_error, labels_match
from aisre.bench.kubelet_events import kubelet_event
from aisre.bench.pod_status import SimulationError, plan, shows, simulated_status
from aisre.bench.scenario import RuntimeState, RuntimeStep

KUBELET = "kubelet"  # field manager of the status writes, as on a real node
MAX_REWRITES = 5  # per pod and set of steps: enough to win a race, never a fight
# Pod IPs for pods the runner gives an address: inside the 10.0.0.0/16 pod network, but
# outside the 10.0.0.0/24 pool KWOK hands out itself.
POD_NETWORK = ipaddress.ip_network("10.0.0.0/16")
KWOK_POOL = ipaddress.ip_network("10.0.0.0/24")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _parse(stamp: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


@dataclass
class ArmedStep:
    """A runtime step of the scenario and the pods it may apply to."""

    index: int  # position in the fault list (also its order of precedence)
    step: RuntimeStep
    stage: str
    exclude_uids: frozenset[str] = frozenset()  # newPodsOnly: pods older than the fault
    only_uids: frozenset[str] | None = None  # one-shot (Evicted): the pods of that moment
    activated_at: dt.datetime | None = None
    simulated: set[str] = field(default_factory=set)  # uids of pods it was applied to

    @property
    def one_shot(self) -> bool:
        return self.step.state == RuntimeState.EVICTED

    def matches(self, pod: Mapping[str, Any]) -> bool:
        uid = pod["metadata"]["uid"]
        if self.one_shot and self.only_uids is None:
            return False  # not reached yet: its pods are unknown
        return (
            labels_match(self.step.selector, pod)
            and uid not in self.exclude_uids
            and (self.only_uids is None or uid in self.only_uids)
        )


@dataclass
class _PodState:
    key: tuple[int, ...] = ()
    desired: dict[str, Any] | None = None
    writes: int = 0
    events_posted: set[int] = field(default_factory=set)
    healthy: bool = False  # created after the fault was gone: no step applies to it


class RuntimeSimulator:
    """Simulates the kubelet for the runtime steps of one scenario namespace."""

    def __init__(self, kube: Kube, namespace: str, steps: list[tuple[int, RuntimeStep]], *, run_id: str, log_dir: Path) -> None:
        self.kube = kube
        self.namespace = namespace
        self.run_id = run_id
        self.log_dir = log_dir
        self.steps = [ArmedStep(i, s, f"{namespace}-runtime-{i}") for i, s in steps]
        self.errors: list[str] = []
        self._pods: dict[str, _PodState] = {}
        self._ips: set[str] = set()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stream: Stream | None = None
        self._thread: threading.Thread | None = None
        self._stages: list[str] = []
        # Set by whoever ends the fault (the remediation bench): whether a pod seen for the
        # first time runs free of it. Decided once per pod, so its status stays stable.
        self.healthy: Callable[[dict[str, Any]], bool] | None = None

    @property
    def stage_names(self) -> list[str]:
        return list(self._stages)

    # --- lifecycle -------------------------------------------------------------------------
    def arm(self, pods_before_fault: list[dict[str, Any]], fault_start: dt.datetime) -> None:
        """Hold Stages for every step, newPodsOnly steps active, and the pod watch running."""
        if not self.steps:
            return
        before = frozenset(p["metadata"]["uid"] for p in pods_before_fault)
        self._ips.update(p.get("status", {}).get("podIP") for p in pods_before_fault if p.get("status", {}).get("podIP"))
        for armed in self.steps:
            if armed.step.new_pods_only:
                armed.exclude_uids = before
                if not armed.one_shot:
                    armed.activated_at = fault_start
            if not armed.one_shot:
                self._create_stage(kwok.pod_hold_stage(
                    armed.stage, self.namespace, armed.step.selector, run_id=self.run_id, exclude_uids=sorted(armed.exclude_uids)
                ))
        self._stream = Stream(self.kube.core.list_namespaced_pod, namespace=self.namespace)
        self._thread = threading.Thread(target=self._watch, name=f"bench-pods-{self.namespace}", daemon=True)
        self._thread.start()

    def activate(self, index: int) -> None:
        """The runner reached runtime step ``index``: apply it to the pods that match now."""
        armed = next(a for a in self.steps if a.index == index)
        pods = self.kube.pods(self.namespace)
        with self._lock:
            if armed.one_shot:
                armed.only_uids = frozenset(
                    p["metadata"]["uid"]
                    for p in pods
                    if labels_match(armed.step.selector, p) and p["metadata"]["uid"] not in armed.exclude_uids
                    and not p["metadata"].get("deletionTimestamp")
                )
                self._create_stage(kwok.pod_hold_stage(
                    armed.stage, self.namespace, armed.step.selector, run_id=self.run_id, only_uids=sorted(armed.only_uids)
                ))
            if armed.activated_at is None:
                armed.activated_at = _now()
            for pod in pods:
                self._reconcile(pod)

    def wait_applied(self, index: int, timeout: float) -> bool:
        """Until step ``index`` shows on at least one pod (its pods may still be on their way,
        e.g. a rollout's), or ``timeout``."""
        armed = next(a for a in self.steps if a.index == index)
        with self._changed:
            return self._changed.wait_for(lambda: bool(armed.simulated), timeout)

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        if self._thread is not None:
            self._thread.join(10)

    def cleanup(self) -> list[str]:
        """Delete the Stages and the log files (the Logs objects go with the namespace)."""
        self.stop()
        problems: list[str] = []
        for name in self._stages:
            try:
                self.kube.custom.delete_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", name)
            except ApiException as error:
                if error.status != 404:
                    problems.append(f"delete Stage {name}: {api_error(error)}")
        self._stages = []  # gone: a kept namespace has no Stages left to mark
        shutil.rmtree(self.log_dir, ignore_errors=True)
        return problems

    # --- the watch -------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self._stream is not None
        while True:
            try:
                for kind, pod in self._stream.events():
                    if kind in ("ADDED", "MODIFIED"):
                        with self._lock:
                            self._reconcile(pod)
                return  # stopped
            except Exception as error:  # noqa: BLE001  (reported with the result, watch resumes)
                if self._stream.stopped:
                    return
                with self._lock:
                    self.errors.append(f"pod watch: {error}")
                time.sleep(1)

    # --- one pod ---------------------------------------------------------------------------
    def _reconcile(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if meta.get("deletionTimestamp") or not spec.get("nodeName"):
            return  # going away, or not on a node yet: no kubelet reports on it
        armed = [a for a in self.steps if a.matches(pod)]
        if not armed:
            return
        active = [a for a in armed if a.activated_at is not None]
        uid = meta["uid"]
        first_sight = uid not in self._pods
        state = self._pods.setdefault(uid, _PodState())
        if first_sight and active and self.healthy is not None and self.healthy(pod):
            state.healthy = True
        if state.healthy:
            active = []
        key = tuple(a.index for a in active)
        try:
            if not active:
                # Held for a step not reached yet: show it running, as KWOK would have.
                if (pod.get("status") or {}).get("containerStatuses"):
                    return
                desired = simulated_status(pod, [], _now(), pod_ip=self._pod_ip(pod))
            elif state.key != key or state.desired is None:
                now = _now()
                created = _parse(meta.get("creationTimestamp")) or now
                since = max(created, min(a.activated_at for a in active if a.activated_at))
                desired = simulated_status(pod, [a.step for a in active], now, since=since, pod_ip=self._pod_ip(pod))
                self._write_logs(pod, active, desired, now, since)
                state.key, state.desired, state.writes = key, desired, 0
            else:
                desired = state.desired
        except SimulationError as error:
            self._error(str(error))
            return
        if not shows(pod, desired):
            if state.writes >= MAX_REWRITES:
                self._error(f"pod {meta['name']}: status keeps being overwritten; gave up after {MAX_REWRITES} writes")
                return
            state.writes += 1
            if not self._write_status(pod, desired):
                return
        for a in active:
            a.simulated.add(uid)
            if a.index not in state.events_posted:
                state.events_posted.add(a.index)
                self._post_events(pod, a, desired)
        self._changed.notify_all()

    def _error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def _pod_ip(self, pod: Mapping[str, Any]) -> str | None:
        if (pod.get("status") or {}).get("podIP"):
            return None
        seed = int.from_bytes(hashlib.sha256(pod["metadata"]["uid"].encode()).digest()[:4], "big")
        size = POD_NETWORK.num_addresses
        for attempt in range(size):
            candidate = POD_NETWORK[(seed + attempt) % size]
            if candidate in KWOK_POOL or candidate.packed[-1] in (0, 255) or str(candidate) in self._ips:
                continue
            self._ips.add(str(candidate))
            return str(candidate)
        return None

    def _write_status(self, pod: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
        try:
            self.kube.core.patch_namespaced_pod_status(
                pod["metadata"]["name"], self.namespace, {"status": desired},
                field_manager=KUBELET, _content_type="application/merge-patch+json",
            )
            return True
        except ApiException as error:
            if error.status != 404:  # a pod deleted meanwhile is no error
                self._error(f"status of pod {pod['metadata']['name']}: {api_error(error)}")
            return False

    def _write_logs(self, pod: Mapping[str, Any], active: list[ArmedStep], desired: Mapping[str, Any], now: dt.datetime, since: dt.datetime) -> None:
        """Log files for every container of the pod, and the pod's Logs object."""
        p = plan(pod, [a.step for a in active])
        statuses = {s["name"]: s for s in [*desired.get("containerStatuses", []), *desired.get("initContainerStatuses", [])]}
        directory = self.log_dir / pod["metadata"]["name"]
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, tuple[str, str | None]] = {}
        containers = [*(pod["spec"].get("initContainers") or []), *pod["spec"].get("containers", [])]
        for c in containers:
            name = c["name"]
            step = p.step_for(pod, name)
            status = statuses.get(name) or {}
            restarted = bool(status.get("lastState", {}).get("terminated"))
            never_ran = "waiting" in status.get("state", {}) and not restarted
            if never_ran and not (step and (step.logs or step.previous_logs)):
                continue  # no log yet: `kubectl logs` fails for it, as on a real node
            current = directory / f"{name}.log"
            current.write_text(kwok.cri_log(step.logs if step else [], now))
            previous: Path | None = None
            if (step and step.previous_logs) or restarted:
                previous = directory / f"{name}.previous.log"
                previous.write_text(kwok.cri_log(step.previous_logs if step else [], since))
            files[name] = (str(current.resolve()), str(previous.resolve()) if previous else None)
        body = kwok.logs_object(pod["metadata"]["name"], self.namespace, files, run_id=self.run_id)
        try:
            self.kube.custom.create_namespaced_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, self.namespace, "logs", body)
        except ApiException as error:
            if error.status != 409:
                self._error(f"Logs of pod {pod['metadata']['name']}: {api_error(error)}")
                return
            try:
                current_obj = self.kube.custom.get_namespaced_custom_object(
                    kwok.KWOK_GROUP, kwok.KWOK_VERSION, self.namespace, "logs", pod["metadata"]["name"]
                )
                body["metadata"]["resourceVersion"] = current_obj["metadata"]["resourceVersion"]
                self.kube.custom.replace_namespaced_custom_object(
                    kwok.KWOK_GROUP, kwok.KWOK_VERSION, self.namespace, "logs", pod["metadata"]["name"], body
                )
            except ApiException as again:
                self._error(f"Logs of pod {pod['metadata']['name']}: {api_error(again)}")

    def _post_events(self, pod: Mapping[str, Any], armed: ArmedStep, desired: Mapping[str, Any]) -> None:
        if not armed.step.events:
            return
        p = plan(pod, [a.step for a in self.steps if a.activated_at is not None and a.matches(pod)])
        restarts = max(
            (s.get("restartCount", 0) for s in [*desired.get("containerStatuses", []), *desired.get("initContainerStatuses", [])]
             if p.step_for(pod, s["name"]) is armed.step),
            default=0,
        )
        now = _now()
        since = max(_parse(pod["metadata"].get("creationTimestamp")) or now, armed.activated_at or now)
        for event in armed.step.events:
            # The kubelet's event names: <pod>.<creation time in hex nanoseconds>
            name = f"{pod['metadata']['name']}.{time.time_ns():x}"
            body = kubelet_event(pod, event, armed.step, name=name, now=now, since=since, restarts=restarts)
            try:
                self.kube.core.create_namespaced_event(self.namespace, body)
            except ApiException as error:
                if error.status != 404:
                    self._error(f"event {event.reason} on pod {pod['metadata']['name']}: {api_error(error)}")

    def _create_stage(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            self.kube.custom.create_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", body)
        except ApiException as error:
            if error.status != 409:
                raise
            current = self.kube.custom.get_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", name)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.kube.custom.replace_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", name, body)
        if name not in self._stages:
            self._stages.append(name)
