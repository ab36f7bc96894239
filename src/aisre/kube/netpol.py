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


def allows(spec: dict[str, Any], peer_labels: dict[str, str], direction: str) -> bool:
    """Whether the policy's rules of one direction (``ingress``/``egress``) admit the peer."""
    for rule in spec.get(direction) or []:
        peers = rule.get("from" if direction == "ingress" else "to")
        if not peers or any(peer_matches(peer, peer_labels) for peer in peers):
            return True
    return False


def blockers(policies: list[tuple[str, dict[str, Any]]], client: dict[str, str],
             server: dict[str, str]) -> list[tuple[str, str]]:
    """(policy, direction) that stop ``client`` pods from reaching ``server`` pods. Policies
    add up: a direction is cut when some policy isolates the pod in it and none of those
    admits the peer. The ones with rules of that direction come first (the allow-list a
    person would extend), then the plain deny-alls."""
    out: list[tuple[str, str]] = []
    for direction, kind, isolated, peer in (("ingress", "Ingress", server, client), ("egress", "Egress", client, server)):
        isolating = [(name, spec) for name, spec in policies if kind in policy_types(spec) and selects(spec, isolated)]
        if not isolating or any(allows(spec, peer, direction) for _, spec in isolating):
            continue
        isolating.sort(key=lambda item: not item[1].get(direction))
        out += [(name, direction) for name, _ in isolating]
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
