"""What every action shares: the plan (one API request, built by a pure function from the
target as read), applying it for real or as a server-side dry run, the diff a dry run
records, the marker annotation that tells after a crash whether a change was applied,
and health checks of workloads used by verification.

An action module provides:

    KINDS                       target kinds it accepts
    plan(target, action, marker, context) -> Plan     preconditions + the request (pure)
    verify_target(action, plan) -> (kind, namespace, name, healthy(obj) -> bool)
    revert(target, undo, marker) -> Plan | None       the undo request (pure); None: cannot
    applied(target, entry_marker) -> bool             did a Running change reach the server?
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from aisre.errors import NeedsUserError
from aisre.remediation import kubeapi, verification

MARKER = "aisre.dev/remediation"


class PreconditionFailed(NeedsUserError):
    """The target is not in a state this action applies to."""

    reason = "PreconditionFailed"


@dataclass(frozen=True)
class Plan:
    method: str  # PATCH | DELETE
    path: str
    body: Any
    content_type: str | None = kubeapi.JSON_PATCH
    undo: dict[str, Any] | None = None  # recorded in the journal before execution
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def marker_ops(obj: Mapping[str, Any], marker: str) -> list[dict[str, Any]]:
    """JSON-patch ops that set the marker annotation, in the same request as the change."""
    annotations = dict(meta(obj).get("annotations") or {})
    annotations[MARKER] = marker
    return [{"op": "add", "path": "/metadata/annotations", "value": annotations}]


def has_marker(obj: Mapping[str, Any] | None, marker: str | None) -> bool:
    return bool(obj and marker and (meta(obj).get("annotations") or {}).get(MARKER) == marker)


def path_of(obj: Mapping[str, Any], kind: str) -> str:
    return kubeapi.object_path(kind, meta(obj).get("namespace"), meta(obj)["name"])


async def apply(client: httpx.AsyncClient, plan: Plan, *, dry_run: bool) -> Any:
    params = {"dryRun": "All"} if dry_run else None
    return await kubeapi.request(client, plan.method, plan.path, body=plan.body,
                                 content_type=plan.content_type, params=params)


def diff(before: Any, after: Any, path: str = "", out: list[str] | None = None, limit: int = 20) -> list[str]:
    """Changed leaves between two objects (spec and metadata.annotations only), as
    ``path: old -> new`` lines; what a dry run records."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if not path and key not in ("spec", "metadata"):
                continue
            if path == "/metadata" and key != "annotations":
                continue
            diff(before.get(key), after.get(key), f"{path}/{key}", out, limit)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            diff(b, a, f"{path}/{index}", out, limit)
    elif before != after:
        out.append(f"{path}: {json.dumps(before)[:120]} -> {json.dumps(after)[:120]}")
    return out


def observed(obj: Mapping[str, Any] | None) -> bool:
    """Its controller has seen the latest spec (status.observedGeneration caught up)."""
    if not obj:
        return False
    return ((obj.get("status") or {}).get("observedGeneration") or 0) >= (meta(obj).get("generation") or 0)


def owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    return any(ref.get("uid") == uid for ref in meta(obj).get("ownerReferences") or [])


def rollout_done(obj: Mapping[str, Any] | None) -> bool:
    """A Deployment, StatefulSet or DaemonSet whose rollout completed with every replica available."""
    if not obj:
        return False
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not observed(obj):
        return False
    kind = obj.get("kind")
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        return status.get("updatedNumberScheduled", 0) == want and status.get("numberAvailable", 0) == want
    want = spec.get("replicas", 1)
    if kind == "StatefulSet":
        return (status.get("updatedReplicas", 0) == want and status.get("readyReplicas", 0) == want
                and status.get("currentRevision") == status.get("updateRevision"))
    return (status.get("updatedReplicas", 0) == want and status.get("availableReplicas", 0) == want
            and status.get("replicas", 0) == want)


def require_kind(action_kind: str, kinds: set[str], type_: str) -> None:
    if action_kind not in kinds:
        raise PreconditionFailed(f"{type_} applies to {', '.join(sorted(kinds))}, not {action_kind}")


def rollout_verifier(done: str, soak: float | None = 0.0) -> Any:
    """``verify`` for actions that change a workload: judged on the workload's own rollout
    and the fault's signal against its state before the change (``verification``); ``soak``
    seconds more of watching once complete, for faults that need time to show (None: the
    configured ``verification.SOAK_SECONDS``)."""

    async def verify(client: httpx.AsyncClient, action: Any, plan_: Plan, timeout: float) -> tuple[bool, str]:
        t = action.target
        ok, how = await verification.verify_workloads(client, t.namespace, [f"{t.kind}/{t.name}"], plan_.extra,
                                                      timeout, soak)
        return ok, f"{done}; {how}" if ok else how

    return verify


def workloads_of(action: Any, plan_: Plan) -> list[str]:
    """Kind/name of the workloads a change rolls out (verified and compared before/after)."""
    t = action.target
    if t.kind in verification.ROLLOUT_KINDS:
        return [f"{t.kind}/{t.name}"]
    return list(plan_.extra.get("users") or [])
