"""Helpers for the remediation cluster tests: the chart's remediation templates installed
with `helm template | kubectl apply`, detection simulated (an Incident, an Investigation
with typed recommendations, the Incident's status linked to it), policies, and a
Remediator on two identities."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from aisre.api import GROUP, VERSION
from aisre.api.signing import action_signature

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE_NS = "aisre-system"
EXECUTOR = f"system:serviceaccount:{RELEASE_NS}:aisre-executor"
SIGNING_SECRET = "aisre-signing-key"


def install_chart(kubectl, release: str = "aisre", *sets: str) -> None:
    if kubectl("get", "namespace", RELEASE_NS, check=False).returncode != 0:
        kubectl("create", "namespace", RELEASE_NS, check=False)
    # Only the remediation parts (the operator runs in-process here, not as the chart's Deployment).
    only = ["--show-only", "templates/executor-rbac.yaml"]
    if "remediation.approvals.enabled=false" not in sets:
        only += ["--show-only", "templates/approvals-vap.yaml"]
    rendered = subprocess.run([str(HELM), "template", release, str(REPO / "charts" / "aisre"), "-n", RELEASE_NS,
                               *only, *[arg for s in sets for arg in ("--set", s)]],
                              capture_output=True, text=True, check=True).stdout
    kubectl("apply", "-f", "-", input=rendered)


def apply(kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def policy(kubectl, namespace: str, name: str = "p", **spec: Any) -> None:
    spec.setdefault("verification", {"timeout": "30s", "revertOnFailure": True})
    spec.setdefault("limits", {"actionsPerHour": 100, "maxConcurrent": 5, "cooldown": "1s", "minHealthyPercent": 0})
    apply(kubectl, namespace, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy",
                               "metadata": {"name": name}, "spec": spec})


def signing_key(kubectl, namespace: str = RELEASE_NS, name: str = SIGNING_SECRET) -> bytes:
    """The operator's signing key as an in-process operator finds it (operator/signing_key.py:
    the Secret <operator namespace>/aisre-signing-key, created when missing)."""
    kubectl("create", "namespace", namespace, check=False)
    for _ in range(2):
        got = kubectl("get", "secret", name, "-n", namespace, "-o", "jsonpath={.data.key}", check=False)
        if got.returncode == 0 and got.stdout:
            return base64.b64decode(got.stdout)
        kubectl("create", "secret", "generic", name, "-n", namespace, f"--from-literal=key={secrets.token_urlsafe(48)}",
                check=False)
    raise AssertionError(f"no signing key in {namespace}/{name}")


def signed(key: bytes, incident_uid: str, investigation_uid: str, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**a, "signature": action_signature(key, incident_uid, investigation_uid, a)} for a in actions]


def detected(kubectl, namespace: str, name: str, resource: dict[str, Any], actions: list[dict[str, Any]],
             key: bytes | None = None, as_operator: Path | None = None, settle: float = 5.0) -> dict[str, str]:
    """What detection and the operator do: an Incident, the Investigation the operator
    creates for it (controlled by it), the recommendations signed with the operator's key
    (written into the Investigation's status directly: no operator runs it here), and the
    Incident's status linked to the Investigation by name and uid, with a root cause.
    Status is written as ``as_operator`` (a kubeconfig), by default the admin (a status
    writer wherever the chart's trust boundary is installed in tests). ``settle``: how long
    other operators may take to investigate it first (0 where none watches). Returns the uids."""
    key = key if key is not None else signing_key(kubectl)
    apply(kubectl, namespace, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name},
                               "spec": {"title": "test", "resource": resource, "investigate": False}})
    incident_uid = get(kubectl, "incident", name, namespace)["metadata"]["uid"]
    apply(kubectl, namespace, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Investigation", "metadata": {
        "name": name, "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "name": name,
                                            "uid": incident_uid, "controller": True}]},
        "spec": {"target": {"kind": resource["kind"], "name": resource["name"]}, "incidentRef": {"name": name}}})
    investigation_uid = get(kubectl, "investigation", name, namespace)["metadata"]["uid"]
    # Other operators may share this cluster and investigate it: let them finish first
    # (a concluded Investigation is never investigated again), then write the actions.
    started = time.monotonic()
    while time.monotonic() - started < settle:
        state = (get(kubectl, "investigation", name, namespace).get("status") or {}).get("state")
        if state in ("Completed", "Failed"):
            break
        time.sleep(0.2)
    kubectl("patch", "investigation", name, "-n", namespace, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"state": "Completed", "recommendedActions": signed(key, incident_uid, investigation_uid,
                                                                                       actions)}}),
            kubeconfig=as_operator)
    kubectl("patch", "incident", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"state": "Identified", "investigationRef": {"name": name, "uid": investigation_uid},
                    "rootCause": {"category": "BadImage", "resource": resource, "summary": "test", "confidence": 0.9}}}),
        kubeconfig=as_operator)
    return {"incident": incident_uid, "investigation": investigation_uid}


def action(id_: str, type_: str, kind: str, name: str, **parameters: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_, "type": type_, "target": {"kind": kind, "name": name}, "reason": "test"}
    if parameters:
        out["parameters"] = parameters
    return out


def journal(kubectl, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    obj = json.loads(kubectl("get", "incident", name, "-n", namespace, "-o", "json").stdout)
    return {e["id"]: e for e in (obj.get("status") or {}).get("remediations") or []}


def get(kubectl, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    return json.loads(kubectl(*args).stdout)


def wait(predicate, timeout: float = 60.0, what: str = "condition") -> Any:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached within {timeout} s")


def available(kubectl, namespace: str, name: str, replicas: int) -> bool:
    d = get(kubectl, "deployment", name, namespace)
    s = d.get("status") or {}
    return (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("availableReplicas", 0) == replicas
            and s.get("updatedReplicas", 0) == replicas and s.get("replicas", 0) == replicas)


def statefulset_rolled_out(kubectl, namespace: str, name: str, replicas: int) -> bool:
    s = get(kubectl, "statefulset", name, namespace)
    st = s.get("status") or {}
    return (st.get("observedGeneration", 0) >= s["metadata"]["generation"] and st.get("readyReplicas", 0) == replicas
            and st.get("updatedReplicas", 0) == replicas and st.get("currentRevision") == st.get("updateRevision"))


def kwok_node(kubectl, name: str, **labels: str) -> None:
    """A node of the test's own, simulated by KWOK, tainted so that nobody's pods land on it
    by chance; never the shared kwok nodes."""
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": {"type": "kwok", **labels}},
        "spec": {"taints": [{"key": "aisre.dev/test", "effect": "NoSchedule"}]}}))


def reapply_crds(kubectl) -> None:
    """The cluster is shared with branches whose CRDs may lack the journal's newer fields
    (marker, undo), which the API server would prune; put this branch's CRDs back."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))


def grant_approver(kubectl, namespace: str, user: str = "aisre-dev") -> None:
    """What an approver needs besides being named in the policy: RBAC to patch Incidents."""
    kubectl("create", "role", "incident-approver", "--verb=get,list,patch,update", "--resource=incidents.aisre.dev", "-n", namespace)
    kubectl("create", "rolebinding", "incident-approver", "--role=incident-approver", f"--user={user}", "-n", namespace)


def awaiting(kubectl, namespace: str, incident: str, action_id: str, revision: str = "1-0123456789abcdef") -> str:
    """A journal entry awaiting approval, as the operator writes it when a policy says
    approve (what `aisre approve` reads the revision from). Returns the revision."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    entry = {"id": action_id, "type": "scale", "target": {"kind": "Deployment", "name": "web", "namespace": namespace},
             "decision": "AwaitingApproval", "reason": "AwaitingApproval", "decidedAt": now, "result": "Pending",
             "revision": revision, "expiresAt": later}
    kubectl("patch", "incident", incident, "-n", namespace, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"remediations": [entry]}}))
    return revision
