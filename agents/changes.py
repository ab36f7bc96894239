"""The changes agent: what changed shortly before the trouble.

- rollouts: the pod template of a Deployment's newest ReplicaSet against the previous
  revision (StatefulSet/DaemonSet: their ControllerRevisions) — image, command and args,
  env, resources, probes, volumes, scheduling, service account, pull secrets;
- ConfigMaps and Secrets the scope's workloads use, changed after creation (from
  managedFields times; a Secret's values are never read, only its metadata);
- Services, NetworkPolicies, ResourceQuotas, PVCs, HPAs, Roles and RoleBindings created
  or changed in the window;
- replica changes of the workloads (who set spec.replicas, when).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from aisre.agents.base import AgentContext, Findings, list_secrets, parse_time, programs, resource_of, template_references
from aisre.api.evidence import AgentResult
from aisre.api.meta import ResourceRef
from aisre.kube.scope import ref

AGENT = "changes"
CONTAINER_FIELDS = ("image", "command", "args", "env", "envFrom", "resources", "livenessProbe", "readinessProbe",
                    "startupProbe", "ports", "volumeMounts", "securityContext")
POD_FIELDS = ("volumes", "nodeSelector", "affinity", "tolerations", "serviceAccountName", "imagePullSecrets",
              "priorityClassName", "restartPolicy")
WATCHED_KINDS = ("services", "networkpolicies", "resourcequotas", "persistentvolumeclaims",
                 "horizontalpodautoscalers", "roles", "rolebindings", "limitranges")


def last_change(obj: dict[str, Any]) -> dt.datetime | None:
    """The newest managedFields time (any manager), else the creation time."""
    times = [parse_time(m.get("time")) for m in obj["metadata"].get("managedFields") or []]
    times = [t for t in times if t]
    return max(times) if times else parse_time(obj["metadata"].get("creationTimestamp"))


def _short(value: Any) -> Any:
    text = json.dumps(value, sort_keys=True)
    return value if len(text) <= 300 else text[:300] + "…"


# A content digest (a checksum of a ConfigMap, Reloader's `STAKATER_…` variables, a config
# hash): an env value of this shape changes only to make the pods restart.
DIGEST = re.compile(r"(sha\d+:)?[0-9a-f]{16,}|[0-9A-F]{16,}")


def restart_trigger(before: list[dict[str, Any]] | None, after: list[dict[str, Any]] | None) -> list[str] | None:
    """The variables of an env change that only restarts the pods: every variable added,
    removed or changed holds a digest (before and after). None when any other variable
    changed (pure)."""
    was = {e.get("name"): e for e in before or []}
    now = {e.get("name"): e for e in after or []}
    changed = sorted(n for n in set(was) | set(now) if was.get(n) != now.get(n))
    for name in changed:
        for entry in (was.get(name), now.get(name)):
            if entry is not None and not DIGEST.fullmatch(str(entry.get("value") or "")):
                return None
    return [str(n) for n in changed] or None


def diff_templates(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Changed fields between two pod templates, keyed like ``containers[web].image``. An env
    change that only restarts the pods is a restart (``restartedAt``), not a config change."""
    changes: dict[str, dict[str, Any]] = {}
    b_spec, a_spec = before.get("spec") or {}, after.get("spec") or {}
    for group in ("initContainers", "containers"):
        b_by = {c["name"]: c for c in b_spec.get(group) or []}
        a_by = {c["name"]: c for c in a_spec.get(group) or []}
        for name in sorted(set(b_by) | set(a_by)):
            if name not in b_by or name not in a_by:
                changes[f"{group}[{name}]"] = {"before": name in b_by, "after": name in a_by}
                continue
            for field in CONTAINER_FIELDS:
                if b_by[name].get(field) != a_by[name].get(field):
                    trigger = restart_trigger(b_by[name].get(field), a_by[name].get(field)) if field == "env" else None
                    if trigger:
                        changes["restartedAt"] = {"before": None, "after": None, "via": f"env {', '.join(trigger)[:200]}"}
                        continue
                    changes[f"{group}[{name}].{field}"] = {
                        "before": _short(b_by[name].get(field)), "after": _short(a_by[name].get(field))
                    }
    for field in POD_FIELDS:
        if b_spec.get(field) != a_spec.get(field):
            changes[field] = {"before": _short(b_spec.get(field)), "after": _short(a_spec.get(field))}
    b_meta = (before.get("metadata") or {}).get("annotations") or {}
    a_meta = (after.get("metadata") or {}).get("annotations") or {}
    if b_meta.get("kubectl.kubernetes.io/restartedAt") != a_meta.get("kubectl.kubernetes.io/restartedAt") \
            and "restartedAt" not in changes:
        changes["restartedAt"] = {"before": b_meta.get("kubectl.kubernetes.io/restartedAt"),
                                  "after": a_meta.get("kubectl.kubernetes.io/restartedAt")}
    return changes


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
    except ValueError:
        return 0


