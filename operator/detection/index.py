"""A compact picture of the cluster, kept from the watches, for correlation.

Only what correlation needs is kept — owner links, which pods run where and use which
claims, which Services select which pod labels, the host-like config values of each
workload, and which nodes are unwell — never whole objects, so memory grows with the
number of objects by a few hundred bytes each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aisre.agents.base import cronjob_of, mentions_host, parse_time, programs, template_references
from aisre.api.meta import ResourceRef
from aisre.kube.scope import labels_match
from aisre.operator.detection.signals import pod_started

Obj = dict[str, Any]
MAX_ENV_PAIRS = 48
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def probe_thresholds(pod: Obj) -> tuple[tuple[str, str, int], ...]:
    """Each container's liveness and startup probe failureThreshold (Kubernetes' default 3)."""
    out = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for probe in ("liveness", "startup"):
            spec = container.get(f"{probe}Probe")
            if spec:
                out.append((container.get("name", ""), probe, int(spec.get("failureThreshold") or 3)))
    return tuple(out)


@dataclass(slots=True)
class PodInfo:
    namespace: str
    name: str
    node: str | None
    owners: tuple[ResourceRef, ...]
    claims: tuple[str, ...]
    # (container, "liveness" | "startup", failureThreshold): how many failures the kubelet
    # takes before it kills the container
    probe_thresholds: tuple[tuple[str, str, int], ...] = ()
    started: bool = False  # Running with every container running: its volumes were mounted
    labels: dict[str, str] = field(default_factory=dict)  # what Services select it by


@dataclass(slots=True)
class WorkloadInfo:
    ref: ResourceRef
    replicas: int | None
    pod_labels: dict[str, str]
    env: tuple[tuple[str, str], ...]  # host-like config values: who it connects to
    claims: tuple[str, ...]
    program: frozenset[tuple[str, str, str]] = frozenset()  # what its containers run (repository, command, args)


@dataclass(slots=True)
class JobRun:
    """One run of a CronJob (or of a Job named and annotated like one)."""

    cronjob: str
    failed_at: dt.datetime | None
    completed_at: dt.datetime | None


@dataclass
class ClusterIndex:
    owner_of: dict[tuple[str, str, str], ResourceRef] = field(default_factory=dict)  # (ns, kind, name) → controller
    pods: dict[str, PodInfo] = field(default_factory=dict)  # by uid
    workloads: dict[tuple[str, str, str], WorkloadInfo] = field(default_factory=dict)  # (ns, kind, name)
    services: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (ns, name) → selector
    unwell_nodes: set[str] = field(default_factory=set)
    available: dict[tuple[str, str, str], int] = field(default_factory=dict)  # available replicas; no version bump
    job_runs: dict[tuple[str, str], JobRun] = field(default_factory=dict)  # (ns, job name)
    zeroed_while_watched: set[tuple[str, str, str]] = field(default_factory=set)  # (ns, kind, name) scaled to 0 since we watch
    # Answers that only change when workloads, Services or pods change: cached per version.
    version: int = 0
    _cache_version: int = -1
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def _cached(self, key: tuple[Any, ...], compute: Any) -> Any:
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # --- feeding -------------------------------------------------------------------------

    def set_controller(self, obj: Obj, kind: str, deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        if deleted or owner is None:
            self.owner_of.pop(key, None)
        else:
            self.owner_of[key] = ResourceRef(kind=owner["kind"], name=owner["name"], namespace=key[0])

    def owners(self, obj: Obj) -> tuple[ResourceRef, ...]:
        """The controller chain of an object, nearest first (pod → ReplicaSet → Deployment)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        chain: list[ResourceRef] = []
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        current = ResourceRef(kind=owner["kind"], name=owner["name"], namespace=namespace) if owner else None
        while current is not None and len(chain) < 5:
            chain.append(current)
            current = self.owner_of.get((namespace, current.kind, current.name))
        return tuple(chain)

    def chain_from(self, namespace: str, kind: str, name: str, uid: str = "") -> tuple[ResourceRef, ...]:
        """The controller chain above an object named by kind and name (an event's subject)."""
        if kind == "Pod" and uid in self.pods:
            return self.pods[uid].owners
        chain: list[ResourceRef] = []
        current = self.owner_of.get((namespace, kind, name))
        while current is not None and len(chain) < 5:
            chain.append(current)
            current = self.owner_of.get((namespace, current.kind, current.name))
        return tuple(chain)

    def top_of(self, owners: tuple[ResourceRef, ...], obj: ResourceRef) -> ResourceRef:
        """The top-level controller, extending a chain recorded before its upper links were
        known (a pod seen before its ReplicaSet's owner)."""
        current, seen = (owners[-1] if owners else obj), 0
        while seen < 5:
            above = self.owner_of.get((current.namespace or "", current.kind, current.name))
            if above is None:
                return current
            current, seen = above, seen + 1
        return current

    def set_pod(self, pod: Obj, owners: tuple[ResourceRef, ...], deleted: bool = False) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        if deleted:
            if self.pods.pop(uid, None) is not None:
                self.version += 1
            return
        claims = tuple(v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
                       if v.get("persistentVolumeClaim"))
        info = PodInfo(meta.get("namespace", ""), meta.get("name", ""), (pod.get("spec") or {}).get("nodeName"), owners, claims,
                       probe_thresholds(pod), pod_started(pod), dict(meta.get("labels") or {}))
        if self.pods.get(uid) != info:
            self.pods[uid] = info
            self.version += 1

    def pod_is_started(self, pod_uid: str) -> bool:
        info = self.pods.get(pod_uid)
        return info is not None and info.started

    def probe_failure_threshold(self, pod_uid: str, container: str, probe: str) -> int | None:
        """The failureThreshold of a container's liveness or startup probe (None: pod unknown)."""
        info = self.pods.get(pod_uid)
        if info is None:
            return None
        return next((n for c, p, n in info.probe_thresholds if c == container and p == probe), None)

    def set_workload(self, obj: Obj, kind: str, deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        if deleted:
            self.available.pop(key, None)
            if self.workloads.pop(key, None) is not None:
                self.version += 1
            return
        spec = obj.get("spec") or {}
        template = spec.get("template") or (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")) or {}
        pairs: list[tuple[str, str]] = []
        pod_spec = template.get("spec") or {}
        for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
            pairs.extend((e["name"], str(e["value"])[:256]) for e in container.get("env") or [] if e.get("value"))
            pairs.extend(("ARG", str(a)[:256]) for a in (container.get("args") or []) + (container.get("command") or []))
        claims = [r.name for r in template_references(template) if r.kind == "PersistentVolumeClaim"]
        for vct in spec.get("volumeClaimTemplates") or []:
            claims.append(f"{(vct.get('metadata') or {}).get('name', '')}-{key[2]}-")  # a prefix: <template>-<sts>-<n>
        status = obj.get("status") or {}
        self.available[key] = int(status.get("availableReplicas") or status.get("numberAvailable") or 0)
        info = WorkloadInfo(
            ResourceRef(kind=kind, name=key[2], namespace=key[0]), spec.get("replicas"),
            dict((template.get("metadata") or {}).get("labels") or {}), tuple(pairs[:MAX_ENV_PAIRS]), tuple(claims),
            frozenset(programs(template).values()))
        if self.workloads.get(key) != info:
            self.workloads[key] = info
            self.version += 1

    def set_job(self, job: Obj, deleted: bool = False) -> None:
        meta = job.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        cronjob = None if deleted else cronjob_of(job)
        if cronjob is None:
            self.job_runs.pop(key, None)
            return
        times: dict[str, dt.datetime | None] = {"Failed": None, "Complete": None}
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") in times and cond.get("status") == "True":
                times[cond["type"]] = parse_time(cond.get("lastTransitionTime"))
        self.job_runs[key] = JobRun(cronjob, times["Failed"], times["Complete"])

    def cron_run(self, *refs: ResourceRef) -> tuple[ResourceRef, JobRun] | None:
        """The CronJob run among these objects (a signal's object and owners), if any."""
        for ref in refs:
            run = self.job_runs.get((ref.namespace or "", ref.name)) if ref.kind == "Job" else None
            if run is not None:
                return ref, run
        return None

    def superseded(self, job: ResourceRef) -> bool:
        """Whether a later run of the same CronJob completed after this failed one."""
        run = self.job_runs.get((job.namespace or "", job.name))
        if run is None or run.failed_at is None:
            return False
        return any(other.cronjob == run.cronjob and other.completed_at and other.completed_at > run.failed_at
                   for (ns, _), other in self.job_runs.items() if ns == job.namespace)

    def note_scaled(self, kind: str, obj: Obj, zeroed: bool) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        if zeroed:
            self.zeroed_while_watched.add(key)
        elif (obj.get("spec") or {}).get("replicas") != 0:
            self.zeroed_while_watched.discard(key)

    def idle_at_zero(self, workload: ResourceRef) -> bool:
        """At zero since before we watched, and no workload's config names a Service in front
        of it: an idle worker (its autoscaler scaled it to zero), which hurts no one."""
        key = (workload.namespace or "", workload.kind, workload.name)
        if key in self.zeroed_while_watched:
            return False
        return not any(other_key[0] == key[0] and self.depends_on(other.ref, workload)
                       for other_key, other in self.workloads.items())

    def serving_twin(self, workload: ResourceRef) -> bool:
        """Whether another workload of the namespace runs the same program and has pods
        available (a canary's primary, the live colour of a blue/green pair)."""
        key = (workload.namespace or "", workload.kind, workload.name)
        info = self.workloads.get(key)
        if info is None or not info.program:
            return False
        return any(other_key != key and other_key[0] == key[0] and other.program == info.program
                   and self.available.get(other_key, 0) > 0 for other_key, other in self.workloads.items())

    def set_service(self, svc: Obj, deleted: bool = False) -> None:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        selector = (svc.get("spec") or {}).get("selector")
        if deleted or not selector:
            if self.services.pop(key, None) is not None:
                self.version += 1
        elif self.services.get(key) != selector:
            self.services[key] = dict(selector)
            self.version += 1

    # --- questions -----------------------------------------------------------------------

    def services_of(self, workload: ResourceRef) -> list[str]:
        return self._cached(("services_of", workload.namespace, workload.kind, workload.name),
                            lambda: self._services_of(workload))

    def _services_of(self, workload: ResourceRef) -> list[str]:
        info = self.workloads.get((workload.namespace or "", workload.kind, workload.name))
        if info is None or not info.pod_labels:
            return []
        return [name for (ns, name), selector in self.services.items()
                if ns == workload.namespace and labels_match({"matchLabels": selector}, info.pod_labels)]

    def serves_traffic(self, obj: Obj, kind: str) -> bool:
        """Whether a Service routes to this workload's pods."""
        meta = obj.get("metadata") or {}
        return bool(self.services_of(ResourceRef(kind=kind, name=meta.get("name", "?"), namespace=meta.get("namespace"))))

    def named_but_selects_nothing(self, service: ResourceRef) -> bool:
        """A Service that some workload's config names as a host, whose selector matches no
        workload's pod template and no pod: its clients reach nothing."""
        return self._cached(("selects_nothing", service.namespace, service.name),
                            lambda: self._named_but_selects_nothing(service.namespace or "", service.name))

    def selects_no_workload(self, namespace: str, selector: dict[str, str]) -> bool:
        """Whether a Service selector matches no workload's pod template in its namespace."""
        selects = {"matchLabels": selector}
        return not any(key[0] == namespace and info.pod_labels and labels_match(selects, info.pod_labels)
                       for key, info in self.workloads.items())

    def _named_but_selects_nothing(self, namespace: str, name: str) -> bool:
        selector = self.services.get((namespace, name))
        if not selector or not self.selects_no_workload(namespace, selector):
            return False
        if any(pod.namespace == namespace and labels_match({"matchLabels": selector}, pod.labels)
               for pod in self.pods.values()):
            return False
        return any(mentions_host(key, value, name, namespace)
                   for (ns, _, _), info in self.workloads.items() if ns == namespace for key, value in info.env)

    def depends_on(self, client: ResourceRef, server: ResourceRef) -> bool:
        """Whether ``client``'s config names a Service in front of ``server``'s pods as a host."""
        return self._cached(("depends_on", client.namespace, client.kind, client.name, server.kind, server.name),
                            lambda: self._depends_on(client, server))

    def _depends_on(self, client: ResourceRef, server: ResourceRef) -> bool:
        if client.display() == server.display() or client.namespace != server.namespace:
            return False
        info = self.workloads.get((client.namespace or "", client.kind, client.name))
        if info is None:
            return False
        names = self.services_of(server) if server.kind in WORKLOAD_KINDS else ([server.name] if server.kind == "Service" else [])
        return any(mentions_host(key, value, name, client.namespace or "") for name in names for key, value in info.env)

    def users_of_claim(self, namespace: str, claim: str) -> list[ResourceRef]:
        """Top-level workloads whose pods mount a claim (or whose claim templates make it)."""
        users: dict[str, ResourceRef] = {}
        for info in self.workloads.values():
            if info.ref.namespace == namespace and any(claim == c or (c.endswith("-") and claim.startswith(c)) for c in info.claims):
                users[info.ref.display()] = info.ref
        for pod in self.pods.values():
            if pod.namespace == namespace and claim in pod.claims:
                top = pod.owners[-1] if pod.owners else ResourceRef(kind="Pod", name=pod.name, namespace=namespace)
                users[top.display()] = top
        return list(users.values())

    def workloads_on_node(self, node: str) -> dict[str, ResourceRef]:
        """Top-level owners of the pods running on a node, by ``namespace/Kind/name``."""
        return self._cached(("on_node", node), lambda: self._workloads_on_node(node))

    def _workloads_on_node(self, node: str) -> dict[str, ResourceRef]:
        out: dict[str, ResourceRef] = {}
        for pod in self.pods.values():
            if pod.node == node:
                top = pod.owners[-1] if pod.owners else ResourceRef(kind="Pod", name=pod.name, namespace=pod.namespace)
                out[f"{top.namespace}/{top.display()}"] = top
        return out
