"""The causal graph: follow a failure from the workload that shows it to its origin.

The graph (networkx) holds the topology agent's edges (owner chain, Service → workload,
workload → Service it depends on, → config, → node) plus the dependencies the logs
reveal (a client failing to reach ``db:5432`` depends on Service ``db``). For each
client whose logs say it cannot reach a dependency, the origin is looked for along those
edges: the Service routes nowhere (selector), to the wrong port, the dependency is
scaled to zero, a NetworkPolicy cuts the client off, or the dependency itself is down.
The client's own symptoms are then demoted, since they follow from the dependency.
"""

from __future__ import annotations

import networkx as nx

from aisre.api.taxonomy import RootCauseCategory as C
from aisre.ranking.candidate import Candidate
from aisre.ranking.evidence import EvidenceIndex

NETWORK_SIGNATURES = ("connection_refused", "timeout", "dns_failure")
MAX_NODES = 5000


def build_graph(ix: EvidenceIndex) -> nx.DiGraph:
    graph = nx.DiGraph()
    for finding in ix.kind("Edge"):
        if graph.number_of_nodes() >= MAX_NODES:
            break
        graph.add_edge(finding.data["src"], finding.data["dst"], relation=finding.data["relation"], evidence=finding.id)
    for finding in ix.kind("LogSignature"):
        host = finding.data.get("host")
        if finding.data.get("signature") in NETWORK_SIGNATURES + ("auth_failure",) and host:
            graph.add_edge(finding.data["owner"], f"Service/{host}", relation="dependsOn", evidence=finding.id, seen_in="logs")
    return graph


def _backing(graph: nx.DiGraph, service: str) -> list[str]:
    return [dst for _, dst, data in graph.out_edges(service, data=True) if data.get("relation") == "routesTo"]


def dependency_candidates(ix: EvidenceIndex, graph: nx.DiGraph) -> tuple[list[Candidate], dict[str, float]]:
    """Candidates at the origin of dependency failures, and a demotion factor per client."""
    candidates: list[Candidate] = []
    demote: dict[str, float] = {}
    existing_services = {f.data["service"] for f in ix.kind("ServiceSelectorMatchesNothing", "ServiceWithoutReadyEndpoints", "ServicePortMismatch")}
    existing_services |= {n for n in graph.nodes if n.startswith("Service/") and graph.out_degree(n)}
    for finding in ix.kind("LogSignature"):
        signature = finding.data.get("signature")
        host = finding.data.get("host")
        client = finding.data["owner"]
        if signature not in NETWORK_SIGNATURES or not host:
            continue
        service = f"Service/{host}"
        ids = [finding.id]
        if service not in graph or (service not in existing_services and not _backing(graph, service)
                                    and not any(f.data.get("service") == service for f in ix.kind("ServiceSelectorMatchesNothing"))):
            # The name resolves to nothing we can see: the Service is gone (or never existed).
            score = 0.72 if signature == "dns_failure" else 0.5
            candidates.append(Candidate(C.DEPENDENCY_FAILURE, service, score,
                                        f"{client} cannot reach {host}: no Service {host} exists", ids, "dependency"))
            demote[client] = 0.6
            continue
        selector = [f for f in ix.kind("ServiceSelectorMatchesNothing") if f.data.get("service") == service]
        ports = [f for f in ix.kind("ServicePortMismatch") if f.data.get("service") == service]
        if selector:
            candidates.append(Candidate(C.SERVICE_SELECTOR_MISMATCH, service, 0.93, f"{service} selects no pods, so "
                                        f"{client} cannot reach it", ids + [selector[0].id], "dependency"))
            demote[client] = 0.5
            continue
        if ports:
            candidates.append(Candidate(C.SERVICE_PORT_MISMATCH, service, 0.93, f"{service} targets a port its pods do not "
                                        f"expose, so {client} cannot reach it", ids + [ports[0].id], "dependency"))
            demote[client] = 0.5
            continue
        for server in _backing(graph, service):
            policies = [f for f in ix.kind("NetworkPolicyBlocks")
                        if any(b["client"] == client and b["server"] == server for b in f.data.get("blocked") or [])]
            if policies:
                candidates.append(Candidate(C.NETWORK_POLICY_BLOCK, policies[0].data["policy"], 0.92,
                                            f"{policies[0].data['policy']} blocks {client} from reaching {server}",
                                            ids + [policies[0].id], "dependency"))
                demote[client] = 0.5
                continue
            zero = ix.of(server, "WorkloadScaledToZero")
            if zero:
                candidates.append(Candidate(C.SCALED_TO_ZERO, server, 0.9, f"{server}, which {client} needs, is scaled to zero",
                                            ids + [zero[0].id], "dependency"))
                candidates.append(Candidate(C.DEPENDENCY_FAILURE, server, 0.7, f"{client} fails because {server} is down",
                                            ids + [zero[0].id], "dependency"))
                demote[client] = 0.5
                continue
            if ix.impacted(server):
                evidence = [f.id for f in ix.of(server) if f.kind in ("WorkloadUnavailable", "ContainerWaiting", "ContainerNotReady")][:3]
                candidates.append(Candidate(C.DEPENDENCY_FAILURE, server, 0.86, f"{client} fails because its dependency "
                                            f"{server} (behind {service}) is down", ids + evidence, "dependency"))
                candidates.append(Candidate(C.DEPENDENCY_FAILURE, service, 0.6, f"{service} has no healthy backend for {client}",
                                            ids + evidence, "dependency"))
                demote[client] = 0.5
            else:
                candidates.append(Candidate(C.DEPENDENCY_FAILURE, server, 0.45, f"{client} reports failures reaching {server}",
                                            ids, "dependency"))
    # A Service with no ready endpoints that clients depend on by config, even without logs.
    for finding in ix.kind("ServiceWithoutReadyEndpoints"):
        service = finding.data["service"]
        clients = [src for src, _, data in graph.in_edges(service, data=True) if data.get("relation") == "dependsOn"]
        for server in finding.data.get("backing") or []:
            hurting = [c for c in clients if ix.impacted(c)]
            zero = ix.of(server, "WorkloadScaledToZero")
            if not hurting or not ix.impacted(server):
                continue
            if zero:
                candidates.append(Candidate(C.SCALED_TO_ZERO, server, 0.9, f"{server} is scaled to zero; "
                                            f"{', '.join(hurting[:3])} depend on it and fail", [finding.id, zero[0].id], "dependency"))
            else:
                candidates.append(Candidate(C.DEPENDENCY_FAILURE, server, 0.8, f"{service} has no ready endpoints; "
                                            f"{', '.join(hurting[:3])} depend on it and fail", [finding.id], "dependency"))
            for client in hurting:
                demote[client] = min(demote.get(client, 1.0), 0.6)
    return candidates, demote


def origins(ix: EvidenceIndex) -> tuple[list[Candidate], dict[str, float], nx.DiGraph]:
    graph = build_graph(ix)
    candidates, demote = dependency_candidates(ix, graph)
    return candidates, demote, graph
