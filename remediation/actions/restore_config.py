"""restoreConfig: put a ConfigMap's known-good content back and restart what uses it.

A ConfigMap whose content change broke its workloads is not fixed by restarting them
(they reload the same content); it is fixed by its previous content. The operator keeps
the content each ConfigMap had while every workload using it ran healthy with it
(``aisre.remediation.snapshots``); this action writes that content back (``data`` and
``binaryData``, with the marker annotation, in one PATCH), then restarts the Deployments,
StatefulSets and DaemonSets that reference the ConfigMap (``settle``: a new restartedAt
on their pod template, as ``kubectl rollout restart``), and is verified when every one of
them has rolled out with every replica available.

Reverting writes back the content the action replaced (kept in the snapshot store, as the
journal's ``undo`` is too small for a ConfigMap), so a failed restore leaves the ConfigMap
as it found it. Secrets are never handled: their values are never read or kept.

A dry run records the ConfigMap's diff: the keys added, removed and changed, and a bounded
unified diff of the changed values (``content_diff``).
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

import httpx

from aisre.api.investigation import RecommendedAction
from aisre.redact import redact_text
from aisre.remediation import kubeapi
from aisre.remediation import snapshots as snapshot_store
from aisre.remediation import verification
from aisre.remediation.actions.base import Plan, PreconditionFailed, has_marker, marker_ops, meta, path_of, require_kind
from aisre.remediation.actions.rollout_restart import RESTARTED_AT

KINDS = {"ConfigMap"}
SNAPSHOTS = True  # the executor hands its snapshot store to ``context``
DIFF_LINES = 40  # of a dry run's unified diff, over all keys
DIFF_WIDTH = 160


async def users(client: httpx.AsyncClient, namespace: str, name: str) -> list[dict[str, Any]]:
    """The workloads of ``namespace`` that reference ConfigMap ``name``, as read now."""
    found: list[dict[str, Any]] = []
    for kind in snapshot_store.WORKLOAD_KINDS:
        listing = await kubeapi.get(client, kubeapi.collection(kind, namespace))
        found += [{**item, "kind": kind} for item in listing.get("items") or []]
    return snapshot_store.users_of(name, namespace, found)


async def context(client: httpx.AsyncClient, action: RecommendedAction, target: dict[str, Any],
                  snapshots: Any = None) -> dict[str, Any]:
    t = action.target
    return {"store": snapshots, "users": await users(client, t.namespace or "", t.name),
            "snapshot": snapshots.known_good(t.namespace or "", t.name, meta(target).get("uid")) if snapshots else None}


def _content_ops(target: dict[str, Any], data: dict[str, str], binary: dict[str, str]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/data", "value": data}]
    if binary or "binaryData" in target:
        ops.append({"op": "add", "path": "/binaryData", "value": binary})
    return ops


def content_diff(before: dict[str, Any], after: dict[str, Any], limit: int = DIFF_LINES) -> list[str]:
    """Keys added, removed and changed between two ConfigMaps, then a unified diff of the
    changed values, at most ``limit`` lines of ``DIFF_WIDTH`` characters, redacted (pure)."""
    old, new = before.get("data") or {}, after.get("data") or {}
    old_bin, new_bin = before.get("binaryData") or {}, after.get("binaryData") or {}
    added = sorted(set(new) - set(old)) + sorted(f"{k} (binary)" for k in set(new_bin) - set(old_bin))
    removed = sorted(set(old) - set(new)) + sorted(f"{k} (binary)" for k in set(old_bin) - set(new_bin))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    changed_bin = sorted(k for k in set(old_bin) & set(new_bin) if old_bin[k] != new_bin[k])
    lines = [f"keys added: {', '.join(added) or '-'}; removed: {', '.join(removed) or '-'}; "
             f"changed: {', '.join(changed + [f'{k} (binary)' for k in changed_bin]) or '-'}"]
    body: list[str] = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        body += difflib.unified_diff((old.get(key) or "").splitlines(), (new.get(key) or "").splitlines(),
                                     f"a/{key}", f"b/{key}", lineterm="", n=1)
    shown = [redact_text(line)[:DIFF_WIDTH] for line in body[:limit]]
    if len(body) > limit:
        shown.append(f"... {len(body) - limit} more diff lines not shown")
    return lines + shown


def dry_run_diff(target: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return content_diff(target, after)


def _changed_keys(target: dict[str, Any], data: dict[str, str], binary: dict[str, str]) -> list[str]:
    old, old_bin = snapshot_store.content_of(target)
    return sorted({k for k in set(old) | set(data) if old.get(k) != data.get(k)}
                  | {k for k in set(old_bin) | set(binary) if old_bin.get(k) != binary.get(k)})


def plan(target: dict[str, Any], action: RecommendedAction, marker: str, context: Any = None) -> Plan:
    require_kind(action.target.kind, KINDS, "restoreConfig")
    context = context or {}
    good = context.get("snapshot")
    name = meta(target).get("name")
    if good is None:
        raise PreconditionFailed(f"no known-good copy of ConfigMap/{name} is kept (it is kept once every workload "
                                 "using it has run healthy with it, since the operator started keeping copies); "
                                 "restore it from its source")
    current = snapshot_store.snapshot_of(target, dt.datetime.now(dt.UTC), role=snapshot_store.REPLACED)
    if current.digest == good.digest:
        raise PreconditionFailed(f"ConfigMap/{name} already has its known-good content (of "
                                 f"{snapshot_store.rfc3339(good.captured_at)}): restoring it changes nothing")
    restart = [f"{u['kind']}/{meta(u)['name']}" for u in context.get("users") or []]
    keys = _changed_keys(target, good.data, good.binary_data)
    ops = marker_ops(target, marker) + _content_ops(target, good.data, good.binary_data)
    return Plan("PATCH", path_of(target, "ConfigMap"), ops, undo={"digest": current.digest},
                summary=f"content of {snapshot_store.rfc3339(good.captured_at)} restored (keys {', '.join(keys)[:300]}); "
                        f"restart {', '.join(restart) or 'no workload'}",
                extra={"replaced": current, "store": context.get("store"), "users": restart})


def revert(target: dict[str, Any], undo: dict[str, Any], marker: str, context: Any = None) -> Plan | None:
    """The content the restore replaced, written back."""
    store = (context or {}).get("store")
    t = meta(target)
    replaced = store.replaced(t.get("namespace") or "", t["name"], str(undo.get("digest"))) if store else None
    if replaced is None:
        raise PreconditionFailed(f"the content ConfigMap/{t['name']} had before the restore is not kept any more")
    ops = marker_ops(target, marker) + _content_ops(target, replaced.data, replaced.binary_data)
    return Plan("PATCH", path_of(target, "ConfigMap"), ops, undo=None,
                summary=f"ConfigMap/{t['name']} content before the restore written back")


async def settle(executor: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> str:
    """After the content is back: keep what it replaced (for a revert), then restart every
    workload that uses the ConfigMap, so its pods load the restored content."""
    t = action.target
    store, replaced = plan_.extra.get("store"), plan_.extra.get("replaced")
    if store is not None and replaced is not None:
        store.put(replaced)
        await store.save(t.namespace or "")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    restarted = []
    for workload in await users(executor, t.namespace or "", t.name):
        template_meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
        annotations = {**(template_meta.get("annotations") or {}), RESTARTED_AT: now}
        body = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        await kubeapi.request(executor, "PATCH", kubeapi.object_path(workload["kind"], t.namespace, meta(workload)["name"]),
                              body=body, content_type=kubeapi.MERGE_PATCH)
        restarted.append(f"{workload['kind']}/{meta(workload)['name']}")
    return f"restarted {', '.join(restarted)}" if restarted else "no workload uses it"


async def verify(client: httpx.AsyncClient, action: RecommendedAction, plan_: Plan, timeout: float) -> tuple[bool, str]:
    """Every user judged on its own rollout and its new pods' faults, against its state
    before the restore (``verification``): the window follows the slowest user's rollout."""
    t = action.target
    names = plan_.extra.get("users")
    if names is None:  # resumed after a restart: the users as they are now
        names = [f"{u['kind']}/{meta(u)['name']}" for u in await users(client, t.namespace or "", t.name)]
    ok, how = await verification.verify_workloads(client, t.namespace or "", list(names), plan_.extra, timeout)
    return ok, f"content restored; {how}" if ok else how


applied = has_marker

__all__ = ["KINDS", "plan", "revert", "settle", "verify", "applied", "context", "content_diff"]
