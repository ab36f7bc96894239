"""Scenarios played by the real kubelet (``kubelet: real``): their pods are pinned to the real
node of the local cluster (hack/realnode/, docs/real-node.md), which is labelled and tainted so
that nothing else lands there. The runner applies the manifests and waits; the kubelet,
containerd and runc report what happens.

Because nothing is simulated, a failure takes its real time to show (a pull, a crash, a
back-off): after the fault steps the runner waits until the kubelet first reports trouble
(``wait_for_kubelet``), so an Investigation does not look before there is anything to see, and
the detection clock starts where the kubelet's report does.

Talks to the API server to see whether such a node is there and Ready, and to watch the
scenario namespace's Warning events and workloads.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from aisre.bench.kube import Kube, Stream, api_error
from aisre.bench.workloads import not_available

NODE_LABEL = ("aisre.dev/kubelet", "real")
TAINT_KEY = "aisre.dev/real-node"
TOLERATION = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
STATUS_FILE = "realnode-status"  # written by hack/cluster-up.sh next to the kubeconfig
KUBELET_CONTROL = Path("realnode") / "kubelet.sh"  # hack/realnode/up.sh links it into the cluster directory
KUBELET_CONTROL_TIMEOUT_S = 180.0

# Where each kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pin(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its pods bound for the real node: its label in the nodeSelector and
    a toleration of its taint, added to what the manifest already says. Objects without pods
    come back unchanged."""
    path = _POD_SPEC_PATHS.get(str(manifest.get("kind")))
    if path is None:
        return manifest
    pinned = copy.deepcopy(manifest)
    spec = pinned
    for key in path:
        if spec.get(key) is None:
            spec[key] = {}
        spec = spec[key]
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), NODE_LABEL[0]: NODE_LABEL[1]}
    tolerations = list(spec.get("tolerations") or [])
    if not any(t.get("key") == TAINT_KEY for t in tolerations):
        tolerations.append(dict(TOLERATION))
    spec["tolerations"] = tolerations
    return pinned


def keep_off(manifest: dict[str, Any]) -> dict[str, Any]:
    """For a simulated scenario: a manifest whose pods tolerate every taint (a log shipper's
    DaemonSet, `operator: Exists`) would land on the real node too, where no runtime step
    reaches them; it gets a node affinity that keeps it off. Others come back unchanged, so
    their scheduling messages stay what the scenario's author saw."""
    path = _POD_SPEC_PATHS.get(str(manifest.get("kind")))
    if path is None:
        return manifest
    spec: Any = manifest
    for key in path:
        spec = (spec or {}).get(key)
    tolerations = (spec or {}).get("tolerations") or []
    if not any(t.get("operator") == "Exists" and t.get("key") in (None, "", TAINT_KEY) for t in tolerations):
        return manifest
    kept = copy.deepcopy(manifest)
    spec = kept
    for key in path:
        spec = spec[key]
    off = {"key": NODE_LABEL[0], "operator": "NotIn", "values": [NODE_LABEL[1]]}
    required = (spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
                .setdefault("requiredDuringSchedulingIgnoredDuringExecution", {}))
    terms = required.get("nodeSelectorTerms") or [{}]
    # Terms are ORed: each must keep off the real node.
    required["nodeSelectorTerms"] = [{**term, "matchExpressions": [*(term.get("matchExpressions") or []), off]}
                                     for term in terms]
    return kept


def unavailable(kube: Kube, state_dir: Path | None = None) -> str | None:
    """None when a Ready real node is in the cluster, else why real scenarios cannot run
    (with cluster-up's reason when it recorded one)."""
    recorded = ""
    if state_dir is not None and (state_dir / STATUS_FILE).is_file():
        recorded = (state_dir / STATUS_FILE).read_text().strip()
    try:
        nodes = kube.core.list_node(label_selector=f"{NODE_LABEL[0]}={NODE_LABEL[1]}").items
    except ApiException as error:
        return f"cannot list nodes: {api_error(error)}"
    for node in nodes:
        ready = [c for c in (node.status.conditions or []) if c.type == "Ready"]
        if ready and ready[0].status == "True":
            return None
    why = recorded if recorded and recorded != "ready" else "no Ready node labelled aisre.dev/kubelet=real"
    return f"no real node: {why} (docs/real-node.md)"


