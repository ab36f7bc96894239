"""A candidate root cause, as fault patterns and the causal graph propose it."""

from __future__ import annotations

from dataclasses import dataclass, field

from aisre.api.taxonomy import RootCauseCategory


@dataclass
class Candidate:
    category: RootCauseCategory
    resource: str  # Kind/name; "" for NoFault
    score: float  # evidence strength, 0..1, before calibration
    summary: str
    evidence_ids: list[str] = field(default_factory=list)
    pattern: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.category.value, self.resource)
