"""Manifests of the KWOK objects the simulation applies at run time (pure builders).

- A *hold* Stage (weight > 0, empty ``next``) matches the pods (or nodes) whose status the
  runner writes. Among matching stages KWOK plays only those with weight > 0, so the
  weight-0 defaults (pod-ready, node-initialize, node-heartbeat) never overwrite the
  simulated status; an empty ``next`` changes nothing, so the stage cannot loop. Pods being
  deleted are left out, so KWOK's pod-delete stage still removes them.
- A ``Logs`` object per pod (same name and namespace as the pod) points ``kubectl logs`` and
  ``kubectl logs --previous`` at CRI-format files that kwok-controller reads from the host.

Nothing here is put on the scenario's own objects: Stages are cluster-scoped, and the only
marks are the neutral labels below on objects the runner creates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

KWOK_GROUP = "kwok.x-k8s.io"
KWOK_VERSION = "v1alpha1"
# Above the weight-0 defaults; equal among our own stages, which are all no-ops.
HOLD_WEIGHT = 1000

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aisre-bench"
NAMESPACE_LABEL = "sim.aisre.dev/namespace"  # the scenario namespace a Stage serves
RUN_LABEL = "sim.aisre.dev/run"  # the bench run (host and pid) that created an object
KEPT_LABEL = "sim.aisre.dev/kept"  # kept on purpose (--keep-namespaces): never swept


def labels(namespace: str | None, run_id: str) -> dict[str, str]:
    out = {MANAGED_BY_LABEL: MANAGED_BY, RUN_LABEL: run_id}
    if namespace:
        out[NAMESPACE_LABEL] = namespace
    return out


def _label_key(key: str) -> str:
    return f".metadata.labels[{json.dumps(key)}]"


def _hold_stage(name: str, kind: str, expressions: list[dict[str, Any]], *, namespace: str | None, run_id: str) -> dict[str, Any]:
    """A weighted Stage with no ``next``: matching is all it does, which keeps KWOK's
    default stages off the objects it selects."""
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
        "kind": "Stage",
        "metadata": {"name": name, "labels": labels(namespace, run_id)},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "weight": HOLD_WEIGHT,
            "selector": {"matchExpressions": expressions},
        },
    }


def pod_hold_stage(
    name: str,
    namespace: str,
    selector: Mapping[str, str],
    *,
    run_id: str,
    exclude_uids: Sequence[str] = (),
    only_uids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Keeps KWOK's default pod stages off the selected pods of ``namespace``.
    ``exclude_uids``: pods that existed before the fault (for ``newPodsOnly``);
    ``only_uids``: exactly these pods (for one-shot states such as Evicted)."""
    expressions: list[dict[str, Any]] = [
        {"key": ".metadata.namespace", "operator": "In", "values": [namespace]},
        *({"key": _label_key(k), "operator": "In", "values": [v]} for k, v in sorted(selector.items())),
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
    ]
    if exclude_uids:
        expressions.append({"key": ".metadata.uid", "operator": "NotIn", "values": sorted(exclude_uids)})
    if only_uids is not None:
        # An empty list would be refused by KWOK; a uid nobody has matches nothing.
        expressions.append({"key": ".metadata.uid", "operator": "In", "values": sorted(only_uids) or ["none"]})
    return _hold_stage(name, "Pod", expressions, namespace=namespace, run_id=run_id)


def node_hold_stage(name: str, nodes: Iterable[str], *, namespace: str, run_id: str) -> dict[str, Any]:
    """Keeps node-initialize (which resets a node that is not Ready) and the heartbeat
    stage off the nodes whose conditions the runner sets."""
    expressions = [{"key": ".metadata.name", "operator": "In", "values": sorted(nodes)}]
    return _hold_stage(name, "Node", expressions, namespace=namespace, run_id=run_id)


def logs_object(
    pod: str, namespace: str, files: Mapping[str, tuple[str, str | None]], *, run_id: str
) -> dict[str, Any]:
    """A ``Logs`` object for one pod: container -> (logs file, previous logs file or None).
    Every container of the pod must be listed: a per-pod Logs object hides ClusterLogs,
    and a container it lacks makes ``kubectl logs`` fail."""
    entries = []
    for container, (current, previous) in sorted(files.items()):
        entry: dict[str, Any] = {"containers": [container], "logsFile": current}
        if previous:
            entry["previousLogsFile"] = previous
        entries.append(entry)
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
        "kind": "Logs",
        "metadata": {"name": pod, "namespace": namespace, "labels": labels(None, run_id)},
        "spec": {"logs": entries},
    }


def cri_log(lines: Sequence[str], start: dt.datetime, *, step_ms: int = 1) -> str:
    """Lines in the CRI log format kwok-controller parses (``<RFC3339Nano> stdout F <line>``);
    the runtime's timestamps start at ``start``, a millisecond apart."""
    out = []
    for i, line in enumerate(lines):
        moment = start.astimezone(dt.UTC) + dt.timedelta(milliseconds=i * step_ms)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"
        for part in line.splitlines() or [""]:
            out.append(f"{stamp} stdout F {part}\n")
    return "".join(out)
