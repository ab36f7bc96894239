"""Gathering what the policy chain decides on: the policies in scope, the actions already
taken (from every Incident's journal, for rate limits, concurrency and cooldowns) and the
target's state (labels, replica counts, the container's limits). Reads only; the chain in
``aisre.remediation.policy`` stays pure.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from pydantic import ValidationError

from aisre.api.conditions import ACCEPTED
from aisre.api.incident import ActionResult, Decision, JournalEntry
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import API_VERSION
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.api.taxonomy import ActionType
from aisre.remediation import kubeapi, ledger, sizing
from aisre.remediation.actions import restore_config, rollback
from aisre.remediation.policy import PastAction, TargetState, parse_quantity, target_key
from aisre.remediation.verification import rollout_unavailable


def _accepted(obj: dict[str, Any]) -> bool:
    """A policy the operator marked not Accepted governs nothing (deny by default); one
    not yet looked at is parsed here with the same model."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == ACCEPTED:
            return condition.get("status") == "True"
    return True


async def policies(client: httpx.AsyncClient, namespace: str,
                   operator_namespace: str | None = None) -> list[tuple[str, RemediationPolicySpec]]:
    """The policies that may govern a target in ``namespace``: the namespace's own, and
    those in the operator's namespace whose ``targets.namespaces`` name it (a central
    team's policy for many namespaces). Other namespaces' policies never reach here."""
    found = await _accepted_policies(client, namespace)
    if operator_namespace and operator_namespace != namespace:
        found += [(name, spec) for name, spec in await _accepted_policies(client, operator_namespace)
                  if spec.targets and spec.targets.namespaces and namespace in spec.targets.namespaces]
    return found


async def _accepted_policies(client: httpx.AsyncClient, namespace: str) -> list[tuple[str, RemediationPolicySpec]]:
    listing = await kubeapi.get(client, f"/apis/{API_VERSION}/namespaces/{namespace}/remediationpolicies")
    found = []
    for obj in listing.get("items") or []:
        if not _accepted(obj):
            continue
        try:
            spec = RemediationPolicySpec.model_validate(obj.get("spec") or {})
        except ValidationError:
            continue
        found.append((f"{namespace}/{obj['metadata']['name']}", spec))
    return found


def past_actions(incidents: list[dict[str, Any]]) -> list[PastAction]:
    """Every executed (or running) action in these Incidents' journals."""
    past = []
    for incident in incidents:
        for raw in (incident.get("status") or {}).get("remediations") or []:
            try:
                entry = JournalEntry.model_validate(raw)
            except ValidationError:
                continue
            if entry.decision != Decision.EXECUTE.value or entry.started_at is None:
                continue
            t = entry.target
            past.append(PastAction(entry.policy, target_key(t.kind, t.namespace, t.name), entry.started_at,
                                   running=entry.result == ActionResult.RUNNING.value))
    return past


async def history(client: httpx.AsyncClient, operator_namespace: str | None = None,
                  at: dt.datetime | None = None) -> list[PastAction]:
    """Every executed action: from the Incidents' journals, and from the ledger in the
    operator's namespace (``ledger``), which outlives a deleted Incident. One action in
    both counts once."""
    listing = await kubeapi.get(client, f"/apis/{API_VERSION}/incidents")
    found = past_actions(listing.get("items") or [])
    if operator_namespace:
        try:
            found += await ledger.load(client, operator_namespace, at or now())
        except kubeapi.NotFound:
            pass  # no operator namespace yet: nothing was ever recorded there
    unique: dict[tuple[str | None, str, dt.datetime], PastAction] = {}
    for action in found:
        key = (action.policy, action.target, action.started_at)
        unique[key] = PastAction(action.policy, action.target, action.started_at,
                                 running=action.running and unique.get(key, action).running)
    return list(unique.values())


def _counts(obj: dict[str, Any]) -> tuple[int | None, int | None]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    kind = obj.get("kind")
    if kind == "DaemonSet":
        return status.get("desiredNumberScheduled"), status.get("numberAvailable", 0)
    if kind in ("Deployment",):
        return spec.get("replicas", 1), status.get("availableReplicas", 0)
    if kind in ("StatefulSet", "ReplicaSet"):
        return spec.get("replicas", 1), status.get("readyReplicas", 0)
    return None, None


def _node_ready(node: dict[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _sizing(obj: dict[str, Any], action: RecommendedAction) -> tuple[int | None, int | None]:
    """(the memory limit setResources would raise, the fixed heap the container's flags set),
    in bytes, as the action computes them: a template without a limit is raised from the
    limit its pods were killed at (a LimitRange's default)."""
    if action.type != ActionType.SET_RESOURCES.value:
        return None, None
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    name = (action.parameters or {}).get("container")
    chosen = next((c for c in containers if c.get("name") == name), None) if name else (
        containers[0] if len(containers) == 1 else None)
    if chosen is None:
        return None, None
    memory = ((chosen.get("resources") or {}).get("limits") or {}).get("memory")
    killed = (action.parameters or {}).get("memoryKilledAtBytes")
    limit = parse_quantity(memory) if memory else (int(killed) if isinstance(killed, int) and killed > 0 else None)
    return limit, sizing.heap_of(chosen)


async def _kept_by_rollback(client: httpx.AsyncClient, action: RecommendedAction, obj: dict[str, Any]) -> int:
    """The Ready pods a rollback of ``obj`` keeps (they run the revision it returns to)."""
    if action.target.kind not in rollback.KINDS:
        return 0
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return 0
    history = await rollback.context(client, action, obj)
    pods = await kubeapi.get(client, kubeapi.collection("Pod", action.target.namespace),
                             {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))})
    return rollback.kept_ready(obj, history, pods.get("items") or [])


async def target_state(client: httpx.AsyncClient, action: RecommendedAction) -> tuple[TargetState, dict[str, Any] | None]:
    t = action.target
    try:
        obj = await kubeapi.get_or_none(client, kubeapi.object_path(t.kind, t.namespace, t.name))
    except kubeapi.NeedsUserError:
        return TargetState(exists=False), None
    if obj is None:
        return TargetState(exists=False), None
    obj.setdefault("kind", t.kind)
    metadata = obj.get("metadata") or {}
    replicas, ready = _counts(obj)
    owners: list[str] = []  # the controller chain, as target keys (a pod's ReplicaSet and Deployment)
    if t.kind == "Pod":
        owner = next((r for r in metadata.get("ownerReferences") or [] if r.get("controller")), None)
        if owner and owner.get("kind") in ("ReplicaSet", "StatefulSet", "DaemonSet"):
            owners.append(target_key(owner["kind"], t.namespace, owner["name"]))
            parent = await kubeapi.get_or_none(client, kubeapi.object_path(owner["kind"], t.namespace, owner["name"]))
            if parent:
                parent.setdefault("kind", owner["kind"])
                replicas, ready = _counts(parent)
                grand = next((r for r in (parent.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)
                if grand:
                    owners.append(target_key(grand.get("kind", ""), t.namespace, grand.get("name", "")))
    unavailable = rollout_unavailable(obj)
    kept = await _kept_by_rollback(client, action, obj) if action.type == ActionType.ROLLBACK.value else 0
    if t.kind == "ConfigMap":
        # restoreConfig acts for the workloads that use it: they are what the Incident is
        # about (owners) and what its restart takes replicas from (the blast radius).
        users = await restore_config.users(client, t.namespace or "", t.name)
        owners += [target_key(u["kind"], t.namespace, u["metadata"]["name"]) for u in users]
        counts = [_counts(u) for u in users]
        if counts and all(c[0] is not None for c in counts):
            replicas, ready = sum(c[0] or 0 for c in counts), sum(c[1] or 0 for c in counts)
        # Its users' restarts are their own rolling updates, all at once.
        strategies = [rollout_unavailable(u) for u in users]
        unavailable = sum(strategies) if strategies and None not in strategies else None  # type: ignore[arg-type]
    if t.kind == "Node":
        nodes = (await kubeapi.get(client, "/api/v1/nodes")).get("items") or []
        replicas, ready = len(nodes), sum(1 for n in nodes if _node_ready(n))
    revision = metadata.get("uid") if t.kind == "Pod" else (
        metadata.get("resourceVersion") if t.kind == "ConfigMap" else str(metadata.get("generation") or 0))  # no generation
    limit, heap = _sizing(obj, action)
    state = TargetState(exists=True, revision=revision, labels=metadata.get("labels") or {},
                        annotations=metadata.get("annotations") or {},
                        replicas=replicas, ready=ready, memory_limit_bytes=limit, heap_bytes=heap, owners=tuple(owners),
                        rollout_unavailable=unavailable, ready_kept=kept)
    return state, obj


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)

