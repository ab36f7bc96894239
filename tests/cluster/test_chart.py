"""The Helm chart installed on the local cluster, and the operator run with the identity
the chart gives it.

KWOK runs the chart's Deployment as a simulated pod (no process), so the operator runs
in-process here, configured from the rendered Deployment's environment and
authenticated with a token of the chart's ServiceAccount (TokenRequest API): it completes
an Investigation (the chart's RBAC is enough), and an action the values did not enable is
refused by the API server (the RBAC is not more). Then `helm upgrade` changes what the
executor may do, and `helm uninstall` leaves nothing of the release but aisre's CRDs.
With more than one replica the operator elects a leader on a Lease in the release's
namespace, with only the Role the chart gives it there (no Kopf peering, no kopf.dev CRDs).

Each test has its own release (aisre-chart-<id>, in a namespace of that name) and removes
it, its namespaces and its cluster-scoped objects afterwards. The watched namespace is
aisre-own-chart-<id>: other operators on a shared cluster (every branch's session
operator) leave aisre-own-* alone, so what happens there is this operator's doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.kube.resources import RESOURCES
from aisre.operator.config import OperatorConfig
from aisre.operator.detection.service import WATCHED
from conftest_helpers import deployment, investigate_and_wait
from remediation_helpers import action, apply, available, detected, journal, policy, reapply_crds, signing_key, wait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
from chart_render import CHART, env_of, helm, render  # noqa: E402

KEPT_CRDS = ["incidents.aisre.dev", "investigations.aisre.dev", "remediationpolicies.aisre.dev", "runbooks.aisre.dev"]
CLUSTER_KINDS = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"


@dataclass
class Release:
    name: str  # also its namespace; the names of its objects start with it
    app: str  # a namespace it watches, where the test's workloads live
    kubeconfig: Path  # the admin's
    sets: list[str]

    @property
    def operator_user(self) -> str:
        return f"system:serviceaccount:{self.name}:{self.name}"

    @property
    def executor_user(self) -> str:
        return f"system:serviceaccount:{self.name}:{self.name}-executor"

    def helm(self, command: str, *args: str) -> str:
        return helm(command, self.name, *args, "-n", self.name, f"--kubeconfig={self.kubeconfig}", timeout=180).stdout


@pytest.fixture
def release(kubectl, kubeconfig: Path, crds) -> Iterator[Release]:
    reapply_crds(kubectl)
    name = f"aisre-chart-{uuid.uuid4().hex[:8]}"
    app = f"aisre-own-chart-{name.removeprefix('aisre-chart-')}"  # conftest.OWN_PREFIX
    for ns in (name, app):
        kubectl("create", "namespace", ns)
    yield Release(name, app, kubeconfig, [])
    helm("uninstall", name, "-n", name, f"--kubeconfig={kubeconfig}", check=False)
    kubectl("delete", CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={name}", "--ignore-not-found", check=False)
    kubectl("delete", "namespace", name, app, "--wait=false", check=False)


def token_kubeconfig(kubectl, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that is the ServiceAccount (a bound token from the TokenRequest API)."""
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout)
    cluster = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster], "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account}))
    return path


