"""What the attack-path tests share: the attacker's rights, acting as the attacker, and
reading what the operator and the executor did."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from aisre.api import GROUP, VERSION

OPERATOR_NS = "aisre-system"
# Other operators on the cluster (the cluster tier's session operator, bench runs) leave
# aisre-own-* alone: what happens here is this tier's doing.
SECURITY_PREFIX = "aisre-own-sec-"
USER = "aisre-dev"
AISRE_KINDS = ",".join(f"{plural}.{GROUP}{sub}" for plural in ("incidents", "investigations", "remediationpolicies", "runbooks",
                                                                 "notificationroutes")
                       for sub in ("", "/status"))


def grant_namespace_user(kubectl, namespace: str, *, workloads: bool = True) -> None:
    """What a team member is given in their namespace: the built-in `edit` ClusterRole
    (unless ``workloads`` is off), and every verb on aisre's kinds including their status."""
    if workloads:
        kubectl("create", "rolebinding", "team-edit", "--clusterrole=edit", f"--user={USER}", "-n", namespace)
    kubectl("create", "role", "aisre-everything", "--verb=*", f"--resource={AISRE_KINDS}", "-n", namespace)
    kubectl("create", "rolebinding", "aisre-everything", "--role=aisre-everything", f"--user={USER}", "-n", namespace)


def as_user(kubectl, user_kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl as the attacker; never raises (the test looks at the answer)."""
    return kubectl(*args, input=input, check=False, kubeconfig=user_kubeconfig)


def refused_by_admission(result: subprocess.CompletedProcess[str], policy: str) -> bool:
    return result.returncode != 0 and f"ValidatingAdmissionPolicy '{policy}'" in result.stderr


def aisre_object(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name, **metadata},
                       "spec": spec})


def journal(kubectl, namespace: str, incident: str) -> dict[str, dict[str, Any]]:
    obj = json.loads(kubectl("get", "incident", incident, "-n", namespace, "-o", "json").stdout)
    return {e["id"]: e for e in (obj.get("status") or {}).get("remediations") or []}


def replicas(kubectl, namespace: str, name: str = "web") -> int:
    return int(json.loads(kubectl("get", "deployment", name, "-n", namespace, "-o", "json").stdout)["spec"]["replicas"])


def detected(kubectl, namespace: str, name: str, resource: dict[str, Any], actions: list[dict[str, Any]],
             key: bytes | None = None) -> dict[str, str]:
    """The operator's part (remediation_helpers.detected), with no other operator to wait
    for: none watches this tier's namespaces."""
    from remediation_helpers import detected as operator_detected

    return operator_detected(kubectl, namespace, name, resource, actions, key=key, settle=0)
