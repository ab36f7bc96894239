"""The Helm chart renders what each values combination promises: `helm lint`, the
operator Deployment and its environment (read back by the operator's own config), RBAC
from values (scope, enabled actions, no Secret values), leader election on a Lease and
the PDB with more than one replica (no Kopf peering anywhere), the optional ServiceMonitor
and dashboard, and refusals by values.schema.json."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

import aisre

from aisre.api.taxonomy import ActionType
from aisre.kube.resources import RESOURCES
from aisre.operator import metrics as operator_metrics
from aisre.operator.config import OperatorConfig
from aisre.operator.detection.service import WATCHED
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.leader import LeaseSettings
from chart_render import CHART, container, env_of, find, helm, one, render, rules_of

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
READ = {"get", "list", "watch"}


def operator_rules(objects, kind: str = "ClusterRole", name: str = "aisre-operator", namespace: str | None = None):
    return set(rules_of(one(objects, kind, name, namespace)))


def test_helm_lint_is_clean() -> None:
    for sets in ([], ["replicaCount=2", "serviceMonitor.enabled=true", "dashboard.enabled=true"],
                 ["rbac.scope=namespace", "watch.namespaces={shop,pay}"]):
        done = helm("lint", "--strict", str(CHART), *[a for s in sets for a in ("--set", s)])
        assert "0 chart(s) failed" in done.stdout, done.stdout


def test_defaults() -> None:
    objects = render()
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Secret", "Service",
                     "ServiceAccount", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert not find(objects, "PodDisruptionBudget")
    assert_no_kopf_peering(objects)
    # Every object is the release's (the uninstall test finds leftovers by these labels).
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "aisre" and labels["app.kubernetes.io/name"] == "aisre", obj
    deployment = one(objects, "Deployment", "aisre")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == "aisre"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    main = container(objects)
    assert main["image"] == "aisre:0.1.0" and "command" not in main  # the image's entrypoint: aisre run
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
    assert main["resources"]["requests"] and main["resources"]["limits"]
    # Probes on the operator's health endpoints (operator/http.py), on the named port.
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    service = one(objects, "Service", "aisre")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    # A writable /tmp only (the root filesystem is read-only), and the signing key, read-only.
    assert [(m["mountPath"], m.get("readOnly", False)) for m in main["volumeMounts"]] == [
        ("/tmp", False), ("/etc/aisre/signing", True)]


def pod_labels(deployment) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_the_operator_reads_the_rendered_environment(tmp_path) -> None:
    """The env names are the operator's: its own config parses them into the values set."""
    key = tmp_path / "api-key"
    key.write_text("sk-test\n")
    objects = render("llm.apiKeySecret.name=anthropic", "llm.model=claude-x", "llm.dailyBudgetUsd=2.5",
                     "llm.defaultEnabled=true", "prometheus.url=http://prom.monitoring:9090",
                     "prometheus.timeoutSeconds=3", "detection.enabled=false", "detection.thresholds.pendingGrace=45",
                     "detection.thresholds.restarts=5", "watch.excludeNamespaces={kube-system,infra}",
                     "remediation.maxVerifySeconds=90", "logLevel=DEBUG")
    env = env_of(objects)
    assert env["AISRE_LLM_API_KEY_FILE"] == "/etc/aisre/llm/api-key"
    env["AISRE_LLM_API_KEY_FILE"] = str(key)  # where the test put the Secret's file
    config = OperatorConfig.from_env(env)
    assert config.http_host == "0.0.0.0" and config.http_port == 8080
    assert config.namespaces == () and config.exclude_namespaces == ("kube-system", "infra")
    assert config.operator_namespace == "aisre-system" and config.detection is False
    assert config.executor_user == "system:serviceaccount:aisre-system:aisre-executor"
    assert config.thresholds.pending_grace == 45 and config.thresholds.restarts == 5
    assert config.llm.api_key == "sk-test" and config.llm.model == "claude-x" and config.llm.default_enabled
    assert config.llm.daily_budget_usd == 2.5
    assert config.prometheus is not None and config.prometheus.url == "http://prom.monitoring:9090"
    assert config.prometheus.query_timeout_s == 3 and config.log_level == "DEBUG" and config.peering_name is None
    assert config.max_verify_seconds == 90
    # Every AISRE_* name the chart sets is one the code reads.
    assert set(env) - known_env_names() == {"POD_NAMESPACE"}  # read by config.py


