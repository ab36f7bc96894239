"""The keeper of known-good ConfigMap contents (``aisre.remediation.snapshots``), which
``restoreConfig`` writes back.

On a timer (``AISRE_SNAPSHOT_INTERVAL`` seconds, 60 by default; 0 turns it off) it lists
ConfigMaps, the Deployments, StatefulSets and DaemonSets that use them, and their running
pods, in the watched namespaces (never the operator's own, never excluded ones), and keeps
the content of every ConfigMap all of whose users have run healthy with it for
``AISRE_SNAPSHOT_SETTLE`` seconds (30 by default). A timer rather than a watch: what makes
a copy good is health *over time* (pods Ready for a while, started after the change),
which a tick has to look at anyway; five list calls a minute keep it cheap. It runs as a
task of its own beside detection, never in its path, and a failed tick is logged and
tried again at the next one.

Talks to: the API server through the operator's own client (reads), and the snapshot
store, which persists to ConfigMaps in the operator's namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
from typing import Any

import httpx
import structlog


from aisre.operator.namespace_sight import uses_globs, watched
from aisre.remediation import kubeapi
from aisre.remediation.snapshots import WORKLOAD_KINDS, SnapshotStore, captures

log = structlog.get_logger(__name__)


def in_scope(namespace: str, namespaces: tuple[str, ...], exclude: tuple[str, ...], operator_namespace: str | None) -> bool:
    """Watched (names or glob patterns, as Kopf takes them), not excluded, not the operator's own."""
    if namespace == operator_namespace or any(fnmatch.fnmatchcase(namespace, e) for e in exclude):
        return False
    return watched(namespace, namespaces)


def listed_namespaces(namespaces: tuple[str, ...]) -> tuple[str | None, ...]:
    """What to list: each watched namespace, or the whole cluster (None) when there are none
    or a pattern names them (the bench's ``aisre-bench-<run>-*``); ``in_scope`` filters."""
    if not namespaces or uses_globs(namespaces):
        return (None,)
    return namespaces


async def _list(client: httpx.AsyncClient, kind: str, namespace: str | None, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    prefix, plural, _ = kubeapi.PATHS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    items = (await kubeapi.get(client, path, params)).get("items") or []
    return [{**item, "kind": kind} for item in items]


async def snapshot_once(store: SnapshotStore, client: httpx.AsyncClient, namespaces: tuple[str, ...] = (),
                        exclude: tuple[str, ...] = (), settle: float = 30.0, now: dt.datetime | None = None) -> list[str]:
    """One tick: list, decide (``captures``), keep and persist what changed. Returns the
    ConfigMaps (namespace/name) newly kept."""
    now = now or dt.datetime.now(dt.UTC)
    configmaps: list[dict[str, Any]] = []
    workloads: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    for namespace in listed_namespaces(namespaces):
        configmaps += await _list(client, "ConfigMap", namespace)
        for kind in WORKLOAD_KINDS:
            workloads += await _list(client, kind, namespace)
        pods += await _list(client, "Pod", namespace, {"fieldSelector": "status.phase=Running"})

    def keep(obj: dict[str, Any]) -> bool:
        return in_scope(obj["metadata"].get("namespace", ""), namespaces, exclude, store.operator_namespace)

    stored: list[str] = []
    for snap in captures([c for c in configmaps if keep(c)], [w for w in workloads if keep(w)],
                         [p for p in pods if keep(p)], now, settle):
        if store.put(snap) == "stored":
            stored.append(f"{snap.namespace}/{snap.name}")
    for namespace in sorted({s.partition("/")[0] for s in stored}):
        await store.save(namespace)
    return stored


async def keep_snapshots(store: SnapshotStore, client: httpx.AsyncClient, namespaces: tuple[str, ...],
                         exclude: tuple[str, ...], interval: float, settle: float) -> None:
    """Load what was kept before (restart survival), then tick until cancelled."""
    try:
        loaded = await store.load()
        log.info("config snapshots loaded", count=loaded)
    except Exception as error:  # noqa: BLE001 - no operator namespace yet: start empty
        log.warning("config snapshots not loaded", error=repr(error))
    while True:
        try:
            stored = await snapshot_once(store, client, namespaces, exclude, settle)
            if stored:
                log.info("config snapshots kept", configmaps=stored[:20], bytes=store.bytes_used())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a failed tick is tried again at the next
            log.warning("config snapshot tick failed", error=repr(error))
        await asyncio.sleep(interval)
