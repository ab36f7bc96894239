"""An index over the findings of one investigation, for fault patterns to query."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator

import re

from aisre.api.evidence import PEER_SIGNATURES, Finding

# Finding kinds that say a workload is hurting right now (not a memory of the past).
IMPACT_KINDS = {
    "ContainerWaiting", "ContainerNotReady", "PodUnschedulable", "PodEvicted", "PodFailed",
    "WorkloadUnavailable", "WorkloadScaledToZero", "ReplicaFailure", "RolloutStalled", "JobFailed",
    "InitContainerRunning", "ServingErrors",
    # The metrics agent's findings hold only while the anomaly lasts (its recent window).
    "CPUSaturated", "CPUThrottled", "MemoryNearLimit", "MemoryGrowing", "ErrorRateHigh", "LatencyHigh",
}


LIVENESS_KILL = re.compile(r"liveness probe|startup probe", re.I)
# Below the crash-loop threshold, what still says a workload hurts now (within the window):
RECENT_OOM_RESTARTS = 2  # OOM kills that brought the container back this many times
LIVENESS_KILLS = 2  # the kubelet killing it for failed liveness probes this often
PERSISTENT_PEER_ERRORS = 2  # log lines reporting a named peer unreachable or refusing, still in the tail


PERSISTENT_ERROR_LINES = 3  # error lines in a current log, some of them in its tail, to count as ongoing
PERSISTENT_ERROR_SHARE = 0.3


def persistent_errors(finding: Finding) -> bool:
    """A current log (``LogTemplates``) whose errors go on to its end and are a real share of it."""
    data = finding.data
    errors, lines = int(data.get("error_lines") or 0), int(data.get("lines") or 0)
    return (finding.kind == "LogTemplates" and not data.get("previous") and errors >= PERSISTENT_ERROR_LINES
            and int(data.get("recent_error_lines") or 0) >= 1 and lines > 0 and errors / lines >= PERSISTENT_ERROR_SHARE)


class EvidenceIndex:
    def __init__(self, findings: Iterable[Finding], namespace: str) -> None:
        self.namespace = namespace
        self.all: list[Finding] = list(findings)
        self.by_id = {f.id: f for f in self.all}
        self.by_kind: dict[str, list[Finding]] = defaultdict(list)
        self.by_owner: dict[str, list[Finding]] = defaultdict(list)
        self.by_service: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.all:
            self.by_kind[finding.kind].append(finding)
            if finding.data.get("service") and finding.kind != "ServicePorts":
                self.by_service[finding.data["service"]].append(finding)
            owner = finding.data.get("owner")
            if owner:
                self.by_owner[owner].append(finding)

    def kind(self, *kinds: str) -> Iterator[Finding]:
        for kind in kinds:
            yield from self.by_kind.get(kind, [])

    def of(self, owner: str, *kinds: str) -> list[Finding]:
        return [f for f in self.by_owner.get(owner, []) if not kinds or f.kind in kinds]

    def of_service(self, service: str) -> list[Finding]:
        """What the topology agent found wrong with a Service (selector, ports, endpoints)."""
        return self.by_service.get(service, [])

    def impacted(self, owner: str) -> bool:
        """Whether the workload is hurting now: pods waiting, not ready, unschedulable,
        or fewer available replicas than desired. A CronJob's run that a later one
        superseded, and a workload at zero replicas whose twin (another workload running the
        same program) serves, do not hurt."""
        if self.of(owner, "JobSuperseded"):
            return False
        for finding in self.of(owner):
            if finding.kind == "WorkloadScaledToZero" and (self.healthy_twins(owner) or self.idle_at_zero(owner)):
                continue
            # Every pod Ready (availability waits out minReadySeconds during a rollout) is not an outage.
            if finding.kind == "WorkloadUnavailable" and max(finding.data.get("available") or 0,
                                                             finding.data.get("ready") or 0) >= (finding.data.get("desired") or 0):
                continue
            if finding.kind == "ContainerWaiting" and finding.data.get("reason") in ("ContainerCreating", "PodInitializing"):
                continue
            if finding.kind in IMPACT_KINDS:
                return True
            if finding.kind == "ContainerTerminated" and finding.data.get("current"):
                return True
            if self.restarting_now(finding) or self.persistent_peer_errors(finding):
                return True
        return self.liveness_kills(owner) >= LIVENESS_KILLS

    def idle_at_zero(self, owner: str) -> bool:
        """At zero replicas since before the window, and nothing depends on it: an idle worker
        (scaled to zero by its autoscaler or by hand), whose Service, if any, no one uses."""
        return not self.of(owner, "ReplicasChanged") and not self.dependents_through_services(owner)[1]

    def dependents_through_services(self, owner: str) -> tuple[list[str], list[str]]:
        """The Services that route to the owner, and the workloads that depend on those Services."""
        routed = [src for src, dst, _ in self.edges("routesTo") if dst == owner]
        return routed, [src for src, dst, _ in self.edges("dependsOn") if dst in routed]

    @staticmethod
    def restarting_now(finding: Finding) -> bool:
        """A container back up after recent OOM kills: each kill is an outage now."""
        data = finding.data
        oom = data.get("reason") == "OOMKilled" or data.get("exit_code") == 137
        return (finding.kind == "ContainerTerminated" and not data.get("current") and bool(data.get("recent"))
                and oom and int(data.get("restarts") or 0) >= RECENT_OOM_RESTARTS)

    @staticmethod
    def persistent_peer_errors(finding: Finding) -> bool:
        """Errors to a named peer that go on to the end of the current log (not a past burst)."""
        data = finding.data
        return (finding.kind == "LogSignature" and not data.get("previous") and data.get("signature") in PEER_SIGNATURES
                and bool(data.get("host") or data.get("port")) and int(data.get("count") or 0) >= PERSISTENT_PEER_ERRORS
                and int(data.get("recent") or 0) >= 1)

    def labels_of(self, owner: str) -> dict[str, str]:
        """The labels of the owner's pods (its template's), as the topology agent saw them."""
        found = self.of(owner, "PodLabels")
        return dict(found[0].data.get("labels") or {}) if found else {}

    def healthy_twins(self, owner: str) -> list[str]:
        """Other workloads that run the same program as the owner and are healthy: a canary's
        primary, the live colour of a blue/green pair."""
        twins = {f.data["dst"] for f in self.edges_of(owner, "twinOf")}
        # A twin stands in only where the owner's clients reach it: if something uses a Service in
        # front of the owner (a client, an Ingress), the twin must be behind that Service too. A
        # canary behind its own Service serves none of the stable track's users.
        used = {service for service, workload in self._routes if workload == owner} & self._depended_on
        if used:
            twins = {t for t in twins if any((service, t) in self._routes for service in used)}
        return sorted(t for t in twins if self.of(t, "WorkloadHealthy"))

    @functools.cached_property
    def _depended_on(self) -> set[str]:
        return {dst for _, dst, _ in self.edges("dependsOn")}

    @functools.cached_property
    def _routes(self) -> set[tuple[str, str]]:
        return {(src, dst) for src, dst, _ in self.edges("routesTo")}

    def edges_of(self, src: str, relation: str) -> list[Finding]:
        return [f for f in self.kind("Edge") if f.data.get("src") == src and f.data.get("relation") == relation]

    def liveness_kills(self, owner: str) -> int:
        return sum(int(e.data.get("count") or 1) for e in self.of(owner, "Event")
                   if e.data.get("reason") == "Killing" and LIVENESS_KILL.search(" ".join(e.data.get("messages") or [e.data.get("message", "")])))

    def impacted_owners(self) -> list[str]:
        owners = {owner for owner in self.by_owner if self.impacted(owner)}
        # An Ingress whose Service routes nowhere cuts its users off: that hurts now too.
        owners |= {src for src, dst, _ in self.edges("dependsOn") if src.startswith("Ingress/") and self.routes_nowhere(dst)}
        return sorted(owners)

    def routes_nowhere(self, service: str) -> bool:
        return any(f.kind in ("ServiceSelectorMatchesNothing", "ServicePortMismatch", "ServiceWithoutReadyEndpoints")
                   for f in self.of_service(service))

    def edges(self, relation: str) -> list[tuple[str, str, dict]]:
        return [(f.data["src"], f.data["dst"], f.data) for f in self.kind("Edge") if f.data.get("relation") == relation]

    def template_change(self, owner: str) -> Finding | None:
        changes = self.of(owner, "TemplateChange")
        return changes[-1] if changes else None

    def changed_fields(self, owner: str) -> set[str]:
        change = self.template_change(owner)
        return set(change.data.get("fields", [])) if change else set()