def known_env_names() -> set[str]:
    """Every AISRE_* name the installed package mentions, and the thresholds' variables."""
    root = Path(aisre.__file__).parent
    text = "\n".join(p.read_text() for p in root.rglob("*.py"))
    names = set(re.findall(r"AISRE_[A-Z_]+", text))
    return names | {f"AISRE_DETECT_{f.name.upper()}" for f in dataclasses.fields(Thresholds)}


def test_llm_key_is_a_mounted_secret_never_an_env_value() -> None:
    objects = render("llm.apiKeySecret.name=anthropic", "llm.apiKeySecret.key=key")
    main, pod = container(objects), one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "llm-api-key")
    assert volume["secret"]["secretName"] == "anthropic" and volume["secret"]["items"] == [{"key": "key", "path": "api-key"}]
    mount = next(m for m in main["volumeMounts"] if m["name"] == "llm-api-key")
    assert mount["mountPath"] == "/etc/aisre/llm" and mount["readOnly"] is True
    assert env_of(objects)["AISRE_LLM_API_KEY_FILE"] == "/etc/aisre/llm/api-key"
    assert "ANTHROPIC_API_KEY" not in env_of(objects)
    assert not any("secretKeyRef" in json.dumps(e) for e in main["env"])
    assert "AISRE_LLM_API_KEY_FILE" not in env_of(render())  # no Secret named: no LLM


