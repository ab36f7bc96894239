"""A candidate root cause, as fault patterns and the causal graph propose it."""

from __future__ import annotations

from dataclasses import dataclass, field

from aisre.api.taxonomy import RootCauseCategory


@dataclass(frozen=True)
class Link:
    """One step of the chain from the workload that hurts to the root: an object and the
    evidence that ties it to the step before."""

    ref: str
    evidence_ids: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    category: RootCauseCategory
    resource: str  # Kind/name; "" for NoFault
    score: float  # evidence strength, 0..1, before calibration
    summary: str
    evidence_ids: list[str] = field(default_factory=list)
    pattern: str = ""
    chain: list[Link] = field(default_factory=list)  # client → Service → workload → change

    @property
    def key(self) -> tuple[str, str]:
        return (self.category.value, self.resource)