async def observe_rollouts(ctx: AgentContext, out: Findings) -> None:
    scope = ctx.scope
    for workload in scope.workloads:
        wref = ref(workload)
        history: list[tuple[int, dict[str, Any], dt.datetime | None]] = []
        if workload["kind"] == "Deployment":
            for rs in scope.workloads:
                if rs["kind"] == "ReplicaSet" and any(
                    o.get("uid") == workload["metadata"]["uid"] for o in rs["metadata"].get("ownerReferences") or []
                ):
                    history.append((_revision(rs), rs["spec"].get("template") or {}, parse_time(rs["metadata"].get("creationTimestamp"))))
        elif workload["kind"] in ("StatefulSet", "DaemonSet"):
            for rev in await ctx.reader.list("controllerrevisions", scope.namespace):
                if any(o.get("uid") == workload["metadata"]["uid"] for o in rev["metadata"].get("ownerReferences") or []):
                    template = ((rev.get("data") or {}).get("spec") or {}).get("template") or {}
                    history.append((int(rev.get("revision", 0)), template, parse_time(rev["metadata"].get("creationTimestamp"))))
        else:
            continue
        history.sort(key=lambda item: item[0])
        if len(history) < 2:
            continue
        (prev_rev, before, _), (rev, after, created) = history[-2], history[-1]
        changes = diff_templates(before, after)
        if not changes:
            continue
        fields = sorted({key.rsplit(".", 1)[-1] if "." in key else key for key in changes})
        if set(fields) & {"image", "command", "args"}:
            _same_program(ctx, out, workload, before, after)
        out.add(
            "TemplateChange",
            f"{wref} revision {rev} changed {', '.join(sorted(changes))[:300]}",
            key=(wref, str(rev)),
            resource=resource_of(workload),
            time=created,
            owner=wref, revision=rev, previous_revision=prev_rev, fields=fields, changes=changes,
        )


def same_program(before: dict[str, Any], after: dict[str, Any],
                 others: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, tuple[str, str, str], str]]:
    """(container, other workload, program, command before) where a rollout (``before`` →
    ``after`` pod template) leaves a container running exactly what another workload's
    container runs (same repository, command and args) and it ran something else before: a
    worker that lost its command now runs the web server's default one, a service started
    with another service's binary. Two names for one program is how a wrong command looks
    when nothing crashes."""
    was = programs(before)
    found = []
    for other, template in others:
        theirs = set(programs(template).values())
        for container, program in programs(after).items():
            if program in theirs and was.get(container) != program and was.get(container) not in theirs:
                found.append((container, other, program, was.get(container, ("", "null", "null"))[1]))
    return found


def _same_program(ctx: AgentContext, out: Findings, workload: dict[str, Any], before: dict[str, Any],
                  after: dict[str, Any]) -> None:
    others = [(ref(w), (w.get("spec") or {}).get("template") or {}) for w in ctx.scope.workloads
              if w is not workload and w["kind"] != "ReplicaSet" and ctx.scope.top_owner(w) is w]
    for container, other, program, command_before in same_program(before, after, others):
        out.add("RunsSameProgram",
                f"{ref(workload)}'s container {container} now runs what {other} runs ({program[0]}, command {program[1]}, "
                f"args {program[2]}); before its rollout it ran command {command_before}",
                key=(ref(workload), container, other), resource=resource_of(workload), owner=ref(workload),
                container=container, other=other, command_before=command_before, command_after=program[1])


