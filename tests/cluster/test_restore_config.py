"""restoreConfig on the real local control plane: the keeper captures a ConfigMap's
content while its Deployment runs healthy with it, a bad change is restored (dry run
first: the diff, nothing changed), the Deployment restarted and verified, a failed
verification reverts to the content the restore replaced, the copies survive a restart of
the store, and a GitOps-managed ConfigMap is only suggested, with the Git revert."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from aisre.kube.reader import connect
from aisre.operator.config_snapshots import snapshot_once
from aisre.remediation.executor import Remediator
from aisre.remediation.snapshots import SnapshotStore
from conftest_helpers import deployment
from remediation_helpers import (RELEASE_NS, action, apply, available, detected, get, install_chart, journal, policy,
                                 reapply_crds, signing_key, wait)

EXECUTOR = f"system:serviceaccount:{RELEASE_NS}:aisre-executor-restore"


@pytest.fixture
def namespace(own_namespace: str) -> str:
    return own_namespace


@pytest.fixture(scope="module")
def chart(kubectl, crds) -> None:
    reapply_crds(kubectl)
    # An executor that may do restoreConfig only (configmaps patch, the users' restart).
    install_chart(kubectl, "aisre-restore", "remediation.executor.serviceAccount=aisre-executor-restore",
                  "remediation.executor.actions={restoreConfig}", "remediation.approvals.enabled=false")


@pytest.fixture
async def setup(kubeconfig, kubectl, chart, namespace) -> AsyncIterator[tuple[Remediator, SnapshotStore]]:
    key = signing_key(kubectl)
    client, executor = connect(str(kubeconfig)), connect(str(kubeconfig))
    executor.headers["Impersonate-User"] = EXECUTOR
    store = SnapshotStore(client, RELEASE_NS, key)
    yield Remediator(client, executor, max_verify_seconds=30, signing_key=key, snapshots=store), store
    kubectl("delete", "configmap", f"aisre-snapshots-{namespace}", "-n", RELEASE_NS, check=False)
    await client.aclose()
    await executor.aclose()


def configured_app(kubectl, namespace: str, replicas: int = 1) -> None:
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
                               "data": {"app.conf": "greeting=hello\nport=8080\n"}})
    time.sleep(1.1)  # API times are in seconds: the pods must start after the content
    manifest = deployment("web", replicas=replicas)
    manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "app"}}]
    apply(kubectl, namespace, manifest)
    wait(lambda: available(kubectl, namespace, "web", replicas), what="deployment available")


def break_config(kubectl, namespace: str) -> None:
    kubectl("patch", "configmap", "app", "-n", namespace, "--type=merge", "-p",
            json.dumps({"data": {"app.conf": "greeting=hello\nport=eighty\n", "debug": "true"}}))


def conf(kubectl, namespace: str) -> dict[str, str]:
    return get(kubectl, "configmap", "app", namespace)["data"]


RESTORE = [action("restore-1", "restoreConfig", "ConfigMap", "app")]


async def restore(kubectl, namespace: str, remediator: Remediator, incident: str, mode: str, **spec) -> dict:
    """A policy with restoreConfig in ``mode``, an Incident about the Deployment recommending
    it, one remediation pass: the journal entry."""
    policy(kubectl, namespace, actions=[{"type": "restoreConfig", "mode": mode}], **spec)
    detected(kubectl, namespace, incident, {"kind": "Deployment", "name": "web"}, RESTORE)
    await remediator.remediate(namespace, incident)
    return journal(kubectl, namespace, incident)["restore-1"]


async def test_restore_config_dry_run_execute_and_restart_survival(kubectl, namespace, setup) -> None:
    remediator, store = setup
    configured_app(kubectl, namespace)
    assert f"{namespace}/app" in await snapshot_once(store, remediator.client, (namespace,), settle=0)
    break_config(kubectl, namespace)
    # Pods started before the change: the broken content is never taken for known good.
    assert await snapshot_once(store, remediator.client, (namespace,), settle=0) == []
    assert store.known_good(namespace, "app", get(kubectl, "configmap", "app", namespace)["metadata"]["uid"]).data == {
        "app.conf": "greeting=hello\nport=8080\n"}

    entry = await restore(kubectl, namespace, remediator, "dry", "dryRun")
    assert (entry["decision"], entry["result"]) == ("DryRun", "Succeeded"), entry
    assert "keys added: -; removed: debug; changed: app.conf" in entry["detail"], entry["detail"]
    assert "-port=eighty" in entry["detail"] and "+port=8080" in entry["detail"]
    assert conf(kubectl, namespace)["debug"] == "true"  # nothing changed

    entry = await restore(kubectl, namespace, remediator, "inc", "auto")
    assert (entry["decision"], entry["result"]) == ("Execute", "Succeeded"), entry
    assert "restarted Deployment/web" in entry["detail"], entry["detail"]
    assert conf(kubectl, namespace) == {"app.conf": "greeting=hello\nport=8080\n"}
    template = get(kubectl, "deployment", "web", namespace)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    assert available(kubectl, namespace, "web", 1)

    # The copies live in the operator's namespace and come back after a restart.
    restarted = SnapshotStore(remediator.client, RELEASE_NS, signing_key(kubectl))
    assert await restarted.load() >= 1
    uid = get(kubectl, "configmap", "app", namespace)["metadata"]["uid"]
    assert restarted.known_good(namespace, "app", uid).data == {"app.conf": "greeting=hello\nport=8080\n"}
    kept = get(kubectl, "configmap", f"aisre-snapshots-{namespace}", RELEASE_NS)
    assert "port=eighty" in kept["data"]["snapshots"]  # the replaced content, for a revert


async def test_a_failed_verification_puts_the_replaced_content_back(kubectl, namespace, setup) -> None:
    remediator, store = setup
    configured_app(kubectl, namespace)
    await snapshot_once(store, remediator.client, (namespace,), settle=0)
    break_config(kubectl, namespace)
    # A quota of one pod: the restart's new pod never comes, so verification fails.
    kubectl("create", "quota", "pods", "--hard=pods=1", "-n", namespace)
    entry = await restore(kubectl, namespace, remediator, "inc", "auto", verification={"timeout": "5s", "revertOnFailure": True})
    assert entry["result"] == "Reverted" and "VerificationFailed" in entry["detail"], entry
    assert conf(kubectl, namespace) == {"app.conf": "greeting=hello\nport=eighty\n", "debug": "true"}


async def test_a_gitops_managed_configmap_is_suggested_with_the_git_revert(kubectl, namespace, setup) -> None:
    remediator, store = setup
    configured_app(kubectl, namespace)
    await snapshot_once(store, remediator.client, (namespace,), settle=0)
    break_config(kubectl, namespace)
    kubectl("label", "configmap", "app", "-n", namespace, "kustomize.toolkit.fluxcd.io/name=shop")
    entry = await restore(kubectl, namespace, remediator, "inc", "auto")
    assert entry["decision"] == "Suggested" and "revert the commit that changed ConfigMap/app in Git" in entry["reason"], entry
    assert conf(kubectl, namespace)["debug"] == "true"
