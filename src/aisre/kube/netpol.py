"""NetworkPolicy semantics over pod labels, for the pods of one namespace (pure).

Used by the topology agent (which policies cut which dependents off) and by ranking
(whether a policy stands between a client and the peer its logs name). Namespace labels
are not read: a peer with a ``namespaceSelector`` that has labels counts as another
namespace, and ``ipBlock`` peers match no pod by label.
"""

from __future__ import annotations

from typing import Any

from aisre.kube.scope import labels_match

DNS_PORTS = {53, "53", "dns", "dns-tcp"}


def policy_types(spec: dict[str, Any]) -> list[str]:
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def selects(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    return labels_match(spec.get("podSelector") or {}, labels)


def peer_matches(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a policy peer admits a pod with these labels in the same namespace."""
    if "ipBlock" in peer:
        return False
    namespaces = peer.get("namespaceSelector")
    if namespaces is not None and ((namespaces or {}).get("matchLabels") or (namespaces or {}).get("matchExpressions")):
        return False
    pods = peer.get("podSelector")
    return pods is None or labels_match(pods, labels)


# A destination port as a rule can name it: its number and its name (either may be unknown),
# and its protocol. Rules name the pod's port, never the Service's.
DestPort = tuple[int | None, str | None, str]


def admits_port(rule: dict[str, Any], port: DestPort | None) -> bool:
    """Whether a rule's ``ports`` admit the destination port (no ports, or no port known: yes)."""
    entries = rule.get("ports") or []
    if not entries or port is None:
        return True
    number, name, protocol = port
    for entry in entries:
        if (entry.get("protocol") or "TCP") != protocol:
            continue
        want = entry.get("port")
        if want is None:
            return True
        if isinstance(want, str) and not want.isdigit():
            if name is None or want == name:  # a name we cannot resolve: give it the benefit
                return True
            continue
        low, high = int(want), int(entry.get("endPort") or want)
        if number is None or low <= number <= high:
            return True
    return False


def allows(spec: dict[str, Any], peer_labels: dict[str, str], direction: str, port: DestPort | None = None) -> bool:
    """Whether the policy's rules of one direction (``ingress``/``egress``) admit the peer on
    the destination port."""
    for rule in spec.get(direction) or []:
        peers = rule.get("from" if direction == "ingress" else "to")
        if (not peers or any(peer_matches(peer, peer_labels) for peer in peers)) and admits_port(rule, port):
            return True
    return False


def blockers(policies: list[tuple[str, dict[str, Any]]], client: dict[str, str],
             server: dict[str, str], ports: list[DestPort] | None = None) -> list[tuple[str, str]]:
    """(policy, direction) that stop ``client`` pods from reaching ``server`` pods on any of
    ``ports`` (the destination pod ports the client may use; none known: any port). Policies
    add up: a direction is cut when some policy isolates the pod in it and none of those
    admits the peer on one of the ports. The ones with rules of that direction come first
    (the allow-list a person would extend), those among them that admit the peer on some
    other port foremost (the rule meant for it, on the wrong port: a Service's port where
    the pod's is matched), then the plain deny-alls."""
    out: list[tuple[str, str]] = []
    tried: list[DestPort | None] = list(ports) if ports else [None]
    for direction, kind, isolated, peer in (("ingress", "Ingress", server, client), ("egress", "Egress", client, server)):
        isolating = [(name, spec) for name, spec in policies if kind in policy_types(spec) and selects(spec, isolated)]
        if not isolating or any(allows(spec, peer, direction, port) for _, spec in isolating for port in tried):
            continue
        isolating.sort(key=lambda item: (not item[1].get(direction), not allows(item[1], peer, direction)))
        out += [(name, direction) for name, _ in isolating]
    return out


def destination_ports(service_ports: list[dict[str, Any]], containers: list[dict[str, Any]]) -> list[DestPort]:
    """The pod ports a Service's ports lead to: each targetPort (or port) resolved against the
    containers' declared ports, by number or by name."""
    declared = [p for c in containers for p in c.get("ports") or []]
    by_name = {p["name"]: p.get("containerPort") for p in declared if p.get("name")}
    by_number = {p.get("containerPort"): p.get("name") for p in declared}
    out: list[DestPort] = []
    for port in service_ports:
        target = port.get("targetPort", port.get("port"))
        protocol = port.get("protocol") or "TCP"
        if isinstance(target, str) and not target.isdigit():
            out.append((by_name.get(target), target, protocol))
        elif target is not None:
            out.append((int(target), by_number.get(int(target)), protocol))
    return out


def blocks_dns(policies: list[tuple[str, dict[str, Any]]], labels: dict[str, str]) -> list[str]:
    """The egress policies that together leave pods with these labels no way to ask DNS."""
    isolating = [(name, spec) for name, spec in policies if "Egress" in policy_types(spec) and selects(spec, labels)]
    if not isolating or any(allows_dns(spec) for _, spec in isolating):
        return []
    return [name for name, spec in sorted(isolating, key=lambda item: not item[1].get("egress"))]


def allows_dns(spec: dict[str, Any]) -> bool:
    """Whether an egress policy lets its pods ask a DNS server: a rule to any peer that opens
    port 53 (or every port)."""
    if "Egress" not in policy_types(spec):
        return True
    for rule in spec.get("egress") or []:
        ports = rule.get("ports") or []
        if not ports or any(p.get("port") in DNS_PORTS or p.get("port") is None for p in ports):
            return True
    return False
