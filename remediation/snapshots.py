"""Known-good copies of the ConfigMaps workloads use, for ``restoreConfig``.

What is kept: for each ConfigMap that a Deployment, StatefulSet or DaemonSet references
(volume, projected volume, envFrom, env valueFrom), the content it had while *every*
workload using it ran healthy *with* it: each user's rollout complete, every one of its
pods Ready for at least ``settle`` seconds, and every one of those pods started after the
ConfigMap last changed (a pod started before the change still runs the old content, so its
health says nothing about the new one). ``captures`` decides this (pure); the operator's
keeper (``aisre.operator.config_snapshots``) feeds it listings on a timer.

What is never kept: Secrets (only ConfigMaps are ever listed or accepted by ``put``), a
ConfigMap larger than ``Limits.per_configmap`` bytes (it is skipped and counted), and more
than ``Limits.per_namespace`` / ``Limits.total`` bytes (the oldest copies go first).

Where it lives: in memory, and one ConfigMap per source namespace in the operator's own
namespace (``aisre-snapshots-<namespace>``, label ``aisre.dev/config-snapshots``), the
same place and the same RBAC as the ledger of executed actions. A namespace's users
cannot write there, so they cannot plant a "known-good" copy; every copy also carries an
HMAC by the operator's signing key over the namespace, name, uid and content digest, and
a copy whose signature does not verify is dropped on load. A copy is bound to the
ConfigMap's uid: a ConfigMap deleted and created again under the same name is another
object, and never gets the old one's content.

Besides the known-good copy, the content a ``restoreConfig`` replaced is kept (one per
ConfigMap) so that reverting the action can put it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from aisre.remediation import kubeapi
from aisre.remediation.actions.base import meta, rollout_done

LABEL = "aisre.dev/config-snapshots"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
GOOD, REPLACED = "good", "replaced"


@dataclass(frozen=True)
class Limits:
    per_configmap: int = 64 * 1024  # bytes of content; larger ConfigMaps are not kept
    per_namespace: int = 512 * 1024  # what one persisted ConfigMap holds (the API server's limit is 1 MiB)
    total: int = 4 * 1024 * 1024  # in memory, over every namespace


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_of(configmap: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    return dict(configmap.get("data") or {}), dict(configmap.get("binaryData") or {})


def content_digest(data: Mapping[str, str], binary: Mapping[str, str]) -> str:
    text = json.dumps([data, binary], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One kept content of one ConfigMap."""

    namespace: str
    name: str
    uid: str
    data: dict[str, str]
    binary_data: dict[str, str]
    captured_at: dt.datetime
    users: tuple[str, ...] = ()  # Kind/name of the workloads that ran healthy with it
    role: str = GOOD  # GOOD: known-good; REPLACED: what a restoreConfig replaced
    signature: str = ""

    @property
    def digest(self) -> str:
        return content_digest(self.data, self.binary_data)

    @property
    def size(self) -> int:
        return len(json.dumps([self.data, self.binary_data]))

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "data": self.data, "binaryData": self.binary_data,
                "capturedAt": rfc3339(self.captured_at), "users": list(self.users), "signature": self.signature}

    @classmethod
    def from_json(cls, namespace: str, name: str, role: str, raw: Mapping[str, Any]) -> Snapshot:
        return cls(namespace, name, str(raw["uid"]), dict(raw.get("data") or {}), dict(raw.get("binaryData") or {}),
                   parse_time(raw.get("capturedAt")) or dt.datetime.now(dt.UTC), tuple(raw.get("users") or ()),
                   role, str(raw.get("signature") or ""))


def snapshot_of(configmap: Mapping[str, Any], now: dt.datetime, users: Iterable[str] = (), role: str = GOOD) -> Snapshot:
    """A ConfigMap's current content as a snapshot (pure)."""
    m = meta(configmap)
    data, binary = content_of(configmap)
    return Snapshot(m.get("namespace") or "", m["name"], m.get("uid") or "", data, binary, now, tuple(users), role)


