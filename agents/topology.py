"""The topology agent: how the scope's objects hang together, and where that is broken.

It reports the edges of a causal graph as findings (kind ``Edge``: owner chain,
Service → workload, workload → ConfigMap / Secret / PVC / ServiceAccount, workload →
Service it depends on, named in env or config, pod → Node), which ranking turns into a
networkx graph, and the breaks it can see from objects alone:

- a Service whose selector matches no pod, or no ready pod, or whose targetPort no
  selected container exposes;
- a reference to a ConfigMap, Secret, PVC or ServiceAccount that does not exist;
- a PVC that is not Bound (and whether its StorageClass exists);
- a NetworkPolicy that isolates a workload from the clients that depend on it;
- a ResourceQuota that is used up;
- the RBAC bindings of each workload's ServiceAccount.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aisre.agents.base import AgentContext, Findings, list_secrets, mentions_host, programs, resource_of, template_references
from aisre.api.evidence import AgentResult
from aisre.api.meta import ResourceRef
from aisre.kube.reader import KubeAccessError
from aisre.kube import netpol
from aisre.kube.scope import labels_match, ref

AGENT = "topology"


def _owners(ctx: AgentContext) -> list[dict[str, Any]]:
    """Top-level workloads (not ReplicaSets owned by a Deployment)."""
    return [w for w in ctx.scope.workloads if ctx.scope.top_owner(w) is w]


def _template(workload: dict[str, Any]) -> dict[str, Any]:
    return (workload.get("spec") or {}).get("template") or {}


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return (_template(workload).get("metadata") or {}).get("labels") or {}


def _env_values(workload: dict[str, Any], config_data: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(key, value) pairs a workload's containers see: env values and referenced ConfigMap data."""
    pairs: list[tuple[str, str]] = []
    spec = _template(workload).get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env in container.get("env") or []:
            if env.get("value"):
                pairs.append((env["name"], str(env["value"])))
        for env_from in container.get("envFrom") or []:
            name = (env_from.get("configMapRef") or {}).get("name")
            pairs.extend(_config_pairs(config_data.get(name) or {}))
        for arg in (container.get("args") or []) + (container.get("command") or []):
            pairs.append(("ARG", str(arg)))
    for volume in spec.get("volumes") or []:
        name = (volume.get("configMap") or {}).get("name")
        pairs.extend(_config_pairs(config_data.get(name) or {}))
    return pairs


# `address: ratelimit`, `host = "db"`, `{address: cache, port_value: 6379}`: one setting of a
# config file (YAML, TOML, INI, properties) whose value is a single word.
FILE_SETTING = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)[ \t]*[:=][ \t]*[\"']?(?P<value>[A-Za-z0-9][\w.-]*)[\"']?[ \t]*(?=[,}\];#\n]|$)",
                          re.M)


def _config_pairs(data: dict[str, str]) -> list[tuple[str, str]]:
    """A ConfigMap's keys and values, and for a mounted file the settings inside it: a file's
    `address: ratelimit` names a host as surely as an env var `RATELIMIT_ADDRESS=ratelimit`."""
    pairs = list(data.items())
    for text in data.values():
        if "\n" in text:
            pairs.extend((m.group("key"), m.group("value")) for m in FILE_SETTING.finditer(text[:65536]))
    return pairs


async def _list_allowed(reader: Any, plural: str, namespace: str) -> list[dict[str, Any]]:
    """A list the operator may not be allowed (an older chart's RBAC): empty then, not an error."""
    try:
        return await reader.list(plural, namespace)
    except KubeAccessError as error:
        if error.status in (403, 404):
            return []
        raise


