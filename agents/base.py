"""What every agent shares: its context (the reader, the resolved scope, the window and
the bounds) and a collector that turns observations into findings with stable ids.

Not an agent itself: the independence contract covers the agent modules only, and each
of them may use this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aisre.api.evidence import AgentResult, Finding, finding_id
from aisre.api.investigation import AgentStatus
from aisre.api.meta import ResourceRef
from aisre.kube.reader import ClusterReader
from aisre.kube.scope import Scope


@dataclass(frozen=True)
class Bounds:
    """Caps that keep an investigation cheap and its status small."""

    log_bytes_per_container: int = 64 * 1024
    log_bytes_total: int = 1024 * 1024
    log_pods: int = 24
    events: int = 2000
    findings_per_agent: int = 120


@dataclass
class AgentContext:
    reader: ClusterReader
    scope: Scope
    window_start: dt.datetime
    now: dt.datetime
    bounds: Bounds = field(default_factory=Bounds)


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def resource_of(obj: dict[str, Any]) -> ResourceRef:
    return ResourceRef(kind=obj.get("kind", "?"), name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))


class Findings:
    """Collects one agent's findings; ids are stable hashes of structured fields."""

    def __init__(self, agent: str, limit: int) -> None:
        self.agent = agent
        self.limit = limit
        self.items: dict[str, Finding] = {}
        self.dropped = 0

    def add(
        self,
        kind: str,
        summary: str,
        *,
        key: tuple[str, ...],
        resource: ResourceRef | None = None,
        time: dt.datetime | None = None,
        **data: Any,
    ) -> Finding | None:
        fid = finding_id(self.agent, kind, *key)
        if fid in self.items:
            return self.items[fid]
        if len(self.items) >= self.limit:
            self.dropped += 1
            return None
        finding = Finding(id=fid, agent=self.agent, kind=kind, summary=summary[:1000], resource=resource, time=time, data=data)
        self.items[fid] = finding
        return finding

    def result(self, *, message: str = "", truncated: list[str] | None = None) -> AgentResult:
        cut = list(truncated or [])
        if self.dropped:
            cut.append(f"{self.agent}: {self.dropped} findings over the cap of {self.limit}")
        return AgentResult(
            agent=self.agent,
            status=AgentStatus.SUCCESS if self.items else AgentStatus.NO_DATA,
            findings=list(self.items.values()),
            message=message,
            truncated=cut,
        )
