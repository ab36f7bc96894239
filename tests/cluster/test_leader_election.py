"""Two replicas of the operator (in-process, each its own instance name, one peering and
Lease) against one namespace: exactly one leads, one Incident and one Investigation per
fault, and when the leader stops the standby takes the Lease over and carries on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.leader import LeaseSettings, microtime
from aisre.operator.main import LeadershipLost
from conftest_helpers import Kubectl
from conftest_helpers import deployment
from remediation_helpers import apply, available, get, journal, policy, wait

THRESHOLDS = dataclasses.replace(Thresholds.compressed(), resolve_after=4.0)
LEASE = LeaseSettings(duration=5, renew=1, renew_deadline=3, retry=0.5)
PEERING = "aisre-ha"
LEASE_NAME = f"{PEERING}-leader"


def _replica(kubeconfig: Path, namespace: str, instance: str) -> OperatorThread:
    return OperatorThread(kubeconfig, free_port(), namespaces=(namespace,), detection=True, operator_namespace=namespace,
                          thresholds=THRESHOLDS, peering_name=PEERING, instance=instance, lease=LEASE)


def _items(kubectl: Kubectl, kind: str, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", kind, "-n", namespace, "-o", "json").stdout)["items"]


def _lease(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "lease", LEASE_NAME, "-n", namespace, "-o", "json").stdout)["spec"]


def _until(what: str, probe: Callable[[], Any], timeout: float = 40.0) -> Any:
    return wait(probe, timeout, what)


def _probe(replica: OperatorThread, path: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{replica.http_port}{path}", timeout=5)
    body = answer.json()
    body.pop("plugins", None)  # the plugins' own report (tests/unit/test_http.py), not about leading
    return answer.status_code, body


def test_two_replicas_one_leader_no_duplicates_and_failover(kubectl: Kubectl, kubeconfig: Path, own_namespace: str) -> None:
    ns = own_namespace
    # A leader that crashed a moment ago: its Lease must run out before anyone takes over.
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE_NAME},
        "spec": {"holderIdentity": "crashed-replica", "leaseDurationSeconds": 6,
                 "renewTime": microtime(dt.datetime.now(dt.UTC)), "leaseTransitions": 0}}))
    # A healthy rollout, and a policy that lets the operator roll back a bad one.
    apply(kubectl, ns, deployment("ledger", replicas=2))
    policy(kubectl, ns, actions=[{"type": "rollback", "mode": "auto"}])
    wait(lambda: available(kubectl, ns, "ledger", 2), what="deployment available")
    with ExitStack() as stack:
        replicas = {name: stack.enter_context(_replica(kubeconfig, ns, name)) for name in ("aisre-a", "aisre-b")}
        for replica in replicas.values():
            assert _probe(replica, "/healthz")[0] == 200
            code, body = _probe(replica, "/readyz")  # a standby is ready: it stands by
            assert code == 200 and body["role"] == "standby" and body["leader"] == "crashed-replica", body
            assert _probe(replica, "/leaderz")[0] == 503

        leader = _until("a replica to take the expired Lease",
                        lambda: _lease(kubectl, ns).get("holderIdentity") in replicas and _lease(kubectl, ns)["holderIdentity"])
        standby = next(name for name in replicas if name != leader)
        assert _lease(kubectl, ns)["leaseTransitions"] == 1
        _until("the leader's Kopf to start", lambda: _probe(replicas[leader], "/readyz") == (
            200, {"status": "ready", "role": "leader", "leader": leader}))
        assert _probe(replicas[leader], "/leaderz")[0] == 200 and _probe(replicas[standby], "/leaderz")[0] == 503
        assert _probe(replicas[standby], "/readyz") == (200, {"status": "ready", "role": "standby", "leader": leader})

        # Faults, though two replicas watch them: one Incident and one Investigation each, and
        # the bad rollout rolled back once. (The policy goes before the second fault: with both
        # in one namespace, vault's Investigation may blame ledger's recent rollout too.)
        kubectl("-n", ns, "set", "resources", "deployment/ledger", "--requests=cpu=64")
        ledger = _until("the rollback to be verified", lambda: next(
            (i for i in _items(kubectl, "incidents", ns) if i["spec"]["resource"]["name"] == "ledger"
             and any(r.get("result") == "Succeeded" for r in (i.get("status") or {}).get("remediations") or [])), None), 60)
        kubectl("delete", "remediationpolicy", "p", "-n", ns)
        apply(kubectl, ns, deployment("vault", replicas=2, cpu="64"))
        vault = _until("a root cause for vault", lambda: next(
            (i for i in _items(kubectl, "incidents", ns) if i["spec"]["resource"]["name"] == "vault"
             and (i.get("status") or {}).get("rootCause")), None))
        assert vault["status"]["rootCause"]["category"] == "InsufficientResources"
        time.sleep(3)  # a few decision rounds of both replicas
        names = sorted(i["metadata"]["name"] for i in _items(kubectl, "incidents", ns))
        assert names == sorted([ledger["metadata"]["name"], vault["metadata"]["name"]])
        assert sorted(i["metadata"]["name"] for i in _items(kubectl, "investigations", ns)) == names
        assert [(r["type"], r["result"]) for r in journal(kubectl, ns, ledger["metadata"]["name"]).values()] == [
            ("rollback", "Succeeded")]

        # The leader stops cleanly: it releases the Lease and the standby takes over at once.
        stopped = time.monotonic()
        replicas[leader].__exit__(None, None, None)  # the ExitStack exiting it again later is harmless
        _until("the standby to take the Lease", lambda: _lease(kubectl, ns).get("holderIdentity") == standby, 10)
        assert time.monotonic() - stopped < LEASE.duration + 3
        assert _lease(kubectl, ns)["leaseTransitions"] == 1  # a released Lease is taken, not a transition
        _until("the new leader's Kopf to start", lambda: _probe(replicas[standby], "/leaderz")[0] == 200, 15)

        # It adopted the open Incident: the fix resolves that one, and nothing is opened or run twice.
        kubectl("-n", ns, "set", "resources", "deployment/vault", "--requests=cpu=100m")
        resolved = _until("vault's incident to resolve", lambda: next(
            (i for i in _items(kubectl, "incidents", ns) if i["spec"]["resource"]["name"] == "vault"
             and (i.get("status") or {}).get("state") == "Resolved"), None), 60)
        assert resolved["metadata"]["name"] == vault["metadata"]["name"]
        assert sorted(i["metadata"]["name"] for i in _items(kubectl, "incidents", ns)) == names
        assert len(_items(kubectl, "investigations", ns)) == 2 and len(journal(kubectl, ns, ledger["metadata"]["name"])) == 1
        revision = get(kubectl, "deployment", "ledger", ns)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        assert revision == "3"  # 1 good, 2 bad, 3 the one rollback (a second would make it 4)
        replicas[standby].__exit__(None, None, None)
    assert _lease(kubectl, ns).get("holderIdentity") is None  # released on the way out


def test_a_leader_that_loses_the_lease_stops_working(kubectl: Kubectl, kubeconfig: Path, own_namespace: str) -> None:
    """Another holder in the Lease (a partition healed, a manual take-over): the leader
    stops Kopf at once and ends with LeadershipLost (`aisre run` exits 1 and restarts)."""
    ns = own_namespace
    replica = OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns,
                             peering_name=PEERING, instance="aisre-a", lease=LEASE)
    with replica:
        _until("leadership", lambda: _lease(kubectl, ns).get("holderIdentity") == "aisre-a", 10)
        _until("Kopf to start", lambda: _probe(replica, "/readyz")[0] == 200 and _probe(replica, "/leaderz")[0] == 200)
        kubectl("patch", "lease", LEASE_NAME, "-n", ns, "--type=merge", "-p", '{"spec":{"holderIdentity":"intruder"}}')
        replica.thread.join(15)
        assert not replica.thread.is_alive()
        assert isinstance(replica.error, LeadershipLost), replica.error
    assert _lease(kubectl, ns)["holderIdentity"] == "intruder"  # not released: it was not ours any more
