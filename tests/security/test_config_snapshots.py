"""restoreConfig writes back only what the operator itself kept (issue 19).

The known-good copies live in ConfigMaps of the operator's namespace. Each test is one way
a namespace user (``edit`` and every verb on aisre's kinds in their namespace) could try
to make aisre write content of their choosing, or to write a ConfigMap where they may
not; it fails if the attack works."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from aisre.remediation.snapshots import GOOD, SnapshotStore, name_for, signature, snapshot_of
from attack_helpers import OPERATOR_NS, SECURITY_PREFIX, aisre_object, as_user, detected, grant_namespace_user, journal, \
    refused_by_admission
from conftest_helpers import deployment, temporary_namespace
from remediation_helpers import action, apply, available, get, policy, wait

RESTORE = [{"type": "restoreConfig", "mode": "auto"}]


@pytest.fixture
def aisre_only_ns(kubectl, boundary) -> Iterator[str]:
    with temporary_namespace(kubectl, SECURITY_PREFIX) as name:
        grant_namespace_user(kubectl, name, workloads=False)
        yield name


def app(kubectl, namespace: str) -> dict:
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"mode": "safe"}})
    manifest = deployment("web", replicas=2)  # the blast-radius floor (50 %) lets one of two restart
    manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "app"}}]
    apply(kubectl, namespace, manifest)
    wait(lambda: available(kubectl, namespace, "web", 2), what="deployment available")
    return get(kubectl, "configmap", "app", namespace)


def test_a_namespace_user_cannot_write_where_the_copies_live(kubectl, user_kubeconfig, user_ns) -> None:
    planted = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": name_for(user_ns), "namespace": OPERATOR_NS, "labels": {"aisre.dev/config-snapshots": user_ns}},
        "data": {"snapshots": "{}"}})
    result = as_user(kubectl, user_kubeconfig, "create", "-f", "-", input=planted)
    assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr
    kubectl("create", "-f", "-", input=planted)
    try:
        result = as_user(kubectl, user_kubeconfig, "patch", "configmap", name_for(user_ns), "-n", OPERATOR_NS,
                         "--type=merge", "-p", '{"data": {"snapshots": "{\\"good\\": {}}"}}')
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr
    finally:
        kubectl("delete", "configmap", name_for(user_ns), "-n", OPERATOR_NS, check=False)


async def test_a_copy_the_operator_did_not_sign_is_never_restored(kubectl, user_ns, remediator, key) -> None:
    """Someone who could write in the operator's namespace, without the operator's key,
    plants a "known-good" copy: it is not loaded, and restoreConfig finds nothing to restore."""
    current = app(kubectl, user_ns)
    forged = snapshot_of({**current, "data": {"mode": "attacker-chosen"}}, dt.datetime.now(dt.UTC), ["Deployment/web"])
    doc = {GOOD: {"app": {**forged.to_json(), "signature": signature(b"not the operator's key", forged)}}, "replaced": {}}
    apply(kubectl, OPERATOR_NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": name_for(user_ns), "labels": {"aisre.dev/config-snapshots": user_ns}}, "data": {"snapshots": json.dumps(doc)}})
    try:
        store = SnapshotStore(remediator.client, OPERATOR_NS, key)
        assert await store.load() == 0
        remediator.snapshots = store
        kubectl("patch", "configmap", "app", "-n", user_ns, "--type=merge", "-p", '{"data": {"mode": "broken"}}')
        policy(kubectl, user_ns, actions=RESTORE)
        detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
                 [action("restore-1", "restoreConfig", "ConfigMap", "app")], key=key)
        await remediator.remediate(user_ns, "inc")
        entry = journal(kubectl, user_ns, "inc")["restore-1"]
        assert entry["decision"] == "Denied" and "no known-good copy" in entry["reason"], entry
        assert get(kubectl, "configmap", "app", user_ns)["data"] == {"mode": "broken"}
    finally:
        kubectl("delete", "configmap", name_for(user_ns), "-n", OPERATOR_NS, check=False)


def test_a_user_cannot_grant_restore_config_beyond_their_rights(kubectl, user_kubeconfig, user_ns, victim_ns,
                                                                aisre_only_ns) -> None:
    elsewhere = aisre_object("RemediationPolicy", "restore", {"mode": "auto", "actions": [{"type": "restoreConfig"}],
                                                              "targets": {"namespaces": [victim_ns]}})
    result = as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=elsewhere)
    assert refused_by_admission(result, "aisre-policy-authority") and "restoreConfig" in result.stderr, result.stderr
    own = aisre_object("RemediationPolicy", "restore", {"mode": "auto", "actions": [{"type": "restoreConfig"}]})
    result = as_user(kubectl, user_kubeconfig, "create", "-n", aisre_only_ns, "-f", "-", input=own)
    assert refused_by_admission(result, "aisre-policy-authority"), result.stderr
    # With the rights in their own namespace (edit: patch configmaps and workloads), it is theirs to grant.
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=own).returncode == 0
