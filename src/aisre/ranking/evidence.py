"""An index over the findings of one investigation, for fault patterns to query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from aisre.api.evidence import Finding

# Finding kinds that say a workload is hurting right now (not a memory of the past).
IMPACT_KINDS = {
    "ContainerWaiting", "ContainerNotReady", "PodUnschedulable", "PodEvicted", "PodFailed",
    "WorkloadUnavailable", "WorkloadScaledToZero", "ReplicaFailure", "RolloutStalled", "JobFailed",
    "InitContainerRunning",
    # The metrics agent's findings hold only while the anomaly lasts (its recent window).
    "CPUSaturated", "CPUThrottled", "MemoryNearLimit", "MemoryGrowing", "ErrorRateHigh", "LatencyHigh",
}


class EvidenceIndex:
    def __init__(self, findings: Iterable[Finding], namespace: str) -> None:
        self.namespace = namespace
        self.all: list[Finding] = list(findings)
        self.by_id = {f.id: f for f in self.all}
        self.by_kind: dict[str, list[Finding]] = defaultdict(list)
        self.by_owner: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.all:
            self.by_kind[finding.kind].append(finding)
            owner = finding.data.get("owner")
            if owner:
                self.by_owner[owner].append(finding)

    def kind(self, *kinds: str) -> Iterator[Finding]:
        for kind in kinds:
            yield from self.by_kind.get(kind, [])

    def of(self, owner: str, *kinds: str) -> list[Finding]:
        return [f for f in self.by_owner.get(owner, []) if not kinds or f.kind in kinds]

    def impacted(self, owner: str) -> bool:
        """Whether the workload is hurting now: pods waiting, not ready, unschedulable,
        or fewer available replicas than desired."""
        for finding in self.of(owner):
            if finding.kind == "WorkloadUnavailable" and finding.data.get("available", 0) >= finding.data.get("desired", 0):
                continue
            if finding.kind == "ContainerWaiting" and finding.data.get("reason") in ("ContainerCreating", "PodInitializing"):
                continue
            if finding.kind in IMPACT_KINDS:
                return True
            if finding.kind == "ContainerTerminated" and finding.data.get("current"):
                return True
        return False

    def impacted_owners(self) -> list[str]:
        return sorted(owner for owner in self.by_owner if self.impacted(owner))

    def edges(self, relation: str) -> list[tuple[str, str, dict]]:
        return [(f.data["src"], f.data["dst"], f.data) for f in self.kind("Edge") if f.data.get("relation") == relation]

    def template_change(self, owner: str) -> Finding | None:
        changes = self.of(owner, "TemplateChange")
        return changes[-1] if changes else None

    def changed_fields(self, owner: str) -> set[str]:
        change = self.template_change(owner)
        return set(change.data.get("fields", [])) if change else set()