def kubelet(state_dir: Path, verb: str) -> str:
    """Stops (``stop``) or starts (``start``: and waits until the node is Ready) the real
    node's kubelet alone, or tells whether it runs (``status``), with the script the node's
    cluster directory links to (hack/realnode/kubelet.sh). Raises RuntimeError with the
    script's reason when it fails."""
    script = state_dir / KUBELET_CONTROL
    if not script.exists():
        raise RuntimeError(f"no {script}: the real node was started without it (make cluster-down cluster-up)")
    try:
        done = subprocess.run(["bash", str(script), verb], env={**os.environ, "AISRE_CLUSTER_DIR": str(state_dir)},
                              capture_output=True, text=True, timeout=KUBELET_CONTROL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"kubelet {verb}: no answer within {KUBELET_CONTROL_TIMEOUT_S:g} s") from error
    if done.returncode != 0:
        raise RuntimeError(f"kubelet {verb}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout.strip()


# After a scenario stopped the kubelet: how long the node must have been Ready, untainted,
# before the next scenario starts — detection folds pods that fail on a node that was unwell
# a moment ago into that node's Incident, and the next scenario's faults are its own.
NODE_SETTLE_S = 15.0


def wait_node_settled(kube: Kube, timeout: float = 120.0) -> str | None:
    """Waits until every real node is Ready without a node.kubernetes.io/ taint, then
    ``NODE_SETTLE_S`` more; returns why not, after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = kube.core.list_node(label_selector=f"{NODE_LABEL[0]}={NODE_LABEL[1]}").items
        ready = all(any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
                    and not any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
                    for node in nodes)
        if ready:
            time.sleep(NODE_SETTLE_S)
            return None
        time.sleep(1.0)
    return f"the real node was not Ready and untainted within {timeout:g} s of its kubelet's restart"


def restart_stopped_kubelet(state_dir: Path) -> str | None:
    """After a run that ended with the kubelet stopped (killed mid-scenario): start it again.
    Returns what was done, or None when there was nothing to do (no real node, or it runs)."""
    if not (state_dir / KUBELET_CONTROL).exists():
        return None
    try:
        if kubelet(state_dir, "status") != "stopped":
            return None
        kubelet(state_dir, "start")
    except RuntimeError as error:
        return f"the real node's kubelet was stopped and could not start again: {error}"
    return "the real node's kubelet, stopped by an earlier run, runs again"


# A probe that fails once while a new container starts is no report of a fault; one that keeps
# failing is (the kubelet counts repeats of the same Event).
PROBE_FAILURES_REPORTED = 3
SETTLE_CHECK_S = 1.0


def report_delay(event: dict[str, Any], since: dt.datetime) -> float | None:
    """Seconds after ``since`` at which this Warning shows the kubelet reporting trouble, if it does."""
    if (event.get("source") or {}).get("component") != "kubelet" and event.get("reportingComponent") != "kubelet":
        return None
    if event.get("reason") == "Unhealthy" and (event.get("count") or 1) < PROBE_FAILURES_REPORTED:
        return None
    stamp = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return None
    at = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (at - since).total_seconds() if at >= since else None


def wait_for_kubelet(kube: Kube, namespace: str, since: dt.datetime, timeout: float) -> float | None:
    """Waits until the kubelet reports trouble in ``namespace`` after ``since`` (a Warning Event
    of its own, a failing probe counted as soon as it repeats) and returns how many seconds after
    ``since`` it did; returns None when every workload is available without such a report (a
    change that went well, or a fault that shows in logs only), or after ``timeout``."""
    started = time.monotonic()
    stream = Stream(kube.core.list_namespaced_event, namespace=namespace, field_selector="type=Warning")
    done = threading.Event()

    def settle() -> None:  # the other way out, checked each second: the workloads are available
        while not done.wait(SETTLE_CHECK_S):
            if not not_available(kube, namespace):
                stream.stop()
                return

    threading.Thread(target=settle, name=f"settle-{namespace}", daemon=True).start()
    try:
        for kind, event in stream.events(timeout=timeout):
            if kind in ("ADDED", "MODIFIED"):
                after = report_delay(event, since)
                if after is not None:
                    return max(0.0, min(after, time.monotonic() - started + 1.0))
        return None
    finally:
        done.set()
        stream.stop()