def test_alertmanager_token_and_prometheus_auth() -> None:
    objects = render("alertmanager.tokenSecret.name=am-token", "prometheus.url=https://prom:9090",
                     "prometheus.basicAuth.username=aisre", "prometheus.basicAuth.passwordSecret.name=prom-auth",
                     "prometheus.insecureSkipVerify=true")
    env, main = env_of(objects), container(objects)
    assert env["AISRE_ALERTMANAGER_TOKEN_FILE"] == "/etc/aisre/alertmanager/token"
    assert any(m["mountPath"] == "/etc/aisre/alertmanager" for m in main["volumeMounts"])
    password = next(e for e in main["env"] if e["name"] == "AISRE_PROMETHEUS_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "prom-auth", "key": "password"}
    config = OperatorConfig.from_env(env)
    assert config.prometheus is not None and config.prometheus.username == "aisre" and not config.prometheus.verify_tls
    assert "AISRE_PROMETHEUS_URL" not in env_of(render())  # no URL: no metrics agent


def test_neo4j_uri_user_and_password_from_a_mounted_secret(tmp_path) -> None:
    objects = render("neo4j.uri=neo4j://neo4j.knowledge:7687", "neo4j.passwordSecret.name=neo4j-auth",
                     "neo4j.database=aisre")
    env, main = env_of(objects), container(objects)
    assert env["AISRE_NEO4J_URI"] == "neo4j://neo4j.knowledge:7687" and env["AISRE_NEO4J_USER"] == "neo4j"
    assert env["AISRE_NEO4J_PASSWORD_FILE"] == "/etc/aisre/neo4j/password" and env["AISRE_NEO4J_DATABASE"] == "aisre"
    assert any(m["mountPath"] == "/etc/aisre/neo4j" for m in main["volumeMounts"])
    [volume] = [v for v in one(objects, "Deployment", "aisre")["spec"]["template"]["spec"]["volumes"] if v["name"] == "neo4j-password"]
    assert volume["secret"]["secretName"] == "neo4j-auth"
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = OperatorConfig.from_env({**env, "AISRE_NEO4J_PASSWORD_FILE": str(secret)})
    assert config.neo4j is not None and (config.neo4j.uri, config.neo4j.password, config.neo4j.database) == \
        ("neo4j://neo4j.knowledge:7687", "s3cret", "aisre")
    assert "AISRE_NEO4J_URI" not in env_of(render()) and OperatorConfig.from_env(env_of(render())).neo4j is None
    bad = helm("template", "aisre", str(CHART), "--set", "neo4j.uri=http://neo4j:7474", check=False)
    assert bad.returncode != 0 and "/neo4j/uri" in bad.stderr


def lease_rules(objects, namespace: str = "aisre-system") -> set:
    return set(rules_of(one(objects, "Role", "aisre-operator-leases", namespace)))


def assert_no_kopf_peering(objects) -> None:
    """Leader election is a Lease: no kopf.dev objects, and no role grants anything of kopf.dev."""
    assert not any(o["apiVersion"].startswith("kopf.dev/") for o in objects)
    assert not any(g == "kopf.dev" for o in objects if o["kind"] in ("ClusterRole", "Role") for g, _, _ in rules_of(o))


def test_replicas_bring_leader_election_and_a_pdb() -> None:
    objects = render("replicaCount=2")
    env = env_of(objects)
    assert env["AISRE_PEERING"] == "aisre" and not any(n.startswith(("AISRE_LEADER_", "AISRE_PEERING_")) for n in env)
    config = OperatorConfig.from_env(env)
    assert config.peering_name == "aisre" and config.lease_name == "aisre-leader"
    assert config.operator_namespace == "aisre-system" and config.lease == LeaseSettings()
    # The Lease lives in the release's namespace: get, create, update there, nothing more, nowhere else.
    assert lease_rules(objects) == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
    assert one(objects, "RoleBinding", "aisre-operator-leases", "aisre-system")["subjects"] == [
        {"kind": "ServiceAccount", "name": "aisre", "namespace": "aisre-system"}]
    assert not any(r == "leases" for o in objects if o["kind"] in ("ClusterRole", "Role")
                   and o["metadata"]["name"] != "aisre-operator-leases" for _, r, _ in rules_of(o))
    assert_no_kopf_peering(objects)
    pdb = one(objects, "PodDisruptionBudget", "aisre")
    deployment = one(objects, "Deployment")
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    main = container(objects)
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz" and main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The same with rbac.scope=namespace: the Lease Role is in the release's namespace only.
    namespaced = render("replicaCount=2", "rbac.scope=namespace", "watch.namespaces={shop,pay}")
    assert lease_rules(namespaced) == lease_rules(objects)
    assert [o["metadata"]["namespace"] for o in find(namespaced, "Role", "aisre-operator-leases")] == ["aisre-system"]
    assert_no_kopf_peering(namespaced)
    # One replica: no election, but the Role is there anyway (scaling up never waits for RBAC).
    assert "AISRE_PEERING" not in env_of(render()) and lease_rules(render()) == lease_rules(objects)


def test_leader_election_timing() -> None:
    env = env_of(render("replicaCount=3", "peering.name=ha", "leaderElection.leaseSeconds=30",
                        "leaderElection.renewSeconds=4", "leaderElection.renewDeadlineSeconds=20",
                        "leaderElection.retrySeconds=1.5"))
    config = OperatorConfig.from_env(env)
    assert config.lease_name == "ha-leader"
    assert config.lease == LeaseSettings(duration=30, renew=4, renew_deadline=20, retry=1.5)
    # Without replicas there is no election to time.
    assert not any(n.startswith("AISRE_LEADER_") for n in env_of(render("leaderElection.leaseSeconds=30")))
    # The chart refuses what the operator would refuse at start-up, with the operator's defaults for the rest.
    for bad in ("leaderElection.renewSeconds=12", "leaderElection.leaseSeconds=10", "leaderElection.retrySeconds=0.0"):
        done = helm("template", "aisre", str(CHART), "--set", "replicaCount=2", "--set", bad, check=False)
        assert done.returncode != 0 and "leaderElection" in done.stderr, bad
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    defaults = LeaseSettings()
    for key, value in (("leaseSeconds", defaults.duration), ("renewSeconds", defaults.renew),
                       ("renewDeadlineSeconds", defaults.renew_deadline), ("retrySeconds", defaults.retry)):
        assert f"$le.{key} | default {value}" in helpers, key


def test_crds_install_unless_skipped() -> None:
    """crds/ holds aisre's CRDs (and nothing of Kopf's: no peering), outside the templates
    (so Helm installs them first, never deletes them, and `helm install --skip-crds`
    leaves them out)."""
    def crds(*flags: str) -> set[str]:
        out = helm("template", "aisre", str(CHART), *flags).stdout
        return {d["metadata"]["name"] for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"}
    aisre_crds = {"incidents.aisre.dev", "investigations.aisre.dev", "remediationpolicies.aisre.dev", "runbooks.aisre.dev",
                  "notificationroutes.aisre.dev"}
    assert crds("--include-crds") == aisre_crds
    assert crds() == set()
    names = {d["metadata"]["name"] for p in (CHART / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d}
    assert names == aisre_crds


def test_operator_rbac_is_read_only_outside_its_own_api() -> None:
    objects = render()
    rules = operator_rules(objects)
    writes = {(g, r, v) for g, r, v in rules if v not in READ}
    allowed_writes = {"aisre.dev", "", "events.k8s.io"}
    assert {g for g, _, _ in writes} <= allowed_writes
    assert {r for g, r, _ in writes if g in ("", "events.k8s.io")} == {"events"}
    assert ("aisre.dev", "investigations/status", "patch") in rules and ("aisre.dev", "incidents", "create") in rules
    assert not any(r == "secrets" for _, r, _ in rules), "no Secret access by default"
    assert not any(v in ("impersonate", "*", "escalate", "bind") or r == "*" for _, r, v in rules)
    # What the code reads, the role allows: detection's watches and the agents' reads.
    for _kind, prefix, plural, _field in WATCHED:
        group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
        assert {(group, plural, "list"), (group, plural, "watch")} <= rules, plural
    for plural, resource in RESOURCES.items():
        if plural != "secrets":
            assert (resource.group, plural, "list") in rules, plural
    assert ("", "pods/log", "get") in rules
    # listSecrets: list only (for metadata), never get or watch.
    secret_rules = {v for _, r, v in operator_rules(render("rbac.listSecrets=true")) if r == "secrets"}
    assert secret_rules == {"list"}


def test_impersonation_only_of_the_executor() -> None:
    objects = render()
    impersonating = [o for o in objects if o["kind"] in ("Role", "ClusterRole")
                     and any("impersonate" in r["verbs"] for r in o.get("rules") or [])]
    assert [o["metadata"]["name"] for o in impersonating] == ["aisre-impersonate-executor"]
    rule = impersonating[0]["rules"][0]
    assert rule["resources"] == ["serviceaccounts"] and rule["resourceNames"] == ["aisre-executor"]
    binding = one(objects, "RoleBinding", "aisre-impersonate-executor", "aisre-system")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aisre", "namespace": "aisre-system"}]
    executor = one(objects, "ServiceAccount", "aisre-executor")
    assert executor["automountServiceAccountToken"] is False


EXECUTOR_WRITES = {
    "deletePod": {("", "pods", "delete")},
    "rolloutRestart": {("apps", r, "patch") for r in ("deployments", "statefulsets", "daemonsets")},
    "setResources": {("apps", r, "patch") for r in ("deployments", "statefulsets", "daemonsets")},
    "scale": {("apps", "deployments", "patch"), ("apps", "statefulsets", "patch")},
    "rollback": {("apps", r, "patch") for r in ("deployments", "statefulsets", "daemonsets")} | {("", "pods", "delete")},
    "cordonNode": {("", "nodes", "patch")},
    "uncordonNode": {("", "nodes", "patch")},
    "restoreConfig": {("", "configmaps", "patch")} | {("apps", r, "patch") for r in ("deployments", "statefulsets", "daemonsets")},
    "drainNode": {("", "nodes", "patch"), ("", "pods/eviction", "create")},
}


def test_drain_is_evictions_only_and_only_where_enabled_cluster_wide() -> None:
    """drainNode: patch nodes and create pods/eviction (the Eviction API applies PDBs), no
    delete of pods; not by default; never in a namespaced install (nodes are shared)."""
    default = set(rules_of(one(render(), "ClusterRole", "aisre-executor")))
    assert ("", "pods/eviction", "create") not in default
    enabled = set(rules_of(one(render(json_sets=['remediation.executor.actions=["drainNode"]']), "ClusterRole",
                               "aisre-executor")))
    assert {r for r in enabled if r[2] not in READ} == {("", "nodes", "patch"), ("", "pods/eviction", "create")}
    scoped = render("rbac.scope=namespace", "watch.namespaces={shop}", json_sets=['remediation.executor.actions=["drainNode"]'])
    assert not {r for r in rules_of(one(scoped, "Role", "aisre-executor", "shop")) if r[2] not in READ}


def test_configmaps_are_patched_only_where_restore_config_is_enabled() -> None:
    """Not by default (a wider right than the workload actions); with it, patch on
    configmaps (and the restart of their users), never on secrets."""
    default = set(rules_of(one(render(), "ClusterRole", "aisre-executor")))
    assert not any(r in ("configmaps", "secrets") for _, r, _ in default)
    enabled = set(rules_of(one(render(json_sets=['remediation.executor.actions=["restoreConfig"]']), "ClusterRole",
                               "aisre-executor")))
    assert ("", "configmaps", "patch") in enabled and not any(r == "secrets" for _, r, _ in enabled)
    scoped = render("rbac.scope=namespace", "watch.namespaces={shop}", json_sets=['remediation.executor.actions=["restoreConfig"]'])
    assert ("", "configmaps", "patch") in set(rules_of(one(scoped, "Role", "aisre-executor", "shop")))


@pytest.mark.parametrize("actions", [["scale"], ["rollback"], ["deletePod", "cordonNode"], ["rolloutRestart"],
                                     ["restoreConfig"], ["drainNode"], ["cordonNode", "drainNode"], []],
                         ids=lambda a: "+".join(a) or "none")
def test_executor_gets_only_the_enabled_verbs(actions) -> None:
    objects = render(json_sets=[f"remediation.executor.actions={json.dumps(actions)}"])
    rules = set(rules_of(one(objects, "ClusterRole", "aisre-executor")))
    writes = {rule for rule in rules if rule[2] not in READ}
    assert writes == set().union(*[EXECUTOR_WRITES[a] for a in actions]), writes


def test_namespace_scope_uses_roles() -> None:
    objects = render("rbac.scope=namespace", "watch.namespaces={shop,pay}", namespace="ops")
    env = env_of(objects, namespace="ops")
    assert env["AISRE_NAMESPACES"] == "shop,pay"
    assert OperatorConfig.from_env(env).namespaces == ("shop", "pay")
    # Roles in each watched namespace and the release's; the only ClusterRoles are the
    # small cluster reads and the impersonation right (bound by a RoleBinding).
    assert sorted(o["metadata"]["namespace"] for o in find(objects, "Role", "aisre-operator")) == ["ops", "pay", "shop"]
    assert sorted(o["metadata"]["namespace"] for o in find(objects, "Role", "aisre-executor")) == ["pay", "shop"]
    assert sorted(o["metadata"]["name"] for o in find(objects, "ClusterRole")) == [
        "aisre-impersonate-executor", "aisre-operator-cluster-reads"]
    assert set(rules_of(one(objects, "ClusterRole", "aisre-operator-cluster-reads"))) == {
        ("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "watch"), ("storage.k8s.io", "storageclasses", "get"),
        ("storage.k8s.io", "storageclasses", "list"), ("storage.k8s.io", "storageclasses", "watch"),
        ("aisre.dev", "incidents", "list"), ("", "namespaces", "list"), ("", "namespaces", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch")}
    assert [b["metadata"]["name"] for b in find(objects, "ClusterRoleBinding")] == ["aisre-operator-cluster-reads"]
    # No node actions in a namespaced install, even though the default actions list them.
    executor = set(rules_of(one(objects, "Role", "aisre-executor", "shop")))
    assert not any(r == "nodes" for _, r, _ in executor) and ("apps", "deployments", "patch") in executor
    # Default: the release's namespace.
    assert env_of(render("rbac.scope=namespace", namespace="ops"), namespace="ops")["AISRE_NAMESPACES"] == "ops"


def test_servicemonitor_and_dashboard() -> None:
    assert not find(render(), "ServiceMonitor") and not find(render(), "ConfigMap")
    objects = render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=kps", "dashboard.enabled=true",
                     "dashboard.namespace=monitoring")
    monitor = one(objects, "ServiceMonitor", "aisre")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    service = one(objects, "Service", "aisre")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    dashboard = one(objects, "ConfigMap", "aisre-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring" and dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["aisre.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"aisre_[a-z_]+", e)}
    exposed = {f"{m._name}_total" if m._type == "counter" else m._name
               for m in vars(operator_metrics).values() if hasattr(m, "_type") and hasattr(m, "_name")}
    assert used and used <= exposed, used - exposed
    assert exposed <= used, f"metrics without a panel: {exposed - used}"


def test_schema_knows_the_catalog_and_thresholds() -> None:
    actions = SCHEMA["properties"]["remediation"]["properties"]["executor"]["properties"]["actions"]["items"]["enum"]
    assert sorted(actions) == sorted(a.value for a in ActionType)
    keys = SCHEMA["properties"]["detection"]["properties"]["thresholds"]["properties"]
    snake = {re.sub(r"([A-Z])", r"_\1", k).lower() for k in keys}
    assert snake == {f.name for f in dataclasses.fields(Thresholds)}


@pytest.mark.parametrize(("value", "message"), [
    ("replicaCount=-1", "/replicaCount"),
    ("replicaCount=two", "want integer"),
    ("rbac.scope=cluster-wide", "value must be one of 'cluster', 'namespace'"),
    ("remediation.executor.actions={scale,reboot}", "/remediation/executor/actions/1"),
    ("llm.confidenceThreshold=1.5", "/llm/confidenceThreshold"),
    ("llm.dailyBudgetUsd=-1", "/llm/dailyBudgetUsd"),
    ("prometheus.url=prom:9090", "/prometheus/url"),
    ("detection.thresholds.pendingGrce=30", "additional properties 'pendingGrce' not allowed"),
    ("detection.enabled=maybe", "/detection/enabled"),
    ("replicas=2", "additional properties 'replicas' not allowed"),
    ("logFormat=xml", "/logFormat"),
    ("peering.priority=10", "additional properties 'priority' not allowed"),  # Kopf peering is gone
    ("leaderElection.leaseSeconds=0", "/leaderElection/leaseSeconds"),
    ("leaderElection.retrySeconds=soon", "/leaderElection/retrySeconds"),
    ("leaderElection.leaderLease=x", "additional properties 'leaderLease' not allowed"),
    ("detection.thresholds.metricsConfidence=1.5", "/detection/thresholds/metricsConfidence"),
])
def test_schema_refuses_wrong_values(value: str, message: str) -> None:
    done = helm("template", "aisre", str(CHART), "--set", value, check=False)
    assert done.returncode != 0 and "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


def test_a_pattern_is_refused_in_namespace_scope() -> None:
    done = helm("template", "aisre", str(CHART), "--set", "rbac.scope=namespace", "--set", "watch.namespaces={shop-*}",
                check=False)
    assert done.returncode != 0 and "needs plain namespace names" in done.stderr, done.stderr


def test_the_trust_boundary_admits_only_the_operators_status_writes() -> None:
    objects = render()
    writers = one(objects, "ValidatingAdmissionPolicy", "aisre-status-writers")
    rules = writers["spec"]["matchConstraints"]["resourceRules"][0]
    assert set(rules["resources"]) == {"incidents/status", "investigations/status", "remediationpolicies/status",
                                      "runbooks/status", "notificationroutes/status"}
    [validation] = writers["spec"]["validations"]
    assert validation["expression"] == 'request.userInfo.username in ["system:serviceaccount:aisre-system:aisre"]'
    assert "matchResources" not in one(objects, "ValidatingAdmissionPolicyBinding", "aisre-status-writers")["spec"]
    # a development identity may be added; the operator's own stays
    extra = one(render("trustBoundary.statusWriters={alice}"), "ValidatingAdmissionPolicy", "aisre-status-writers")
    assert extra["spec"]["validations"][0]["expression"] == \
        'request.userInfo.username in ["system:serviceaccount:aisre-system:aisre","alice"]'
    # namespace scope: the release binds its own namespaces only (releases can shard a cluster)
    scoped = render("rbac.scope=namespace", "watch.namespaces={shop,pay}")
    for name in ("aisre-status-writers", "aisre-policy-authority"):
        selector = one(scoped, "ValidatingAdmissionPolicyBinding", name)["spec"]["matchResources"]["namespaceSelector"]
        assert selector["matchExpressions"][0]["values"] == ["shop", "pay", "aisre-system"]
    assert not find(render("trustBoundary.enabled=false"), "ValidatingAdmissionPolicy", "aisre-status-writers")


def test_the_policy_authority_checks_every_verb_the_actions_need() -> None:
    policy_ = one(render(), "ValidatingAdmissionPolicy", "aisre-policy-authority")
    text = json.dumps(policy_["spec"]["validations"])
    for resource, verb in (("pods", "delete"), ("deployments", "patch"), ("statefulsets", "patch"),
                           ("daemonsets", "patch"), ("nodes", "patch")):
        assert f"resource('{resource}')" in text and f"check('{verb}')" in text
    assert {t.value for t in ActionType} <= set(re.findall(r"'([a-zA-Z]+)'", text))  # every action is covered


def test_the_signing_key_is_mounted_for_the_operator_only() -> None:
    objects = render()
    secret = one(objects, "Secret", "aisre-signing-key")
    assert len(secret["data"]["key"]) >= 64  # 48 random characters, base64
    env = env_of(objects)
    main = container(objects)
    mount = next(m for m in main["volumeMounts"] if m["name"] == "signing-key")
    assert env["AISRE_SIGNING_KEY_FILE"] == f"{mount['mountPath']}/key" and mount["readOnly"]
    volume = next(v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing-key")
    assert volume["secret"]["secretName"] == "aisre-signing-key"
    config = OperatorConfig.from_env(env)
    assert config.signing_key_file == env["AISRE_SIGNING_KEY_FILE"] and config.min_healthy_floor == 50
    assert config.max_concurrent_investigations == 8
    # no Role of the chart lets anyone read the chart's Secrets: Secret reads are by name
    # (notifications.secretNames), and no such name is one of the chart's own
    own = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    for role in find(objects, "Role") + find(objects, "ClusterRole"):
        for rule in role.get("rules") or []:
            if "secrets" in rule.get("resources", []) and {"get", "watch"} & set(rule.get("verbs", [])):
                assert rule.get("resourceNames") and not own & set(rule["resourceNames"]), role["metadata"]["name"]
                assert "watch" not in rule["verbs"] and "list" not in rule["verbs"]


def test_the_ledger_is_writable_by_the_operator_in_its_namespace_only() -> None:
    objects = render()
    ledger = set(rules_of(one(objects, "Role", "aisre-operator-ledger", "aisre-system")))
    assert ledger == {("", "configmaps", v) for v in ("get", "list", "create", "update")}
    assert ("", "configmaps", "create") not in operator_rules(objects)


def test_notification_credentials_are_the_named_secrets_only() -> None:
    """The operator may get Secrets with the names in notifications.secretNames and no other
    (never list or watch); in namespace scope only in its namespaces; none when the list is empty."""
    role = one(render(), "ClusterRole", "aisre-notification-secrets")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                              "resourceNames": ["aisre-notifications"]}]
    binding = one(render(), "ClusterRoleBinding", "aisre-notification-secrets")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aisre", "namespace": "aisre-system"}]
    scoped = render("rbac.scope=namespace", "watch.namespaces={shop}", "notifications.secretNames={pager-creds}")
    roles = [o for o in scoped if o["kind"] == "Role" and o["metadata"]["name"] == "aisre-notification-secrets"]
    assert {r["metadata"]["namespace"] for r in roles} == {"shop", "aisre-system"}
    assert all(r["rules"][0]["resourceNames"] == ["pager-creds"] for r in roles)
    assert not find(render("rbac.scope=namespace", "watch.namespaces={shop}"), "ClusterRole", "aisre-notification-secrets")
    assert not [o for o in render("notifications.secretNames=null") if "notification-secrets" in o["metadata"]["name"]]
    refused = helm("template", "aisre", str(CHART), "-n", "aisre-system", "--set", "notifications.secretNames={aisre-signing-key}",
                   check=False)
    assert refused.returncode != 0 and "must not name the signing key" in refused.stderr
    env = env_of(render("notifications.grafanaUrl=https://grafana.example/d/x"))
    assert env["AISRE_GRAFANA_URL"] == "https://grafana.example/d/x" and env["AISRE_NOTIFY_ATTEMPTS"] == "4"
    rules = operator_rules(render())
    assert {("aisre.dev", "notificationroutes", "watch"), ("aisre.dev", "notificationroutes/status", "patch")} <= rules
    assert ("aisre.dev", "notificationroutes", "update") not in rules


def test_pager_webhook_credentials_are_mounted_secrets_the_operator_reads() -> None:
    objects = render("pagers.pagerDuty.signingSecret.name=pd-webhook", "pagers.opsgenie.tokenSecret.name=og-webhook",
                     "pagers.opsgenie.tokenSecret.key=bearer")
    env, main = env_of(objects), container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert volumes["pagerduty-secret"]["secretName"] == "pd-webhook"
    assert volumes["pagerduty-secret"]["items"] == [{"key": "secret", "path": "secret"}]
    assert volumes["opsgenie-token"]["items"] == [{"key": "bearer", "path": "token"}]
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts["pagerduty-secret"]["readOnly"] and mounts["opsgenie-token"]["mountPath"] == "/etc/aisre/opsgenie"
    config = OperatorConfig.from_env(env)
    assert config.pagerduty_secret_file == "/etc/aisre/pagerduty/secret"
    assert config.opsgenie_token_file == "/etc/aisre/opsgenie/token"
    assert not any("secretKeyRef" in json.dumps(e) for e in main["env"])
    plain = env_of(render())
    assert "AISRE_PAGERDUTY_SECRET_FILE" not in plain and "AISRE_OPSGENIE_TOKEN_FILE" not in plain  # none: 503


def test_tracing_is_the_standard_otel_variables_and_off_by_default() -> None:
    assert not [name for name in env_of(render()) if name.startswith("OTEL_")]
    env = env_of(render("tracing.otlpEndpoint=http://otel-collector.observability:4318", "tracing.sampler=parentbased_traceidratio",
                        "tracing.samplerArg=0.25", "tracing.resourceAttributes=deployment.environment=prod"))
    from aisre import tracing
    assert tracing.enabled_by(env)
    assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318", "OTEL_SERVICE_NAME": "aisre",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod"}
    for value in ("tracing.otlpEndpoint=collector:4318", "tracing.sampler=sometimes", "tracing.samplerArg=half"):
        refused = helm("template", "aisre", str(CHART), "-n", "aisre-system", "--set", value, check=False)
        assert refused.returncode != 0 and "values don't meet the specifications of the schema" in refused.stderr, value


def test_the_dashboard_links_to_the_trace_ui() -> None:
    board = json.loads(one(render("dashboard.enabled=true", "tracing.uiUrl=https://jaeger.example.com/"), "ConfigMap",
                           "aisre-dashboard")["data"]["aisre.json"])
    variable = next(v for v in board["templating"]["list"] if v["name"] == "trace_ui")
    assert variable["query"] == variable["current"]["value"] == "https://jaeger.example.com"
    assert board["links"][0]["url"] == "${trace_ui}/search?service=aisre"
    empty = json.loads(one(render("dashboard.enabled=true"), "ConfigMap", "aisre-dashboard")["data"]["aisre.json"])
    assert next(v for v in empty["templating"]["list"] if v["name"] == "trace_ui")["query"] == ""


def test_plugins_values_reach_the_operators_plugin_config(tmp_path) -> None:
    """Which plugins are on, their settings and a Secret mounted for one, as the operator reads them."""
    objects = render("plugins.enabled={deploy-events,patterns:deploy-broke-it}", "plugins.disabled={actions:cordonNode}",
                     json_sets=['plugins.settings={"deploy-events": {"url": "http://deploys.ci:8080/events", '
                                '"namespaces": ["shop-*"], "secret": {"name": "ci-token", "key": "token"}, "team": "sre"}}'])
    env = env_of(objects)
    deployment = one(objects, "Deployment")
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert mounts["plugin-deploy-events"]["mountPath"] == "/etc/aisre/plugins/deploy-events"
    assert volumes["plugin-deploy-events"]["secret"]["secretName"] == "ci-token"
    secret = tmp_path / "token"
    secret.write_text("t\n")
    settings = json.loads(env["AISRE_PLUGINS_SETTINGS"])
    assert settings["deploy-events"]["secretFile"] == "/etc/aisre/plugins/deploy-events/token"
    settings["deploy-events"]["secretFile"] = str(secret)  # where the test put the Secret's file
    env["AISRE_PLUGINS_SETTINGS"] = json.dumps(settings)
    config = OperatorConfig.from_env(env).plugins
    assert config.enabled == {"deploy-events", "patterns:deploy-broke-it"} and config.disabled == {"actions:cordonNode"}
    one_plugin = config.settings["deploy-events"]
    assert one_plugin.url == "http://deploys.ci:8080/events" and one_plugin.namespaces == ("shop-*",)
    assert one_plugin.extra == {"team": "sre"} and one_plugin.secret_file == str(secret)
    assert not {k for k in env_of(render()) if k.startswith("AISRE_PLUGINS_")}  # defaults: built-ins only


@pytest.mark.parametrize("value, message", [
    ("plugins.enabled={Bad Name}", "/plugins/enabled/0"),
    ("plugins.settings.x.url=ftp://x", "/plugins/settings/x/url"),
    ("plugins.extra=1", "additional properties 'extra' not allowed"),
])
def test_schema_refuses_wrong_plugin_values(value: str, message: str) -> None:
    done = helm("template", "aisre", str(CHART), "--set", value, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr
