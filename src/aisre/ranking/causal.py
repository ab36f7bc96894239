"""The causal graph: follow a failure from the workload that shows it to its origin.

The graph (networkx) holds the topology agent's edges (owner chain, Service → workload,
workload → Service it depends on, named in env or config, Ingress → Service, → config,
→ node) plus the dependencies the logs reveal (a client failing to reach ``db:5432``
depends on Service ``db``). Two kinds of failure are followed to the peer:

- the peer cannot be reached (refused, timed out, not resolved): the Service routes
  nowhere (selector), to the wrong port, the dependency is scaled to zero, a
  NetworkPolicy cuts the client off, or the dependency itself is down;
- the peer answers and refuses (credentials, TLS, no capacity, none of its servers
  usable, 5xx): the root is on the peer's side — the change that broke it (its
  ConfigMap or Secret, its rollout), or the peer itself — unless the client changed.

A line that names no host (``password authentication failed for user "app"``) is
matched to the dependencies the client's env and config name, by the protocol the line
speaks. The client's own symptoms are then demoted, since they follow from the
dependency, and every candidate carries the chain of links that leads to it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import networkx as nx

from aisre.api.evidence import NETWORK_SIGNATURES, PEER_SIGNATURES, REFUSAL_SIGNATURES, Finding
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube import netpol
from aisre.ranking.candidate import Candidate, Link
from aisre.ranking.evidence import PERSISTENT_PEER_ERRORS, EvidenceIndex

MAX_NODES = 5000
# Template fields that configure a program rather than change it.
CONFIG_FIELDS = frozenset({"env", "envFrom", "args", "restartedAt"})
CLIENT_DEMOTION = 0.5
HISTORY_WEIGHT = 0.5  # a dependency's failure that the client's current log no longer shows
SINGLE_LINE_WEIGHT = 0.85  # one such line, still at the end of the client's current log

# What a host-less line's wording says about the peer it talks to: words in the Service's
# name or in the env keys that name it, and the protocol's well-known ports.
PROTOCOL_HINTS: list[tuple[re.Pattern[str], tuple[str, ...], tuple[int, ...]]] = [
    (re.compile(r"postgres|psql|\bpq:|pg_hba|SQLSTATE|FATAL:\s+(password|role|database|no pg_hba)"
                r"|too many clients already|remaining connection slots are reserved", re.I),
     ("postgres", "pg", "psql", "database", "db", "sql"), (5432,)),
    (re.compile(r"mysql|mariadb|access denied for user", re.I), ("mysql", "mariadb", "database", "db", "sql"), (3306,)),
    (re.compile(r"redis|NOAUTH|WRONGPASS|READONLY|LOADING|maxmemory|max number of clients reached", re.I),
     ("redis", "cache", "session"), (6379,)),
    (re.compile(r"mongo", re.I), ("mongo",), (27017,)),
    (re.compile(r"kafka|broker|SASL", re.I), ("kafka", "broker"), (9092, 9093)),
    (re.compile(r"amqp|rabbit", re.I), ("rabbit", "amqp", "mq"), (5672,)),
    (re.compile(r"elasticsearch|opensearch", re.I), ("elastic", "opensearch", "search"), (9200,)),
    (re.compile(r"memcache", re.I), ("memcache", "cache"), (11211,)),
]


def build_graph(ix: EvidenceIndex) -> nx.DiGraph:
    graph = nx.DiGraph()
    for finding in ix.kind("Edge"):
        if graph.number_of_nodes() >= MAX_NODES:
            break
        graph.add_edge(finding.data["src"], finding.data["dst"], relation=finding.data["relation"], evidence=finding.id)
    for finding in ix.kind("LogSignature"):
        service = resolve_service(ix, finding)
        if finding.data.get("signature") in PEER_SIGNATURES and service:
            graph.add_edge(finding.data["owner"], service, relation="dependsOn", evidence=finding.id, seen_in="logs")
    return graph


def known_services(ix: EvidenceIndex) -> dict[str, list]:
    """The Services that exist in scope, with their ports."""
    return {f.data["service"]: list(f.data.get("ports") or []) for f in ix.kind("ServicePorts")}


def resolve_service(ix: EvidenceIndex, finding: Finding) -> str | None:
    """The Service a log line's host names: the first of its DNS labels that is a Service
    in scope (``orders-db``, ``mongo-0.mongo-headless``), else its first label."""
    host = finding.data.get("host")
    if not host:
        return None
    services = known_services(ix)
    labels = (finding.data.get("fqdn") or host).split(".")
    for label in labels[:2]:
        if f"Service/{label}" in services:
            return f"Service/{label}"
    return f"Service/{host}"


def _dependencies(graph: nx.DiGraph, client: str) -> list[tuple[str, str]]:
    """(Service, edge evidence id) the client depends on by env, config or an Ingress."""
    return [(dst, data.get("evidence", "")) for _, dst, data in graph.out_edges(client, data=True)
            if data.get("relation") == "dependsOn" and data.get("seen_in") != "logs"]


def peer_by_echo(graph: nx.DiGraph, client: str, peer: str) -> str | None:
    """The Service by which the client reaches ``peer`` (a program whose own log holds the
    client's error text), if the client depends on one."""
    for _, service, data in graph.out_edges(client, data=True) if client in graph else ():
        if data.get("relation") == "dependsOn" and peer in _backing(graph, service):
            return service
    return None


def peer_by_protocol(ix: EvidenceIndex, graph: nx.DiGraph, finding: Finding) -> tuple[str, list[str], bool] | None:
    """For a line that names no host: the one dependency of the client its wording fits, and
    whether only a word of the line tied it there (the weakest tie: the client's only
    dependency, or the one its protocol's wording fits, are firmer)."""
    deps = _dependencies(graph, finding.data["owner"])
    if len(deps) == 1:
        return deps[0][0], [deps[0][1]], False
    sample = finding.data.get("sample", "")
    ports = known_services(ix)
    via = {f.data["dst"]: " ".join(f.data.get("via") or []) for f in ix.kind("Edge")
           if f.data.get("src") == finding.data["owner"] and f.data.get("relation") == "dependsOn"}
    for pattern, words, wellknown in PROTOCOL_HINTS:
        if not pattern.search(sample):
            continue
        fits = [(service, eid) for service, eid in deps
                if set(ports.get(service, [])) & set(wellknown)
                or any(w in service.split("/", 1)[1].lower() or w in via.get(service, "").lower() for w in words)]
        if len(fits) == 1:
            return fits[0][0], [fits[0][1]], False
    # "failed to get ads: ...", "calling inventory failed": the one dependency the words name.
    words = set(re.findall(r"[a-z][a-z0-9]{3,}", sample.lower()))
    fits = [(service, eid) for service, eid in deps
            if words & {w for w in re.split(r"[-_.]", service.split("/", 1)[1].lower()) if len(w) >= 4} - GENERIC_WORDS]
    if len(fits) == 1:
        return fits[0][0], [fits[0][1]], True
    return None


# Name parts too common to say which dependency a line means.
GENERIC_WORDS = {"service", "server", "svc", "api", "backend", "http", "grpc", "internal", "headless", "master", "primary",
                 "main", "default", "client", "proxy", "gateway", "worker", "node", "cluster", "data"}


def peer_by_port(ix: EvidenceIndex, graph: nx.DiGraph, finding: Finding) -> tuple[str, list[str]] | None:
    """For a line that names its peer only by address (an IP, or loopback): the Service on
    that port — among the client's dependencies first, else the one Service in scope."""
    port, client = finding.data.get("port"), finding.data["owner"]
    if not port:
        return None
    ports = known_services(ix)
    deps = _dependencies(graph, client)
    fits = [(service, eid) for service, eid in deps if port in ports.get(service, [])]
    if not fits:
        own = {service for service, server, _ in ix.edges("routesTo") if server == client}
        fits = [(service, "") for service, served in ports.items() if port in served and service not in own]
    if len(fits) == 1:
        return fits[0][0], [fits[0][1]], True
    return None


def _backing(graph: nx.DiGraph, service: str) -> list[str]:
    return [dst for _, dst, data in graph.out_edges(service, data=True) if data.get("relation") == "routesTo"]


def _own_change(ix: EvidenceIndex, owner: str) -> list[Finding]:
    """What changed on the workload's side: its configuration, or its rollout's env."""
    changed = [c for c in ix.kind("ConfigChanged") if owner in (c.data.get("used_by") or [])]
    change = ix.template_change(owner)
    if change is not None and ix.changed_fields(owner) & {"env", "envFrom"}:
        changed.append(change)
    return changed


def _policies(ix: EvidenceIndex) -> list[tuple[str, dict]]:
    return [(p.data["policy"], p.data.get("spec") or {}) for p in ix.kind("NetworkPolicy")]


def _destination_ports(ix: EvidenceIndex, service: str, port: object) -> list[netpol.DestPort]:
    """The server's pod ports the client reaches through the Service: the one behind the port
    its log names, else any the Service leads to."""
    found = next((f for f in ix.kind("ServicePorts") if f.data["service"] == service), None)
    if found is None:
        return []
    targets = [(t[0], t[1], t[2]) for t in found.data.get("targets") or []]
    served = list(found.data.get("ports") or [])
    port = int(port) if isinstance(port, str) and port.isdigit() else port
    if port in served and len(served) == len(targets):
        return [targets[served.index(port)]]
    return targets


def _policies_between(ix: EvidenceIndex, client: str, server: str, service: str = "", port: object = None) -> list[Finding]:
    """The NetworkPolicy that stops the client's pods from reaching the server's, if any."""
    client_labels, server_labels = ix.labels_of(client), ix.labels_of(server)
    if not client_labels and not server_labels:
        return []
    found = {p.data["policy"]: p for p in ix.kind("NetworkPolicy")}
    ports = _destination_ports(ix, service, port) if service else []
    return [Finding(id=found[name].id, agent=found[name].agent, kind="NetworkPolicyBlocks", summary=found[name].summary,
                    resource=found[name].resource,
                    data={"policy": name, "blocked": [{"client": client, "server": server, "direction": direction}]})
            for name, direction in netpol.blockers(_policies(ix), client_labels, server_labels, ports)[:1]]


def _changed_object(change: Finding) -> str:
    """The object a change finding is about: the ConfigMap or Secret, or the workload whose rollout it is."""
    if change.kind == "ConfigChanged":
        return f"{change.data['config_kind']}/{change.data['name']}"
    return change.data["owner"]


# A client that starts with its server dials before the server listens; refusals that all
# came within this many seconds before the server's first pod became Ready, and none since,
# are that race (the client retries and is served), not a port that reaches no listener.
STARTUP_RACE_S = 300.0
# A Ready pod is reachable through its Service only once kube-proxy has programmed the new
# endpoints (a second or so, more under load): refusals this soon after Ready are the race too.
ENDPOINTS_LAG_S = 10.0


def refused_while_starting(finding: Finding, healthy: list[Finding]) -> bool:
    last, since = _naive(finding.data.get("last_at")), _naive(healthy[0].data.get("serving_since") if healthy else None)
    if last is None or since is None:
        return False
    return -ENDPOINTS_LAG_S <= (since - last).total_seconds() <= STARTUP_RACE_S


def _naive(value: str | None) -> dt.datetime | None:
    """An ISO time as naive UTC (a log line's own clock carries no zone; Kubernetes' is UTC)."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


@dataclass
class _Origins:
    candidates: list[Candidate]
    demote: dict[str, float]
    weight: float = 1.0  # of the line being followed: errors that ended are history, not a fault

    def add(self, category: C, resource: str, score: float, summary: str, ids: list[str], chain: list[Link]) -> None:
        if self.weight <= HISTORY_WEIGHT:
            summary += " (earlier; the client's log is clean since)"
        self.candidates.append(Candidate(category, resource, score * self.weight, summary,
                                         list(dict.fromkeys(i for i in ids if i)), "dependency", chain=chain))

    def demote_client(self, ix: EvidenceIndex, client: str, factor: float = CLIENT_DEMOTION) -> None:
        # A client whose own config changed is a suspect itself, not only a victim.
        if not _own_change(ix, client):
            self.demote[client] = min(self.demote.get(client, 1.0), factor)


def _unreachable(ix: EvidenceIndex, graph: nx.DiGraph, out: _Origins, finding: Finding, service: str,
                 link: list[Link]) -> None:
    """The client cannot reach the peer: find what is broken on the way."""
    client, signature, ids = finding.data["owner"], finding.data.get("signature"), [finding.id]
    host = service.split("/", 1)[1]
    services = known_services(ix)
    if signature == "dns_failure":
        # Names do not resolve because a policy keeps the client from asking DNS at all.
        blind = netpol.blocks_dns(_policies(ix), ix.labels_of(client))
        if blind:
            policy = blind[0]
            evidence = [p.id for p in ix.kind("NetworkPolicy") if p.data["policy"] == policy]
            out.add(C.NETWORK_POLICY_BLOCK, policy, 0.9, f"{policy} lets {client} send no DNS queries, so it cannot "
                    f"resolve {host}", ids + evidence, link + [Link(policy, evidence)])
            out.demote_client(ix, client)
            return
    own = _own_change(ix, client)
    if service not in services and not _backing(graph, service) and not ix.of_service(service):
        # The name resolves to nothing we can see: the Service is gone (or never existed) —
        # or the client's own changed config now names a place that is not there.
        for change in own:
            obj = _changed_object(change)
            out.add(C.BAD_CONFIG_CHANGE, obj, 0.86, f"{obj} changed and {client} now looks for {host}, which does not exist",
                    ids + [change.id], link + [Link(obj, [change.id])])
        out.add(C.DEPENDENCY_FAILURE, service, (0.72 if signature == "dns_failure" else 0.5) * (0.7 if own else 1.0),
                f"{client} cannot reach {host}: no Service {host} exists", ids, link)
        out.demote_client(ix, client, 0.6)
        return
    port = finding.data.get("port")
    if port and services.get(service) and port not in services[service] and finding.data.get("host"):
        # The Service is there but not on the port the client dials: the client's config is wrong.
        for change in own or [None]:
            obj = _changed_object(change) if change is not None else client
            out.add(C.BAD_CONFIG_CHANGE, obj, 0.86 if change is not None else 0.62,
                    f"{client} dials {host}:{port}, but {service} serves {services[service]}"
                    + (f"; {obj} changed" if change is not None else ""), ids + ([change.id] if change is not None else []),
                    link + [Link(obj, [change.id] if change is not None else [])])
        out.demote_client(ix, client, 0.8)
        return
    selector = [f for f in ix.of_service(service) if f.kind == "ServiceSelectorMatchesNothing"]
    ports = [f for f in ix.of_service(service) if f.kind == "ServicePortMismatch"]
    if selector:
        out.add(C.SERVICE_SELECTOR_MISMATCH, service, 0.93, f"{service} selects no pods, so {client} cannot reach it",
                ids + [selector[0].id], link + [Link(service, [selector[0].id])])
        out.demote_client(ix, client)
        return
    if ports:
        out.add(C.SERVICE_PORT_MISMATCH, service, 0.93, f"{service} targets a port its pods do not expose, so {client} "
                "cannot reach it", ids + [ports[0].id], link + [Link(service, [ports[0].id])])
        out.demote_client(ix, client)
        return
    for server in _backing(graph, service):
        chain = link + [Link(service, [graph.edges[service, server].get("evidence", "")])]
        policies = [f for f in ix.kind("NetworkPolicyBlocks")
                    if any(b["client"] == client and b["server"] == server for b in f.data.get("blocked") or [])]
        policies = policies or _policies_between(ix, client, server, service, finding.data.get("port"))
        if policies:
            out.add(C.NETWORK_POLICY_BLOCK, policies[0].data["policy"], 0.92,
                    f"{policies[0].data['policy']} blocks {client} from reaching {server}", ids + [policies[0].id],
                    chain + [Link(server, []), Link(policies[0].data["policy"], [policies[0].id])])
            out.demote_client(ix, client)
            continue
        zero = ix.of(server, "WorkloadScaledToZero")
        if zero:
            out.add(C.SCALED_TO_ZERO, server, 0.9, f"{server}, which {client} needs, is scaled to zero",
                    ids + [zero[0].id], chain + [Link(server, [zero[0].id])])
            out.add(C.DEPENDENCY_FAILURE, server, 0.7, f"{client} fails because {server} is down", ids + [zero[0].id],
                    chain + [Link(server, [zero[0].id])])
            out.demote_client(ix, client)
            continue
        if signature == "connection_refused" and refused_while_starting(finding, ix.of(server, "WorkloadHealthy")):
            # The client dialled before its server was up: a start-up race, over since. What
            # troubles the server now (a rollout's new pod crash-looping beside the old one that
            # serves) is its own evidence's to say, not these refusals'.
            continue
        if ix.impacted(server):
            evidence = [f.id for f in ix.of(server) if f.kind in ("WorkloadUnavailable", "ContainerWaiting", "ContainerNotReady")][:3]
            out.add(C.DEPENDENCY_FAILURE, server, 0.86, f"{client} fails because its dependency {server} (behind {service}) "
                    "is down", ids + evidence, chain + [Link(server, evidence)])
            out.add(C.DEPENDENCY_FAILURE, service, 0.6, f"{service} has no healthy backend for {client}", ids + evidence, chain)
            out.demote_client(ix, client)
        elif signature == "connection_refused" and not finding.data.get("loopback") and ix.of(server, "WorkloadHealthy"):
            # Refused by a Service whose pods are all up: nothing listens where it sends the
            # client (its targetPort), even when the containers declare no ports to compare.
            out.add(C.SERVICE_PORT_MISMATCH, service, 0.8, f"{client} is refused by {service} while {server} is healthy: "
                    "the Service's targetPort reaches no listener", ids, chain + [Link(server, [])])
            out.add(C.DEPENDENCY_FAILURE, server, 0.45, f"{client} reports failures reaching {server}", ids,
                    chain + [Link(server, [])])
            out.demote_client(ix, client, 0.7)
        else:
            out.add(C.DEPENDENCY_FAILURE, server, 0.45, f"{client} reports failures reaching {server}", ids,
                    chain + [Link(server, [])])


REFUSALS = {"auth_failure": "rejects its credentials", "tls_failure": "fails the TLS handshake",
            "too_many_connections": "refuses more connections", "no_servers": "has no usable server",
            "peer_full": "is full and refuses writes", "peer_error": "answers with server errors",
            "wrong_listener": "answers in another protocol", "peer_rejects": "rejects its requests (HTTP 4xx)"}


def _refused(ix: EvidenceIndex, graph: nx.DiGraph, out: _Origins, finding: Finding, service: str, link: list[Link],
             what: str | None = None, guessed: bool = False) -> None:
    """The peer answers and refuses the client: the origin is on the peer's side (``guessed``:
    the client's line did not name the peer; one that looks healthy is then a weaker lead)."""
    client, ids = finding.data["owner"], [finding.id]
    if any(f.kind in ("ServiceSelectorMatchesNothing", "ServicePortMismatch") for f in ix.of_service(service)):
        # What answers may not be the dependency at all: the Service's own defect comes first.
        _unreachable(ix, graph, out, finding, service, link)
        return
    what = what or REFUSALS.get(finding.data["signature"], "refuses its clients")
    servers = _backing(graph, service)
    if finding.data["signature"] == "wrong_listener" and servers:
        # What answers speaks another protocol than the client: the Service sends it to a
        # listener that is not the one it serves (its metrics or admin port, TLS vs plain).
        own = _own_change(ix, client)
        out.add(C.SERVICE_PORT_MISMATCH, service, 0.76 if own else 0.88, f"{service} sends {client} to a listener that "
                f"speaks another protocol: {finding.data.get('sample', '')[:120]}", ids, link + [Link(service, [])])
        out.demote_client(ix, client)
        return
    if not servers:
        out.add(C.DEPENDENCY_FAILURE, service, 0.55, f"{service}, which {client} uses, {what}", ids, link)
        out.demote_client(ix, client, 0.7)
        return
    client_changed = bool(_own_change(ix, client))
    # The client's own change is as likely a cause as the peer: keep the peer below it.
    weight = 0.85 if client_changed else 1.0
    for server in servers:
        chain = link + [Link(service, [graph.edges[service, server].get("evidence", "")])]
        configs = [c for c in ix.kind("ConfigChanged") if server in (c.data.get("used_by") or [])]
        rollout = ix.template_change(server)
        server_evidence = [f.id for f in ix.of(server) if f.kind in ("WorkloadUnavailable", "ContainerWaiting",
                                                                   "ContainerNotReady", "LogSignature")][:3]
        # The dependency's own evidence names the kind of fault its change made: a program that
        # says a setting is missing lacks config; otherwise the new content is wrong.
        missing = any(f.data.get("signature") == "missing_setting" for f in ix.of(server, "LogSignature"))
        config_category = C.MISSING_CONFIG if missing else C.BAD_CONFIG_CHANGE
        for config in configs:
            obj = f"{config.data['config_kind']}/{config.data['name']}"
            out.add(config_category, obj, 0.9 * weight, f"{obj} changed and {server}, which {client} uses, now {what}",
                    ids + [config.id], chain + [Link(server, server_evidence), Link(obj, [config.id])])
        if rollout is not None:
            fields = ix.changed_fields(server)
            # A rollout that changed only how the dependency is configured (its environment,
            # arguments) is a config change; one that changed its code or image is the rollout.
            config_only = bool(fields) and fields <= CONFIG_FIELDS
            out.add(C.DEPENDENCY_FAILURE, server, (0.88 if not configs and not config_only else 0.8) * weight,
                    f"{server} {what} since its rollout changed {', '.join(sorted(fields)[:4]) or 'its template'}; {client} fails",
                    ids + [rollout.id] + server_evidence, chain + [Link(server, server_evidence + [rollout.id])])
            if fields & (CONFIG_FIELDS - {"restartedAt"}):
                out.add(config_category, server, (0.89 if config_only else 0.8) * weight,
                        f"{server}'s rollout changed its {', '.join(sorted(fields & CONFIG_FIELDS))} and it now {what}",
                        ids + [rollout.id], chain + [Link(server, [rollout.id])])
            if "image" in fields and finding.data["signature"] == "peer_error":
                # Its own log showing its code crash (a panic, a stack trace) makes it the new code's fault.
                crashes = any(f.data.get("signature") == "panic" for f in ix.of(server, "LogSignature"))
                out.add(C.APPLICATION_ERROR, server, (0.92 if crashes else 0.84) * weight, f"the new version of {server} {what} to {client}",
                        ids + [rollout.id] + server_evidence, chain + [Link(server, server_evidence + [rollout.id])])
        score = 0.86 if ix.impacted(server) else (0.56 if guessed else 0.74)
        if finding.data["signature"] == "peer_rejects" and not configs and rollout is None:
            score = 0.45  # a request the peer judges bad, and nothing on its side changed: as likely the client's
        out.add(C.DEPENDENCY_FAILURE, server, score * weight, f"{server} (behind {service}) {what}; {client} fails",
                ids + server_evidence, chain + [Link(server, server_evidence)])
        if finding.data["signature"] == "auth_failure" and not configs and rollout is None:
            _issuer_changed(ix, graph, out, finding, service, server, chain, weight)
    out.demote_client(ix, client)


def _issuer_changed(ix: EvidenceIndex, graph: nx.DiGraph, out: _Origins, finding: Finding, service: str, server: str,
                    chain: list[Link], weight: float) -> None:
    """A peer that did not change rejects credentials that used to pass: what the client
    presents comes from elsewhere (a token its identity provider issues, a password another
    service keeps). The config change of another of the client's dependencies is the lead."""
    client = finding.data["owner"]
    for other, _ in _dependencies(graph, client):
        if other == service:
            continue
        for issuer in _backing(graph, other):
            for config in ix.kind("ConfigChanged"):
                if issuer not in (config.data.get("used_by") or []):
                    continue
                obj = f"{config.data['config_kind']}/{config.data['name']}"
                out.add(C.BAD_CONFIG_CHANGE, obj, 0.9 * weight,
                        f"{server} rejects the credentials {client} presents since {obj}, which {issuer} (behind {other}) "
                        "uses, changed", [finding.id, config.id],
                        chain + [Link(server, []), Link(other, []), Link(obj, [config.id])])


def dependency_candidates(ix: EvidenceIndex, graph: nx.DiGraph) -> tuple[list[Candidate], dict[str, float]]:
    """Candidates at the origin of dependency failures, and a demotion factor per client."""
    out = _Origins([], {})
    peer_findings = [f for f in ix.kind("LogSignature") if f.data.get("signature") in PEER_SIGNATURES]
    # The peer a client's log names for a failure: a line of the same failure that names no
    # peer is the same peer, not one guessed from the wording.
    named = {(f.data["owner"], f.data.get("signature")): service for f in peer_findings
             if (service := resolve_service(ix, f)) is not None}
    resolved = []
    guessed: set[str] = set()  # lines whose peer was inferred (its port, its wording), not named
    for finding in peer_findings:
        client, signature = finding.data["owner"], finding.data.get("signature")
        service, via = resolve_service(ix, finding), [finding.id]
        if finding.data.get("echo"):
            # Its error text is in another program's log: the Service it reaches that program by.
            service = peer_by_echo(graph, client, finding.data["echo"])
            if service is None:
                continue  # a program it does not use: the same words, no lead
        if service is None and (client, signature) in named:
            service = named[(client, signature)]
        if service is None:
            matched = peer_by_port(ix, graph, finding)
            if matched is None:
                by_wording = peer_by_protocol(ix, graph, finding)
                if by_wording is not None:
                    matched = by_wording[:2]
                    if by_wording[2]:
                        guessed.add(finding.id)
            if matched:
                service, via = matched[0], [finding.id, *(i for i in matched[1] if i)]
        if service is not None:
            resolved.append((finding, service, via))
    # A program's own server-error answers (its access log's 502s) that name no peer are what
    # its failures to reach its peers look like from its callers' side: where its log names
    # those failures, they say what it is, and the 502s point at no peer of their own.
    explained = {f.data["owner"] for f, _, _ in resolved
                 if f.data.get("signature") != "peer_error" and (f.data.get("host") or f.data.get("port"))}
    for finding, service, via in resolved:
        signature, client = finding.data.get("signature"), finding.data["owner"]
        if signature == "peer_error" and not finding.data.get("host") and client in explained:
            continue
        link = [Link(client, via)]
        # Errors that reach the end of a current log, or a client that hurts now, are a fault;
        # a burst that ended (a failover, a restart long ago) is history.
        current = bool(finding.data.get("recent")) and not finding.data.get("previous")
        if current and int(finding.data.get("count") or 0) >= PERSISTENT_PEER_ERRORS or ix.impacted(client):
            out.weight = 1.0
        else:  # one line at the end of a short log says less; errors the log has moved past, less still
            out.weight = SINGLE_LINE_WEIGHT if current else HISTORY_WEIGHT
        if finding.data.get("loopback"):
            # The client reaches for itself on its dependency's port: the dependency told it to
            # (the address it advertises, a redirect), so the fault is on the dependency's side.
            _refused(ix, graph, out, finding, service, link, what="sends its clients to a loopback address")
        elif signature in NETWORK_SIGNATURES or (signature == "no_servers" and not _backing(graph, service)):
            _unreachable(ix, graph, out, finding, service, link)
        else:
            _refused(ix, graph, out, finding, service, link, guessed=finding.id in guessed,
                     what="refuses its requests, in the words its own log has" if finding.data.get("echo") else None)
    out.weight = 1.0
    # A Service with no ready endpoints that clients depend on by config, even without logs.
    for finding in ix.kind("ServiceWithoutReadyEndpoints"):
        service = finding.data["service"]
        clients = [src for src, _, data in graph.in_edges(service, data=True) if data.get("relation") == "dependsOn"]
        for server in finding.data.get("backing") or []:
            hurting = [c for c in clients if ix.impacted(c)]
            zero = ix.of(server, "WorkloadScaledToZero")
            if not hurting or not ix.impacted(server):
                continue
            chain = [Link(hurting[0], []), Link(service, [finding.id])]
            if zero:
                out.add(C.SCALED_TO_ZERO, server, 0.9, f"{server} is scaled to zero; {', '.join(hurting[:3])} depend on it "
                        "and fail", [finding.id, zero[0].id], chain + [Link(server, [zero[0].id])])
            else:
                out.add(C.DEPENDENCY_FAILURE, server, 0.8, f"{service} has no ready endpoints; {', '.join(hurting[:3])} "
                        "depend on it and fail", [finding.id], chain + [Link(server, [])])
            for client in hurting:
                out.demote_client(ix, client, 0.6)
    return out.candidates, out.demote


def dependents(graph: nx.DiGraph, service: str) -> list[str]:
    """Who depends on a Service: workloads by env, config or logs, and Ingresses."""
    return [src for src, _, data in graph.in_edges(service, data=True) if data.get("relation") == "dependsOn"] \
        if service in graph else []


def origins(ix: EvidenceIndex) -> tuple[list[Candidate], dict[str, float], nx.DiGraph]:
    graph = build_graph(ix)
    candidates, demote = dependency_candidates(ix, graph)
    return candidates, demote, graph