def signature(key: bytes, snap: Snapshot) -> str:
    message = json.dumps(["config-snapshot/v1", snap.role, snap.namespace, snap.name, snap.uid, snap.digest],
                         separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- who uses a ConfigMap


def configmaps_of(template: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps a pod template references: volumes (projected too), envFrom, env valueFrom."""
    spec = template.get("spec") or {}
    names: set[str] = set()
    for volume in spec.get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            names.add(volume["configMap"]["name"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("configMap") or {}).get("name"):
                names.add(source["configMap"]["name"])
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env_from in container.get("envFrom") or []:
            if (env_from.get("configMapRef") or {}).get("name"):
                names.add(env_from["configMapRef"]["name"])
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
    return names


def users_of(name: str, namespace: str, workloads: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Deployments, StatefulSets and DaemonSets of ``namespace`` that use ConfigMap ``name``."""
    return [dict(w) for w in workloads if w.get("kind") in WORKLOAD_KINDS and meta(w).get("namespace") == namespace
            and name in configmaps_of((w.get("spec") or {}).get("template") or {})]


def last_change(configmap: Mapping[str, Any]) -> dt.datetime | None:
    """The newest managedFields time (any manager), else the creation time."""
    times = [parse_time(m.get("time")) for m in meta(configmap).get("managedFields") or []]
    found = [t for t in times if t]
    return max(found) if found else parse_time(meta(configmap).get("creationTimestamp"))


def _selected(workload: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    wanted = (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    labels = meta(pod).get("labels") or {}
    return bool(wanted) and meta(pod).get("namespace") == meta(workload).get("namespace") and all(
        labels.get(k) == v for k, v in wanted.items())


def _ready_since(pod: Mapping[str, Any]) -> dt.datetime | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return parse_time(condition.get("lastTransitionTime")) if condition.get("status") == "True" else None
    return None


def ran_healthy_with(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], changed: dt.datetime | None,
                     now: dt.datetime, settle: float) -> str | None:
    """None when ``workload`` has run healthy with content last changed at ``changed``;
    otherwise why not (pure)."""
    if not rollout_done(dict(workload)):
        return "rollout not complete"
    mine = [p for p in pods if _selected(workload, p) and not meta(p).get("deletionTimestamp")]
    if not mine:
        return "no pods"
    for pod in mine:
        since = _ready_since(pod)
        if since is None or (now - since).total_seconds() < settle:
            return f"pod {meta(pod).get('name')} not Ready for {settle:.0f} s"
        started = parse_time((pod.get("status") or {}).get("startTime")) or parse_time(meta(pod).get("creationTimestamp"))
        # Times have a resolution of a second: a pod started in the second of the change may predate it.
        if changed is not None and (started is None or started <= changed):
            return f"pod {meta(pod).get('name')} started before the last change"
    return None


def captures(configmaps: Iterable[Mapping[str, Any]], workloads: list[Mapping[str, Any]],
             pods: list[Mapping[str, Any]], now: dt.datetime, settle: float) -> list[Snapshot]:
    """The ConfigMaps whose current content is known good: used by at least one workload,
    and every workload using it has run healthy with it (pure). Only ConfigMaps."""
    out = []
    for configmap in configmaps:
        if configmap.get("kind", "ConfigMap") != "ConfigMap":
            continue
        m = meta(configmap)
        users = users_of(m["name"], m.get("namespace") or "", workloads)
        if not users:
            continue
        changed = last_change(configmap)
        if changed is not None and changed == parse_time(m.get("creationTimestamp")):
            # Never changed since it was created: no pod can hold an older content, so one
            # started in the same second (times have a resolution of a second) read this one.
            changed -= dt.timedelta(seconds=1)
        if any(ran_healthy_with(u, pods, changed, now, settle) is not None for u in users):
            continue
        out.append(snapshot_of(configmap, now, sorted(f"{u['kind']}/{meta(u)['name']}" for u in users)))
    return out


# ---------------------------------------------------------------- the store


@dataclass
class SnapshotStore:
    """Bounded known-good (and replaced) copies, in memory and persisted in the operator's
    namespace. ``client`` is the operator's own identity; without one (tests of pure
    logic) nothing is persisted."""

    client: httpx.AsyncClient | None = None
    operator_namespace: str | None = None
    key: bytes | None = None
    limits: Limits = field(default_factory=Limits)
    _kept: dict[tuple[str, str, str], Snapshot] = field(default_factory=dict)  # (role, namespace, name)
    skipped: dict[str, str] = field(default_factory=dict)  # namespace/name -> why it is not kept (bounded)

    # -- reading

    def known_good(self, namespace: str, name: str, uid: str | None) -> Snapshot | None:
        snap = self._kept.get((GOOD, namespace, name))
        return snap if snap is not None and uid and snap.uid == uid else None

    def replaced(self, namespace: str, name: str, digest: str) -> Snapshot | None:
        snap = self._kept.get((REPLACED, namespace, name))
        return snap if snap is not None and snap.digest == digest else None

    def all(self) -> list[Snapshot]:
        return list(self._kept.values())

    def bytes_used(self, namespace: str | None = None) -> int:
        return sum(s.size for (_, ns, _), s in self._kept.items() if namespace is None or ns == namespace)

    # -- writing

    def _skip(self, snap: Snapshot, why: str) -> str:
        self.skipped[f"{snap.namespace}/{snap.name}"] = why
        while len(self.skipped) > 1000:
            self.skipped.pop(next(iter(self.skipped)))
        return why

    def put(self, snap: Snapshot, kind: str = "ConfigMap") -> str:
        """Keep ``snap`` (signed, bounded). Returns "stored", "unchanged" or why it was not kept."""
        if kind != "ConfigMap":
            return self._skip(snap, f"{kind} content is never kept")
        if snap.size > self.limits.per_configmap:
            return self._skip(snap, f"{snap.size} bytes, over the {self.limits.per_configmap} bytes kept per ConfigMap")
        slot = (snap.role, snap.namespace, snap.name)
        current = self._kept.get(slot)
        if current is not None and current.uid == snap.uid and current.digest == snap.digest:
            return "unchanged"
        if self.key is not None:
            snap = replace(snap, signature=signature(self.key, snap))
        self._kept[slot] = snap
        self.skipped.pop(f"{snap.namespace}/{snap.name}", None)
        self._evict(snap.namespace, keep=slot)
        return "stored" if slot in self._kept else self._skip(snap, "no room within the bounds")

    def _evict(self, namespace: str, keep: tuple[str, str, str]) -> None:
        """Oldest copies out until the namespace's and the total bounds hold (the one just put last)."""
        for scope, limit in ((namespace, self.limits.per_namespace), (None, self.limits.total)):
            while self.bytes_used(scope) > limit:
                candidates = sorted((s.captured_at, slot) for slot, s in self._kept.items()
                                    if (scope is None or slot[1] == scope) and slot != keep)
                victim = candidates[0][1] if candidates else keep
                self._kept.pop(victim)
                if victim == keep:
                    return

    def forget(self, namespace: str, name: str) -> None:
        for role in (GOOD, REPLACED):
            self._kept.pop((role, namespace, name), None)

    # -- persistence (the operator's namespace)

    def _document(self, namespace: str) -> dict[str, Any]:
        doc: dict[str, dict[str, Any]] = {GOOD: {}, REPLACED: {}}
        for (role, ns, name), snap in sorted(self._kept.items()):
            if ns == namespace:
                doc[role][name] = snap.to_json()
        return doc

    async def save(self, namespace: str) -> None:
        """Write the copies of ``namespace`` to ``aisre-snapshots-<namespace>`` (create,
        or replace under its resourceVersion; retried on conflicts)."""
        if self.client is None or not self.operator_namespace:
            return
        base = f"/api/v1/namespaces/{self.operator_namespace}/configmaps"
        name = name_for(namespace)
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {LABEL: namespace[:63]}},
                "data": {"snapshots": json.dumps(self._document(namespace), sort_keys=True)}}
        for _ in range(5):
            current = await kubeapi.get_or_none(self.client, f"{base}/{name}")
            try:
                if current is None:
                    await kubeapi.request(self.client, "POST", base, body=body, content_type="application/json")
                else:
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    await kubeapi.request(self.client, "PUT", f"{base}/{name}", body=body, content_type="application/json")
                return
            except kubeapi.Conflict:
                continue
        raise kubeapi.Conflict(f"snapshots of {namespace}: too many conflicts")

    async def load(self) -> int:
        """Read every persisted copy back (after a restart, or on a new leader); a copy
        whose signature does not verify, or that exceeds the bounds, is dropped."""
        if self.client is None or not self.operator_namespace:
            return 0
        listing = await kubeapi.get(self.client, f"/api/v1/namespaces/{self.operator_namespace}/configmaps",
                                    {"labelSelector": LABEL})
        loaded = 0
        for cm in listing.get("items") or []:
            namespace = (meta(cm).get("labels") or {}).get(LABEL, "")
            if meta(cm).get("name") != name_for(namespace):
                continue
            try:
                doc = json.loads((cm.get("data") or {}).get("snapshots") or "{}")
            except ValueError:
                continue
            for role in (GOOD, REPLACED):
                for name, raw in (doc.get(role) or {}).items():
                    try:
                        snap = Snapshot.from_json(namespace, name, role, raw)
                    except (KeyError, TypeError, ValueError):
                        continue
                    if self.key is None or not hmac.compare_digest(snap.signature, signature(self.key, snap)):
                        continue  # not written by this operator: never restored
                    if self.put(snap) in ("stored", "unchanged"):
                        loaded += 1
        return loaded


def name_for(namespace: str) -> str:
    return f"aisre-snapshots-{namespace}"
