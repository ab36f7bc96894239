"""Fixtures for the attack-path tests: the real local API server (the cluster tier's
session fixtures), the chart's trust boundary installed as a release would install it,
and a namespace user as real clusters have them.

The attacker is the non-admin ``aisre-dev`` (``.cluster/kubeconfig-user``). In the
namespace it works in it holds the built-in ``edit`` ClusterRole (workloads, pods, …) and
every verb on aisre's kinds and their status subresources: more than a team member
usually gets, so that what stops an attack is the trust boundary itself (admission
policies, signatures, the policy chain), never a missing RBAC verb. A second namespace,
the victim's, is one where it holds nothing.

The admin kubeconfig plays the operator here (the in-process operator runs as the admin
in tests): it is the one extra status writer the boundary is installed with. The
boundary is removed again when the tier ends, so other tiers of the same session see the
cluster as they left it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CLUSTER = HERE.parent / "cluster"
sys.path.insert(0, str(CLUSTER))
sys.path.insert(0, str(HERE))

# The cluster tier's session fixtures (cluster up, CRDs installed, the two kubeconfigs).
_spec = importlib.util.spec_from_file_location("aisre_cluster_conftest", CLUSTER / "conftest.py")
assert _spec is not None and _spec.loader is not None
_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cluster)
kubeconfig = _cluster.kubeconfig
user_kubeconfig = _cluster.user_kubeconfig
kubectl = _cluster.kubectl
crds = _cluster.crds
api_client = _cluster.api_client

from attack_helpers import (  # noqa: E402
    OPERATOR_NS,
    SECURITY_PREFIX,
    aisre_object,
    as_user,
    grant_namespace_user,
    refused_by_admission,
)
from conftest_helpers import deployment, temporary_namespace  # noqa: E402
from remediation_helpers import HELM, REPO, apply, available, reapply_crds, signing_key, wait  # noqa: E402

from aisre.kube.reader import connect  # noqa: E402
from aisre.remediation.executor import Remediator  # noqa: E402

BOUNDARY_TEMPLATES = ("templates/trust-boundary.yaml", "templates/approvals-vap.yaml", "templates/executor-rbac.yaml")


@pytest.fixture(scope="session")
def admin_name(kubectl) -> str:
    return kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()


def render_boundary(*sets: str) -> str:
    import subprocess

    only = [arg for t in BOUNDARY_TEMPLATES for arg in ("--show-only", t)]
    return subprocess.run([str(HELM), "template", "aisre", str(REPO / "charts" / "aisre"), "-n", OPERATOR_NS, *only,
                           *[arg for s in sets for arg in ("--set", s)]], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="package")
def boundary(kubectl, crds, admin_name, user_kubeconfig) -> Iterator[None]:
    """The chart's trust boundary (status writers, policy authority, approvals) and the
    executor's RBAC, for the release aisre in aisre-system; the admin is the operator here."""
    reapply_crds(kubectl)
    kubectl("create", "namespace", OPERATOR_NS, check=False)
    rendered = render_boundary(f"trustBoundary.statusWriters={{{admin_name}}}")
    kubectl("apply", "-f", "-", input=rendered)
    # Admission policies take effect a moment after they are stored (the API server loads
    # them from a watch): wait until both refuse a probe, as a user, in a dry run.
    with temporary_namespace(kubectl, SECURITY_PREFIX) as probe:
        grant_namespace_user(kubectl, probe)
        kubectl("create", "-n", probe, "-f", "-", input=aisre_object(
            "Incident", "probe", {"title": "probe", "resource": {"kind": "Node", "name": "n"}, "investigate": False}))
        nodes = aisre_object("RemediationPolicy", "probe", {"mode": "auto", "actions": [{"type": "cordonNode"}]})

        def enforced() -> bool:
            policy = as_user(kubectl, user_kubeconfig, "create", "--dry-run=server", "-n", probe, "-f", "-", input=nodes)
            status = as_user(kubectl, user_kubeconfig, "patch", "incident", "probe", "-n", probe, "--dry-run=server",
                             "--subresource=status", "--type=merge", "-p", '{"status": {"state": "Open"}}')
            return refused_by_admission(policy, "aisre-policy-authority") and refused_by_admission(status, "aisre-status-writers")

        wait(enforced, 60, "the admission policies enforced")
    yield
    kubectl("delete", "validatingadmissionpolicy,validatingadmissionpolicybinding", "aisre-status-writers",
            "aisre-policy-authority", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def key(kubectl) -> bytes:
    return signing_key(kubectl)


@pytest.fixture
def user_ns(kubectl, boundary) -> Iterator[str]:
    """The attacker's own namespace: `edit` plus every verb on aisre's kinds."""
    with temporary_namespace(kubectl, SECURITY_PREFIX) as name:
        grant_namespace_user(kubectl, name)
        yield name


@pytest.fixture
def victim_ns(kubectl, boundary) -> Iterator[str]:
    """Someone else's namespace (the attacker holds nothing there), with a Deployment `web` of two replicas."""
    with temporary_namespace(kubectl, SECURITY_PREFIX) as name:
        apply(kubectl, name, deployment("web", replicas=2))
        wait(lambda: available(kubectl, name, "web", 2), what="the victim's deployment available")
        yield name


@pytest.fixture
async def remediator(kubeconfig, key) -> AsyncIterator[Remediator]:
    """The executor as the operator runs it: its key, the executor identity, the ledger in
    the operator's namespace, the default blast-radius floor."""
    client, executor = connect(str(kubeconfig)), connect(str(kubeconfig))
    executor.headers["Impersonate-User"] = f"system:serviceaccount:{OPERATOR_NS}:aisre-executor"
    yield Remediator(client, executor, max_verify_seconds=20, signing_key=key, operator_namespace=OPERATOR_NS,
                     min_healthy_floor=50)
    await client.aclose()
    await executor.aclose()