def can(kubectl, user: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={user}"] + (["-n", namespace] if namespace else [])
    answer = kubectl(*args, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def operator_config(rel: Release) -> dict:
    """The operator's settings as the chart renders them for this release (OperatorConfig
    fields for OperatorThread), watching only the test's namespace."""
    config = OperatorConfig.from_env(env_of(render(*rel.sets, release=rel.name, namespace=rel.name), namespace=rel.name))
    assert config.executor_user == rel.executor_user and config.operator_namespace == rel.name
    return {"executor_user": config.executor_user, "operator_namespace": config.operator_namespace,
            "detection": config.detection, "exclude_namespaces": config.exclude_namespaces,
            "thresholds": config.thresholds, "llm": config.llm, "max_verify_seconds": 30.0,
            "min_healthy_floor": config.min_healthy_floor}


def mounted_signing_key(kubectl, rel: Release, tmp_path: Path) -> Path:
    """The chart's signing-key Secret as the kubelet would mount it into the operator's pod."""
    path = tmp_path / "signing-key"
    path.write_bytes(signing_key(kubectl, rel.name, f"{rel.name}-signing-key"))
    return path


def admin_name(kubectl) -> str:
    return kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()


def leftovers(kubectl, rel: Release) -> list[str]:
    """(The ledger ConfigMaps the operator writes at run time are its records, like the
    Incidents: `helm uninstall` leaves them, and they go with the namespace.)"""
    """Objects of the release anywhere: by its instance label, and by name among the
    cluster-scoped kinds it creates and in its namespace."""
    types = ",".join(kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split())
    labelled = kubectl("get", types, "-A", "-l", f"app.kubernetes.io/instance={rel.name}", "-o", "name", check=False)
    found = labelled.stdout.split()
    named = kubectl("get", CLUSTER_KINDS, "-o", "name").stdout.split()
    found += [n for n in named if rel.name in n]
    in_namespace = kubectl("get", "serviceaccounts,roles,rolebindings,services,deployments,poddisruptionbudgets,configmaps",
                           "-n", rel.name, "-o", "name").stdout.split()
    found += [n for n in in_namespace if n not in ("serviceaccount/default", "configmap/kube-root-ca.crt")
              and not n.startswith("configmap/aisre-ledger-")]
    return found


def nothing_left(kubectl, rel: Release, timeout: float = 60) -> None:
    """Garbage collection (pods, endpoint slices) takes a moment after `helm uninstall`."""
    deadline = time.monotonic() + timeout
    while (left := leftovers(kubectl, rel)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"objects of release {rel.name} left after helm uninstall: {left}"


def refusals(caplog) -> list[str]:
    """What the API server refused the operator (Kopf logs a 403 it retries, then gives up on)."""
    return [r.getMessage()[:300] for r in caplog.records
            if "forbidden" in r.getMessage().lower() or "not enough permissions" in r.getMessage().lower()]


def test_install_investigate_refuse_upgrade_uninstall(kubectl, api_client, release: Release, tmp_path: Path,
                                                       caplog) -> None:
    rel = release
    # The admin stands in for detection below (detected() writes status): a status writer here.
    rel.sets = ["remediation.executor.actions={scale}", f"trustBoundary.statusWriters={{{admin_name(kubectl)}}}"]
    started = time.monotonic()

    # --- install: the chart's objects, the operator's Deployment available, NOTES that say what next.
    out = rel.helm("install", str(CHART), *[a for s in rel.sets for a in ("--set", s)], "--wait", "--timeout=120s")
    notes = out.split("NOTES:", 1)[1]
    for text in ("kubectl get incidents -A", "kind: Investigation", "docs/remediation.md", rel.executor_user, "scale."):
        assert text in notes, (text, notes)
    kubectl("rollout", "status", f"deployment/{rel.name}", "-n", rel.name, "--timeout=60s")
    for crd in KEPT_CRDS:
        kubectl("get", "crd", crd)

    # --- RBAC as the code needs it, and no more (asked of the API server's authorizer).
    for _kind, prefix, plural, _field in WATCHED:  # detection's watches
        group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
        resource = f"{plural}.{group}" if group else plural
        assert can(kubectl, rel.operator_user, "watch", resource), resource
    for plural, resource in RESOURCES.items():  # the agents' reads
        name = f"{plural}.{resource.group}" if resource.group else plural
        assert can(kubectl, rel.operator_user, "list", name, rel.app) == (plural != "secrets"), plural
    assert can(kubectl, rel.operator_user, "get", "pods/log", rel.app)
    assert can(kubectl, rel.operator_user, "patch", "investigations.aisre.dev/status", rel.app)
    assert not can(kubectl, rel.operator_user, "get", "secrets", rel.app)
    assert not can(kubectl, rel.operator_user, "patch", "deployments.apps", rel.app)
    assert not can(kubectl, rel.operator_user, "delete", "pods", rel.app)
    assert not can(kubectl, rel.operator_user, "impersonate", "serviceaccounts/default", rel.name)
    assert can(kubectl, rel.operator_user, "impersonate", f"serviceaccounts/{rel.name}-executor", rel.name)
    assert can(kubectl, rel.executor_user, "patch", "deployments.apps", rel.app)
    assert not can(kubectl, rel.executor_user, "patch", "daemonsets.apps", rel.app)
    assert not can(kubectl, rel.executor_user, "delete", "pods", rel.app)
    assert not can(kubectl, rel.executor_user, "patch", "nodes")
    assert_lease_rbac(kubectl, rel)

    # --- the operator as the chart's ServiceAccount: an Investigation completes...
    sa_kubeconfig = token_kubeconfig(kubectl, rel.name, rel.name, tmp_path / "operator-kubeconfig")
    stuck = deployment("checkout", replicas=1, cpu="64")  # more CPU than any node has: the scheduler says so
    apply(kubectl, rel.app, stuck)
    apply(kubectl, rel.app, deployment("web", replicas=2))  # two: deleting one keeps the blast radius within 50%
    apply(kubectl, rel.app, deployment("api", replicas=1))
    wait(lambda: available(kubectl, rel.app, "web", 2) and available(kubectl, rel.app, "api", 1), what="deployments available")
    key = mounted_signing_key(kubectl, rel, tmp_path)
    with OperatorThread(sa_kubeconfig, free_port(), namespaces=(rel.app,), signing_key_file=str(key), **operator_config(rel)):
        wait(lambda: "FailedScheduling" in kubectl("get", "events", "-n", rel.app, "-o", "json").stdout,
             what="the scheduler's FailedScheduling event")
        done = investigate_and_wait(api_client, rel.app, "why", {"kind": "Deployment", "name": "checkout"}, timeout=60)
        status = done["status"]
        assert status["state"] == "Completed", status
        assert status["rootCause"]["category"] == "InsufficientResources", status["rootCause"]
        failed = [a for a in status["agents"] if a["status"] == "ERROR"]
        assert not failed, f"agents failed under the chart's RBAC: {failed}"

        # ...and an action the values did not enable is refused by the API server, while an enabled one runs.
        # (deletePod needs `delete pods`, which scale's `patch deployments` does not give.)
        policy(kubectl, rel.app, actions=[{"type": "deletePod", "mode": "auto"}, {"type": "scale", "mode": "auto"}])
        pod = pods_of(kubectl, rel.app, "web")[0]
        detected(kubectl, rel.app, "evict", {"kind": "Deployment", "name": "web"},
                 [action("delete-1", "deletePod", "Pod", pod)], key=key.read_bytes())
        detected(kubectl, rel.app, "grow", {"kind": "Deployment", "name": "api"},
                 [action("scale-1", "scale", "Deployment", "api", replicas=2)], key=key.read_bytes())
        delete = wait(lambda: finished(journal(kubectl, rel.app, "evict").get("delete-1")), timeout=60,
                      what="the pod deletion's journal entry")
        scale = wait(lambda: finished(journal(kubectl, rel.app, "grow").get("scale-1")), timeout=60,
                     what="the scale's journal entry")
    assert not refusals(caplog), refusals(caplog)  # the chart's RBAC is enough for the operator itself
    assert delete["decision"] == "Execute" and delete["result"] == "Failed", delete
    assert delete["detail"].startswith("ExecutorForbidden") and f"{rel.name}-executor" in delete["detail"], delete
    assert pod in pods_of(kubectl, rel.app, "web")  # the pod is still there
    assert scale["decision"] == "Execute" and scale["result"] == "Succeeded", scale
    assert json.loads(kubectl("get", "deployment", "api", "-n", rel.app, "-o", "json").stdout)["spec"]["replicas"] == 2

    # --- upgrade: a changed value changes what the release grants and runs.
    rel.sets = ["remediation.executor.actions={scale,rolloutRestart}", "replicaCount=2", rel.sets[1]]
    rel.helm("upgrade", str(CHART), *[a for s in rel.sets for a in ("--set", s)], "--wait", "--timeout=120s")
    assert json.loads(rel.helm("status", "-o", "json"))["version"] == 2
    assert can(kubectl, rel.executor_user, "patch", "daemonsets.apps", rel.app)
    kubectl("get", "poddisruptionbudget", rel.name, "-n", rel.name)
    assert_lease_rbac(kubectl, rel)
    env = {e["name"]: e.get("value") for e in json.loads(kubectl(
        "get", "deployment", rel.name, "-n", rel.name, "-o", "json").stdout)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AISRE_PEERING"] == rel.name
    kubectl("rollout", "status", f"deployment/{rel.name}", "-n", rel.name, "--timeout=60s")

    # --- uninstall: nothing of the release is left but the CRDs (and what the test itself made in its app namespace).
    rel.helm("uninstall", "--wait", "--timeout=120s")
    nothing_left(kubectl, rel)
    for crd in KEPT_CRDS:
        kubectl("get", "crd", crd)
    assert time.monotonic() - started < 240


def assert_lease_rbac(kubectl, rel: Release) -> None:
    """Leader election's Lease: get, create, update in the release's namespace, and no more."""
    for verb in ("get", "create", "update"):
        assert can(kubectl, rel.operator_user, verb, "leases.coordination.k8s.io", rel.name), verb
    for verb in ("delete", "list", "watch", "patch"):
        assert not can(kubectl, rel.operator_user, verb, "leases.coordination.k8s.io", rel.name), verb
    assert not can(kubectl, rel.operator_user, "update", "leases.coordination.k8s.io", rel.app)
    assert not can(kubectl, rel.operator_user, "get", "leases.coordination.k8s.io", "kube-system")


def pods_of(kubectl, namespace: str, app: str) -> list[str]:
    listing = json.loads(kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout)
    return [p["metadata"]["name"] for p in listing["items"]]


def finished(entry: dict | None) -> dict | None:
    return entry if entry and entry.get("result") in ("Succeeded", "Failed", "Reverted", "Skipped") else None


def test_namespace_scoped_install(kubectl, api_client, release: Release, tmp_path: Path, caplog) -> None:
    """rbac.scope=namespace: Roles in the watched namespace; the operator, as the chart's
    ServiceAccount, investigates there and cannot read another namespace."""
    rel = release
    rel.sets = ["rbac.scope=namespace", f"watch.namespaces={{{rel.app}}}", "remediation.approvals.enabled=false"]
    # The CRDs are the cluster admin's here (the session fixture applied them).
    rel.helm("install", str(CHART), "--skip-crds", *[a for s in rel.sets for a in ("--set", s)], "--wait", "--timeout=120s")
    deployed = json.loads(kubectl("get", "deployment", rel.name, "-n", rel.name, "-o", "json").stdout)
    env = {e["name"]: e.get("value") for e in deployed["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AISRE_NAMESPACES"] == rel.app
    assert can(kubectl, rel.operator_user, "list", "pods", rel.app)
    assert not can(kubectl, rel.operator_user, "list", "pods", "default")
    assert not can(kubectl, rel.operator_user, "list", "pods")  # not cluster-wide
    assert can(kubectl, rel.operator_user, "get", "nodes")  # the small cluster reads
    assert not can(kubectl, rel.executor_user, "patch", "nodes")  # no node actions in this scope
    assert can(kubectl, rel.executor_user, "patch", "deployments.apps", rel.app)
    assert not can(kubectl, rel.executor_user, "patch", "deployments.apps", "default")
    assert_lease_rbac(kubectl, rel)  # the Lease is in the release's namespace in this scope too

    sa_kubeconfig = token_kubeconfig(kubectl, rel.name, rel.name, tmp_path / "operator-kubeconfig")
    apply(kubectl, rel.app, deployment("checkout", replicas=1, cpu="64"))
    key = mounted_signing_key(kubectl, rel, tmp_path)
    with OperatorThread(sa_kubeconfig, free_port(), namespaces=(rel.app,), signing_key_file=str(key), **operator_config(rel)):
        wait(lambda: "FailedScheduling" in kubectl("get", "events", "-n", rel.app, "-o", "json").stdout,
             what="the scheduler's FailedScheduling event")
        done = investigate_and_wait(api_client, rel.app, "why", {"kind": "Deployment", "name": "checkout"}, timeout=60)
    assert not refusals(caplog), refusals(caplog)
    status = done["status"]
    assert status["state"] == "Completed" and status["rootCause"]["category"] == "InsufficientResources", status
    assert not [a for a in status["agents"] if a["status"] == "ERROR"], status["agents"]

    rel.helm("uninstall", "--wait", "--timeout=120s")
    nothing_left(kubectl, rel)


EVERY_OPTION = ["replicaCount=2", "dashboard.enabled=true", "llm.apiKeySecret.name=k", "alertmanager.tokenSecret.name=t",
                "prometheus.url=http://p:9090", "prometheus.basicAuth.username=u",
                "prometheus.basicAuth.passwordSecret.name=pw", "image.pullSecrets={reg}", "nodeSelector.disk=ssd",
                "podAnnotations.a=b", "podLabels.team=sre", "priorityClassName=system-cluster-critical",
                "detection.thresholds.pendingGrace=30", "peering.name=ha", "leaderElection.leaseSeconds=30",
                "leaderElection.renewSeconds=4", "leaderElection.renewDeadlineSeconds=20",
                "leaderElection.retrySeconds=1", "rbac.listSecrets=true",
                "remediation.maxVerifySeconds=60", "llm.prices.m.input=1", "llm.prices.m.output=2"]


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_every_option_validates_strictly_on_the_api_server(kubectl, release: Release, scope: str) -> None:
    """The API server's strict field validation (server dry run: nothing is created) accepts
    every object the chart renders with every option on: no unknown or misplaced field."""
    rel = release
    objects = render(*EVERY_OPTION, f"rbac.scope={scope}", f"watch.namespaces={{{rel.app}}}", release=rel.name,
                     namespace=rel.name, json_sets=['extraEnv=[{"name": "X", "value": "1"}]',
                                                    'tolerations=[{"key": "k", "operator": "Exists"}]'])
    done = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                   input=yaml.safe_dump_all(objects), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects), done.stdout


def http(url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_aisre_run_with_the_deployed_environment(kubectl, release: Release, tmp_path: Path) -> None:
    """`aisre run` (the image's entrypoint) with the environment of the installed
    Deployment (two replicas: leader election), as the chart's ServiceAccount: it takes
    the leader Lease in the release's namespace with the chart's Role alone, the probes'
    endpoints answer, /metrics serves the aisre_* metrics, the Alertmanager webhook takes
    the mounted token, and a clean stop releases the Lease. Only what a pod would provide
    differently is replaced: the kubeconfig, the Secret's file path, the port, and the
    watched namespace (a shared cluster)."""
    rel = release
    kubectl("create", "secret", "generic", "am-token", "-n", rel.name, "--from-literal=token=s3cret")
    rel.helm("install", str(CHART), "--skip-crds", "--set", "alertmanager.tokenSecret.name=am-token",
             "--set", "replicaCount=2", "--wait", "--timeout=120s")
    deployed = json.loads(kubectl("get", "deployment", rel.name, "-n", rel.name, "-o", "json").stdout)
    main = deployed["spec"]["template"]["spec"]["containers"][0]
    fields = {"metadata.namespace": rel.name, "metadata.name": "pod-0"}  # what the kubelet resolves
    env = {e["name"]: fields[e["valueFrom"]["fieldRef"]["fieldPath"]] if "valueFrom" in e else e.get("value", "")
           for e in main["env"]}
    mount = next(m["mountPath"] for m in main["volumeMounts"] if m["name"] == "alertmanager-token")
    assert env["AISRE_ALERTMANAGER_TOKEN_FILE"] == f"{mount}/token"
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    port = free_port()
    assert env["AISRE_PEERING"] == rel.name and env["POD_NAMESPACE"] == rel.name
    assert env["AISRE_SIGNING_KEY_FILE"] == next(m["mountPath"] for m in main["volumeMounts"]
                                                 if m["name"] == "signing-key") + "/key"
    env.update({"HOSTNAME": "pod-0", "KUBECONFIG": str(token_kubeconfig(kubectl, rel.name, rel.name, tmp_path / "kubeconfig")),
                "AISRE_NAMESPACES": rel.app, "AISRE_HTTP_PORT": str(port),
                "AISRE_ALERTMANAGER_TOKEN_FILE": str(token_file),
                "AISRE_SIGNING_KEY_FILE": str(mounted_signing_key(kubectl, rel, tmp_path))})
    probe = {p: main[f"{p}Probe"]["httpGet"]["path"] for p in ("liveness", "readiness")}
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "aisre.cli", "run"],
                               env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}, stdout=log, stderr=log)
    try:
        wait(lambda: http(base + probe["readiness"])[0] == 200 or process.poll() is not None, timeout=60,
             what="readiness")
        assert process.poll() is None, (tmp_path / "operator.log").read_text()[-2000:]
        assert http(base + probe["liveness"])[0] == 200
        wait(lambda: http(base + "/leaderz")[0] == 200, timeout=30, what="leadership")
        assert lease_holder(kubectl, rel) == "pod-0"
        code, metrics = http(base + "/metrics")
        assert code == 200 and "aisre_handler_calls_total" in metrics
        alert = json.dumps({"version": "4", "status": "firing", "receiver": "aisre", "groupKey": "{}:{}",
                            "alerts": [{"status": "firing", "labels": {"alertname": "Test"}}]}).encode()
        assert http(base + "/alertmanager", alert)[0] == 401
        code, answer = http(base + "/alertmanager", alert, token="s3cret")
        assert code == 200 and json.loads(answer)["accepted"] == 0, answer
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0, (tmp_path / "operator.log").read_text()[-2000:]
    assert lease_holder(kubectl, rel) is None  # released on a clean stop: a standby takes over at once


def lease_holder(kubectl, rel: Release) -> str | None:
    lease = json.loads(kubectl("get", "lease", f"{rel.name}-leader", "-n", rel.name, "-o", "json").stdout)
    return lease["spec"].get("holderIdentity")
