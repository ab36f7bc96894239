"""The metric fault patterns on synthetic findings: which cause each metrics finding (or
combination) points at, and that a healthy namespace with metrics stays NoFault."""

from __future__ import annotations

import datetime as dt
import itertools

from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.ranking.rank import rank

_ids = itertools.count()
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def f(kind: str, owner: str, agent: str = "metrics", at: float | None = None, **data) -> Finding:
    kind_, _, name = owner.partition("/")
    return Finding(id=f"m-{next(_ids)}", agent=agent, kind=kind, summary=kind, data={"owner": owner, **data},
                   resource=ResourceRef(kind=kind_, name=name, namespace="ns"),
                   time=T0 + dt.timedelta(seconds=at) if at is not None else None)


def edges(client: str, service: str, server: str) -> list[Finding]:
    return [Finding(id=f"e-{next(_ids)}", agent="topology", kind="Edge", summary="", data=d) for d in (
        {"src": client, "dst": service, "relation": "dependsOn"}, {"src": service, "dst": server, "relation": "routesTo"})]


def top(findings: list[Finding]) -> tuple[str, str]:
    h = rank(findings, "ns")[0]
    return h.category.value, h.resource


def healthy(owner: str) -> Finding:
    return f("WorkloadHealthy", owner, agent="workloads", desired=2, available=2)


def test_memory_near_the_limit_without_growth_is_the_limit_and_growth_is_a_leak() -> None:
    d = "Deployment/api"
    assert top([healthy(d), f("MemoryNearLimit", d, ratio=0.95)]) == ("MemoryLimitTooLow", d)
    assert top([healthy(d), f("MemoryGrowing", d), f("MemoryNearLimit", d, ratio=0.95)]) == ("MemoryLeak", d)
    # A rollout that changed resources: the new limit is the cause even if memory rises.
    change = f("TemplateChange", d, agent="changes", fields=["resources"])
    assert top([healthy(d), change, f("MemoryGrowing", d), f("MemoryNearLimit", d, ratio=0.95)]) == ("MemoryLimitTooLow", d)


def test_errors_after_a_new_image_are_the_application_and_latency_too() -> None:
    d = "Deployment/pricing"
    change = f("TemplateChange", d, agent="changes", fields=["image"])
    assert top([healthy(d), change, f("ErrorRateHigh", d, at=-120)]) == ("ApplicationError", d)
    slow = rank([healthy(d), change, f("LatencyHigh", d, at=-120)], "ns")[0]
    assert (slow.category.value, slow.resource) == ("ApplicationError", d) and slow.confidence >= 0.8


def test_the_dependency_must_have_started_first() -> None:
    client, server = "Deployment/orders", "Deployment/payments"
    graph = edges(client, "Service/payments", server)
    first = [f("ErrorRateHigh", server, at=-360), f("ErrorRateHigh", client, at=-300)]
    assert top(graph + first) == ("DependencyFailure", server)
    # The client's errors began ten minutes before the server's: the server is not the origin.
    later = [f("ErrorRateHigh", server, at=-60), f("ErrorRateHigh", client, at=-660)]
    assert top(graph + later) != ("DependencyFailure", server)


def test_a_cpu_bound_dependency_is_the_origin_of_its_callers_latency() -> None:
    client, server = "Deployment/accounts", "StatefulSet/postgres"
    findings = edges(client, "Service/postgres", server) + [
        f("CPUSaturated", server, at=-600, ratio=0.98), f("LatencyHigh", client, at=-480)]
    ranked = [(h.category.value, h.resource) for h in rank(findings, "ns")[:3]]
    assert ranked[0] == ("DependencyFailure", server) and ("CPUSaturation", server) in ranked


def test_metrics_that_are_normal_leave_no_fault() -> None:
    d = "Deployment/web"
    # Series read, nothing abnormal: the agent returns no findings; a request-rate drop or
    # restarts alone do not make a workload "hurting now".
    assert top([healthy(d)]) == ("NoFault", "")
    assert top([healthy(d), f("RequestRateDrop", d, at=-300)])[0] == "NoFault"