async def observe_config(ctx: AgentContext, out: Findings) -> None:
    scope = ctx.scope
    users: dict[tuple[str, str], list[str]] = {}
    pull_users: dict[str, list[str]] = {}
    accounts = {a["metadata"]["name"]: a for a in await ctx.reader.list("serviceaccounts", scope.namespace)}
    for workload in scope.workloads:
        if workload["kind"] == "ReplicaSet" and scope.top_owner(workload) is not workload:
            continue
        template = (workload.get("spec") or {}).get("template") or {}
        for reference in template_references(template):
            if reference.kind in ("ConfigMap", "Secret"):
                users.setdefault((reference.kind, reference.name), []).append(ref(workload))
        spec = template.get("spec") or {}
        account = accounts.get(spec.get("serviceAccountName") or "default") or {}
        for secret in (spec.get("imagePullSecrets") or []) + (account.get("imagePullSecrets") or []):
            if secret.get("name"):
                pull_users.setdefault(secret["name"], []).append(ref(workload))
                users.setdefault(("Secret", secret["name"]), []).append(ref(workload))
    listed = {"ConfigMap": await ctx.reader.list("configmaps", scope.namespace),
              "Secret": await list_secrets(ctx.reader, scope.namespace) or []}  # Secrets may not be listable
    for kind, objects in listed.items():
        for obj in objects:
            name = obj["metadata"]["name"]
            used_by = users.get((kind, name), [])
            if not used_by and not scope.whole_namespace:
                continue
            created = parse_time(obj["metadata"].get("creationTimestamp"))
            changed = last_change(obj)
            updated_after_create = bool(created and changed and (changed - created).total_seconds() >= 1)
            if not used_by and not updated_after_create:
                continue
            out.add(
                "ConfigChanged" if updated_after_create else "ConfigPresent",
                f"{kind}/{name} {'changed at ' + changed.isoformat() if updated_after_create else 'created'}"
                f"{', used by ' + ', '.join(used_by) if used_by else ''}",
                key=(kind, name, changed.isoformat() if changed else ""),
                resource=ResourceRef(kind=kind, name=name, namespace=scope.namespace),
                time=changed,
                config_kind=kind, name=name, created=created.isoformat() if created else None,
                changed=changed.isoformat() if changed else None, updated_after_create=updated_after_create,
                used_by=sorted(set(used_by)), pull_secret_of=sorted(set(pull_users.get(name, []))) if kind == "Secret" else [],
            )


async def observe_objects(ctx: AgentContext, out: Findings) -> None:
    for plural in WATCHED_KINDS:
        for obj in await ctx.reader.list(plural, ctx.scope.namespace):
            created = parse_time(obj["metadata"].get("creationTimestamp"))
            changed = last_change(obj)
            if not changed or changed < ctx.window_start:
                continue
            updated = bool(created and (changed - created).total_seconds() >= 1)
            out.add(
                "ObjectChanged",
                f"{ref(obj)} {'updated' if updated else 'created'} at {changed.isoformat()}",
                key=(ref(obj), changed.isoformat()),
                resource=resource_of(obj),
                time=changed,
                object=ref(obj), updated_after_create=updated, created=created.isoformat() if created else None,
            )


def observe_replicas(ctx: AgentContext, out: Findings) -> None:
    for workload in ctx.scope.workloads:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        created = parse_time(workload["metadata"].get("creationTimestamp"))
        for entry in workload["metadata"].get("managedFields") or []:
            spec_fields = ((entry.get("fieldsV1") or {}).get("f:spec") or {})
            when = parse_time(entry.get("time"))
            if "f:replicas" not in spec_fields or not when or not created:
                continue
            if (when - created).total_seconds() < 1:
                continue
            replicas = (workload.get("spec") or {}).get("replicas")
            out.add(
                "ReplicasChanged",
                f"{ref(workload)} replicas set to {replicas} by {entry.get('manager', '?')} at {when.isoformat()}",
                key=(ref(workload), entry.get("manager", ""), when.isoformat()),
                resource=resource_of(workload),
                time=when,
                owner=ref(workload), replicas=replicas, manager=entry.get("manager", ""),
            )


async def gather(ctx: AgentContext) -> AgentResult:
    started = time.perf_counter()
    out = Findings(AGENT, ctx.bounds.findings_per_agent)
    await observe_rollouts(ctx, out)
    await observe_config(ctx, out)
    await observe_objects(ctx, out)
    observe_replicas(ctx, out)
    result = out.result()
    result.latency_seconds = time.perf_counter() - started
    return result
