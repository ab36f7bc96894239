"""Which root a signal belongs to, and whether two roots are one incident. Pure.

One Incident per root, not per pod: a pod's trouble belongs to its top-level controller;
pods in trouble on an unwell node belong to the node; pods refused by a quota belong to
the quota; a claim belongs to the workload that mounts it. Two roots in one namespace
are one incident when one's config names the other as a host (a client failing because
its database fails), and the one depended on is the incident's resource.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource
from aisre.operator.detection.index import ClusterIndex

# Pod reasons an unwell node explains (a crash loop on a sick node is still the app's).
NODE_EXPLAINS = {"NotReady", "Evicted", "Unschedulable", "InitContainerStuck", "SystemOOM"}


@dataclass(frozen=True, slots=True)
class Root:
    kind: str
    name: str
    namespace: str  # "" for cluster-scoped objects (nodes)

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(kind=self.kind, name=self.name, namespace=self.namespace or None)

    @property
    def display(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def of(cls, ref: ResourceRef) -> Root:
        return cls(ref.kind, ref.name, "" if ref.kind == "Node" else ref.namespace or "")


def fingerprint(root: Root) -> str:
    """The dedupe key of an incident: structured fields of its root only."""
    return hashlib.sha1(f"root\x1f{root.kind}\x1f{root.namespace}\x1f{root.name}".encode()).hexdigest()[:24]


def root_of(signal: Signal, index: ClusterIndex) -> Root:
    if signal.source == SignalSource.NODE:
        return Root("Node", signal.object.name, "")
    quota = signal.detail.get("quota")
    if quota:
        return Root("ResourceQuota", quota, signal.object.namespace or "")
    if signal.node and signal.node in index.unwell_nodes and signal.reason in NODE_EXPLAINS:
        return Root("Node", signal.node, "")
    if signal.object.kind == "PersistentVolumeClaim":
        users = index.users_of_claim(signal.object.namespace or "", signal.object.name)
        if len(users) == 1:
            return Root.of(users[0])
    return Root.of(index.top_of(signal.owners, signal.object))


def members_of(signal: Signal, root: Root, index: ClusterIndex) -> list[ResourceRef]:
    """The objects a signal shows are affected, besides the root itself."""
    top = index.top_of(signal.owners, signal.object)
    out = [top] if top.kind != "Pod" or not signal.owners else []
    if signal.object.kind == "Node" or root.kind == "Node":
        return [r for r in out if r.kind != "Node"]
    return out


def related(root: Root, members: list[ResourceRef], other: Root, other_members: list[ResourceRef],
            index: ClusterIndex) -> str | None:
    """Whether ``root`` (with its members) and ``other`` are one incident: "downstream" when
    root depends on other (other stays the resource), "upstream" when other depends on root,
    None when they are unrelated."""
    if other.kind == "Node":
        if other.name not in index.unwell_nodes:
            return None  # a node that recovered explains nothing that happens on it now
        on_node = index.workloads_on_node(other.name)
        for member in [root.ref, *members]:
            key = f"{member.namespace}/{member.display()}"
            if key in on_node:
                return "downstream"
            if any(index.depends_on(member, server) for server in [*on_node.values(), *other_members]):
                return "downstream"
        return None
    if root.kind == "Node":
        direction = related(other, other_members, root, members, index)
        return "upstream" if direction == "downstream" else None
    if root.namespace != other.namespace:
        return None
    mine = [root.ref, *members]
    theirs = [other.ref, *other_members]
    if any(index.depends_on(a, b) for a in mine for b in theirs):
        return "downstream"
    if any(index.depends_on(b, a) for a in mine for b in theirs):
        return "upstream"
    return None