async def gather(ctx: AgentContext) -> AgentResult:
    started = time.perf_counter()
    # Edges are many and cheap; they feed the graph, not the status.
    out = Findings(AGENT, ctx.bounds.findings_per_agent * 4)
    ns = ctx.scope.namespace
    reader = ctx.reader
    services = await reader.list("services", ns)
    pods = await reader.list("pods", ns)
    configmaps = await reader.list("configmaps", ns)
    secrets = await list_secrets(reader, ns)  # None: not allowed to list them
    pvcs = await reader.list("persistentvolumeclaims", ns)
    policies = await reader.list("networkpolicies", ns)
    quotas = await reader.list("resourcequotas", ns)
    accounts = await reader.list("serviceaccounts", ns)
    bindings = await reader.list("rolebindings", ns)
    roles = await reader.list("roles", ns)
    ingresses = await _list_allowed(reader, "ingresses", ns)
    owners = _owners(ctx)

    def edge(src: str, dst: str, relation: str, **data: Any) -> None:
        out.add("Edge", f"{src} -{relation}-> {dst}", key=(src, dst, relation), src=src, dst=dst, relation=relation, **data)

    # Owner chain and placement.
    for pod in ctx.scope.pods:
        chain = [pod, *ctx.scope.owner_chain(pod)]
        for child, parent in zip(chain, chain[1:], strict=False):
            edge(ref(child), ref(parent), "ownedBy")
        if pod["spec"].get("nodeName"):
            edge(ref(ctx.scope.top_owner(pod)), f"Node/{pod['spec']['nodeName']}", "runsOn")

    # Twins: workloads that run the same program (a canary's primary, blue/green colours);
    # one of them at zero replicas loses nothing while the other serves.
    by_program: dict[frozenset[tuple[str, str, str]], list[str]] = {}
    for workload in owners:
        if workload["kind"] in ("Deployment", "StatefulSet"):
            running = frozenset(programs(_template(workload)).values())
            if running:
                by_program.setdefault(running, []).append(ref(workload))
    for group in by_program.values():
        for a in group:
            for b in group:
                if a != b:
                    edge(a, b, "twinOf")

    # Services: who backs them, and whether they can route at all.
    targets: dict[str, list[netpol.DestPort]] = {}  # Service -> the pod ports it leads to
    for service in services:
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        sref = ref(service)
        backing = [w for w in owners if selector and _pod_labels(w) and labels_match({"matchLabels": selector}, _pod_labels(w))]
        containers = [c for w in backing for c in (_template(w).get("spec") or {}).get("containers") or []]
        targets[sref] = netpol.destination_ports(spec.get("ports") or [], containers)
        # What exists and on which ports: ranking resolves the hosts logs name against it.
        out.add("ServicePorts", f"{sref} serves {[p.get('port') for p in spec.get('ports') or []]}", key=(sref, "ports"),
                service=sref, ports=[p.get("port") for p in spec.get("ports") or []],
                port_names=[p.get("name") for p in spec.get("ports") or [] if p.get("name")],
                targets=[list(t) for t in targets[sref]])
        if not selector or spec.get("type") == "ExternalName":
            continue
        selected = [p for p in pods if labels_match({"matchLabels": selector}, p["metadata"].get("labels"))
                    and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        for workload in backing:
            edge(sref, ref(workload), "routesTo")
        ready = [p for p in selected if any(c.get("type") == "Ready" and c.get("status") == "True"
                                            for c in (p.get("status") or {}).get("conditions") or [])]
        res = resource_of(service)
        if not selected and not backing:
            # Near misses: workloads sharing the selector's keys but not its values.
            near = [ref(w) for w in owners if set(selector) & set(_pod_labels(w))]
            out.add("ServiceSelectorMatchesNothing",
                    f"{sref} selects {selector} but no pod or workload carries those labels"
                    + (f" (similar: {', '.join(near[:3])})" if near else ""),
                    key=(sref,), resource=res, service=sref, selector=selector, near=near[:5])
            continue
        if not ready:
            out.add("ServiceWithoutReadyEndpoints",
                    f"{sref} has no ready endpoints ({len(selected)} selected pods, none ready)",
                    key=(sref, "ready"), resource=res, service=sref, selected=len(selected),
                    backing=[ref(w) for w in backing])
        container_ports: dict[Any, bool] = {}
        port_names: dict[Any, str] = {}  # container port number -> its name
        for pod in selected or []:
            for container in pod["spec"].get("containers") or []:
                for port in container.get("ports") or []:
                    container_ports[port.get("containerPort")] = True
                    if port.get("name"):
                        container_ports[port["name"]] = True
                        port_names[port.get("containerPort")] = port["name"]
        if container_ports:
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                # A named Service port sent by number to a container port of another name,
                # while a container port of its own name exists ("http" → the "metrics" port).
                misnamed = (port.get("name") and isinstance(target, int) and port_names.get(target) not in (None, port["name"])
                            and port["name"] in container_ports)
                if misnamed:
                    out.add("ServicePortMismatch",
                            f"{sref} port {port.get('name')} ({port.get('port')}) targets {target}, the containers' "
                            f"{port_names[target]!r} port, not their {port['name']!r} port",
                            key=(sref, str(port.get("port"))), resource=res, service=sref, port=port.get("port"),
                            target_port=target, container_ports=sorted(str(p) for p in container_ports), misnamed=True)
                elif target not in container_ports:
                    out.add("ServicePortMismatch",
                            f"{sref} port {port.get('port')} targets {target}, which no selected container exposes "
                            f"(they expose {sorted(str(p) for p in container_ports)})",
                            key=(sref, str(port.get("port"))), resource=res, service=sref, port=port.get("port"),
                            target_port=target, container_ports=sorted(str(p) for p in container_ports))

    # Dependencies named in env, args and mounted config.
    config_data = {c["metadata"]["name"]: {k: str(v) for k, v in (c.get("data") or {}).items()} for c in configmaps}
    for workload in owners:
        pairs = _env_values(workload, config_data)
        for service in services:
            sname = service["metadata"]["name"]
            own = (service.get("spec") or {}).get("selector") or {}
            if own and labels_match({"matchLabels": own}, _pod_labels(workload)):
                continue  # a workload does not depend on its own Service
            via = [key for key, value in pairs if mentions_host(key, value, sname, ns)]
            if via:
                edge(ref(workload), ref(service), "dependsOn", via=via[:5])

    # An Ingress routes outside users to its Services: they depend on them as clients do.
    for ingress in ingresses:
        spec = ingress.get("spec") or {}
        backends = [spec.get("defaultBackend") or {}] + [
            path.get("backend") or {} for rule in spec.get("rules") or [] for path in (rule.get("http") or {}).get("paths") or []]
        for name in sorted({(b.get("service") or {}).get("name") for b in backends} - {None}):
            edge(ref(ingress), f"Service/{name}", "dependsOn", via=["ingress"])

    # References that must exist.
    existing = {("ConfigMap", c["metadata"]["name"]) for c in configmaps}
    existing |= {("Secret", s["metadata"]["name"]) for s in secrets or []}
    existing |= {("PersistentVolumeClaim", p["metadata"]["name"]) for p in pvcs}
    existing |= {("ServiceAccount", a["metadata"]["name"]) for a in accounts}
    for workload in owners:
        spec = _template(workload).get("spec") or {}
        references = template_references(_template(workload))
        refs = [(r.kind, r.name, r.optional) for r in references]
        sources = {(r.kind, r.name): r.source for r in reversed(references)}  # the first use wins
        env_names: dict[tuple[str, str], list[str]] = {}
        optional_keys: dict[tuple[str, str], list[str]] = {}  # read only if present: a rename leaves them unset
        for r in references:
            if r.env_name:
                env_names.setdefault((r.kind, r.name), []).append(r.env_name)
            if r.optional and r.key:
                optional_keys.setdefault((r.kind, r.name), []).append(r.key)
        for reference in references:
            name, item = reference.name, reference.key
            if reference.kind == "ConfigMap" and item and name in config_data and item not in config_data[name]:
                out.add("MissingConfigKey", f"{ref(workload)} needs key {item} of ConfigMap/{name}, which lacks it",
                        key=(ref(workload), name, item), resource=ResourceRef(kind="ConfigMap", name=name, namespace=ns),
                        owner=ref(workload), config_kind=reference.kind, name=name, item=item)
        for volume_claim in (workload.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = volume_claim["metadata"]["name"]
            for pvc in pvcs:
                if pvc["metadata"]["name"].startswith(f"{claim}-{workload['metadata']['name']}-"):
                    edge(ref(workload), ref(pvc), "mounts")
        sa = spec.get("serviceAccountName") or "default"
        refs.append(("ServiceAccount", sa, False))
        pull_secrets = {p.get("name") for p in spec.get("imagePullSecrets") or [] if p.get("name")}
        refs.extend(("Secret", name, False) for name in sorted(pull_secrets))
        # The credentials its pulls present: the pod's pull secrets and its ServiceAccount's.
        account = next((a for a in accounts if a["metadata"]["name"] == sa), {})
        presented = sorted(pull_secrets | {p.get("name") for p in account.get("imagePullSecrets") or [] if p.get("name")})
        if presented:
            out.add("PullSecrets", f"{ref(workload)} pulls with {', '.join(presented)}", key=(ref(workload), "pull"),
                    owner=ref(workload), secrets=presented,
                    existing=[n for n in presented if secrets is None or ("Secret", n) in existing])
        for kind, name, optional in refs:
            if not name:
                continue
            edge(ref(workload), f"{kind}/{name}", "uses", source=sources.get((kind, name), ""),
                 env_names=env_names.get((kind, name), [])[:20], optional_keys=optional_keys.get((kind, name), [])[:20])
            unknown = kind == "Secret" and secrets is None
            if (kind, name) not in existing and not optional and not unknown and not (kind == "ServiceAccount" and name == "default"):
                pull = kind == "Secret" and name in pull_secrets
                out.add("MissingReference", f"{ref(workload)} references {'pull secret ' if pull else ''}{kind}/{name}, "
                        "which does not exist", key=(ref(workload), kind, name), resource=resource_of(workload),
                        owner=ref(workload), ref_kind=kind, name=name, pull_secret=pull)

    # Claims that are not bound.
    storage_classes = {s["metadata"]["name"] for s in await reader.list("storageclasses")}
    for pvc in pvcs:
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        if phase != "Bound":
            sc = (pvc.get("spec") or {}).get("storageClassName")
            out.add("PVCNotBound",
                    f"{ref(pvc)} is {phase}" + (f"; StorageClass {sc} {'exists' if sc in storage_classes else 'does not exist'}" if sc else ""),
                    key=(ref(pvc),), resource=resource_of(pvc), claim=ref(pvc), phase=phase, storage_class=sc,
                    storage_class_exists=sc in storage_classes if sc else None)

    # NetworkPolicies: which workloads they isolate, and from which dependents.
    depends = [f.data for f in out.items.values() if f.kind == "Edge" and f.data["relation"] == "dependsOn"]
    routes = {(f.data["src"], f.data["dst"]) for f in out.items.values() if f.kind == "Edge" and f.data["relation"] == "routesTo"}
    by_ref = {ref(w): w for w in owners}
    for workload in owners:  # ranking weighs policies against peers the logs name, too
        out.add("PodLabels", f"{ref(workload)}'s pods carry {_pod_labels(workload)}", key=(ref(workload), "labels"),
                owner=ref(workload), labels=_pod_labels(workload))
    named = [(ref(p), p.get("spec") or {}) for p in policies]
    for policy in policies:
        spec = policy.get("spec") or {}
        types = netpol.policy_types(spec)
        out.add("NetworkPolicy", f"{ref(policy)} ({', '.join(types)}) selects {spec.get('podSelector') or 'every pod'}",
                key=(ref(policy), "rules"), resource=resource_of(policy), policy=ref(policy),
                spec={k: spec.get(k) for k in ("podSelector", "policyTypes", "ingress", "egress") if k in spec},
                allows_dns=netpol.allows_dns(spec))
        for workload in owners:
            if netpol.selects(spec, _pod_labels(workload)):
                edge(ref(policy), ref(workload), "isolates", policy_types=types)
    blocked: dict[str, list[tuple[str, str, str]]] = {}
    for dep in depends:
        client = by_ref.get(dep["src"])
        for (svc, dst) in routes:
            if svc != dep["dst"] or dst not in by_ref or client is None:
                continue
            for name, direction in netpol.blockers(named, _pod_labels(client), _pod_labels(by_ref[dst]),
                                                   targets.get(svc))[:1]:
                blocked.setdefault(name, []).append((ref(client), dst, direction))
    for policy in policies:
        pairs = blocked.get(ref(policy))
        if pairs:
            out.add("NetworkPolicyBlocks",
                    f"{ref(policy)} blocks " + "; ".join(f"{c} -> {s} ({d})" for c, s, d in pairs[:5]),
                    key=(ref(policy),), resource=resource_of(policy), policy=ref(policy),
                    blocked=[{"client": c, "server": s, "direction": d} for c, s, d in pairs[:10]])

    # Quotas that are used up.
    for quota in quotas:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        full = [k for k in hard if k in used and used[k] == hard[k]]
        if full:
            out.add("QuotaExhausted", f"{ref(quota)} is used up for {', '.join(full)}", key=(ref(quota),),
                    resource=resource_of(quota), quota=ref(quota), full=full, hard=hard, used=used)

    # RBAC of each workload's ServiceAccount.
    for workload in owners:
        sa = (_template(workload).get("spec") or {}).get("serviceAccountName") or "default"
        bound = [b for b in bindings if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                                            and s.get("namespace", ns) == ns for s in b.get("subjects") or [])]
        out.add("ServiceAccountAccess",
                f"{ref(workload)} runs as ServiceAccount/{sa}, bound by {', '.join(ref(b) for b in bound) or 'no RoleBinding'}",
                key=(ref(workload), sa), resource=resource_of(workload), owner=ref(workload), service_account=sa,
                bindings=[{"binding": ref(b), "role": f"{(b.get('roleRef') or {}).get('kind')}/{(b.get('roleRef') or {}).get('name')}"}
                          for b in bound])
    for binding in bindings:
        role_ref = binding.get("roleRef") or {}
        role = next((r for r in roles if r["metadata"]["name"] == role_ref.get("name")), None)
        out.add("RoleBinding", f"{ref(binding)} grants {role_ref.get('kind')}/{role_ref.get('name')} to "
                + ", ".join(f"{s.get('kind')}/{s.get('name')}" for s in binding.get("subjects") or []),
                key=(ref(binding),), resource=resource_of(binding), binding=ref(binding),
                role=f"{role_ref.get('kind')}/{role_ref.get('name')}", role_exists=role is not None or role_ref.get("kind") == "ClusterRole",
                subjects=[{"kind": s.get("kind"), "name": s.get("name")} for s in binding.get("subjects") or []],
                rules=(role or {}).get("rules") or [])
    for role in roles:
        out.add("Role", f"{ref(role)} allows " + "; ".join(
            f"{','.join(r.get('verbs') or [])} on {','.join(r.get('resources') or [])}" for r in role.get("rules") or []),
            key=(ref(role),), resource=resource_of(role), role=ref(role), rules=role.get("rules") or [])

    result = out.result()
    result.latency_seconds = time.perf_counter() - started
    return result
