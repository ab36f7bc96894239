"""What the command lines do against a cluster: shared by ``aisre`` and ``kubectl aisre``.

The two console scripts only parse arguments and print; everything they ask of the API
server is here: loading the kubeconfig (``--kubeconfig``, ``--context`` and the context's
namespace, as kubectl does), naming objects the way kubectl does (``deploy/checkout``,
``inv/checkout-1``), creating an Investigation and waiting for it to conclude, and
fetching what ``report`` and ``explain`` render. Errors from the API server are raised as
they come (``kubernetes.client.ApiException``); the scripts format them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from aisre.api.investigation import InvestigationSpec
from aisre.api.meta import API_VERSION, GROUP, VERSION
from aisre.report import render_incident, render_investigation

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TERMINAL_STATES = ("Completed", "Failed")


class UsageError(ValueError):
    """A command line that names something the way kubectl would not accept."""


@dataclass(frozen=True)
class Cluster:
    """An API client and the namespace commands use when none is given."""

    api_client: kubernetes.client.ApiClient
    namespace: str

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """The cluster of the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` when None) and
    context (its current context when None), defaulting to that context's namespace; without
    any kubeconfig, the in-cluster service account and its namespace."""
    try:
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)
        contexts, current = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
    except kubernetes.config.ConfigException:
        if kubeconfig or context or not IN_CLUSTER_NAMESPACE.exists():
            raise
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        return Cluster(kubernetes.client.ApiClient(config), IN_CLUSTER_NAMESPACE.read_text().strip() or "default")
    chosen = next((c for c in contexts if c["name"] == context), current) if context else current
    return Cluster(client, (chosen.get("context") or {}).get("namespace") or "default")


# ------------------------------------------------------------------ naming objects

# aisre's own kinds, by every name kubectl accepts for them (plural, singular, short, qualified).
AISRE_PLURALS: dict[str, str] = {}
for _plural, _singular, _short in (("investigations", "investigation", "inv"), ("incidents", "incident", "inc"),
                                   ("remediationpolicies", "remediationpolicy", "rpol")):
    for _alias in (_plural, _singular, _short):
        AISRE_PLURALS[_alias] = AISRE_PLURALS[f"{_alias}.{GROUP}"] = _plural


@dataclass(frozen=True)
class TargetKind:
    """A kind an Investigation can target, and how to read one to check it exists."""

    kind: str
    api_version: str
    reader: tuple[str, str]  # kubernetes.client API class, read method
    namespaced: bool = True


_TARGETS = (
    (("deploy", "deployment", "deployments"), TargetKind("Deployment", "apps/v1", ("AppsV1Api", "read_namespaced_deployment"))),
    (("sts", "statefulset", "statefulsets"), TargetKind("StatefulSet", "apps/v1", ("AppsV1Api", "read_namespaced_stateful_set"))),
    (("ds", "daemonset", "daemonsets"), TargetKind("DaemonSet", "apps/v1", ("AppsV1Api", "read_namespaced_daemon_set"))),
    (("rs", "replicaset", "replicasets"), TargetKind("ReplicaSet", "apps/v1", ("AppsV1Api", "read_namespaced_replica_set"))),
    (("job", "jobs"), TargetKind("Job", "batch/v1", ("BatchV1Api", "read_namespaced_job"))),
    (("po", "pod", "pods"), TargetKind("Pod", "v1", ("CoreV1Api", "read_namespaced_pod"))),
    (("svc", "service", "services"), TargetKind("Service", "v1", ("CoreV1Api", "read_namespaced_service"))),
    (("no", "node", "nodes"), TargetKind("Node", "v1", ("CoreV1Api", "read_node"), namespaced=False)),
)
TARGET_KINDS: dict[str, TargetKind] = {}
for _aliases, _target in _TARGETS:
    _group = _target.api_version.rpartition("/")[0]
    for _alias in _aliases:
        TARGET_KINDS[_alias] = _target
        if _group:
            TARGET_KINDS[f"{_alias}.{_group}"] = _target
    TARGET_KINDS[_target.kind.lower()] = _target


def split_ref(text: str) -> tuple[str, str]:
    """``kind/name`` → (kind in lower case, name)."""
    kind, slash, name = text.partition("/")
    if not slash or not kind or not name or "/" in name:
        raise UsageError(f'expected KIND/NAME (e.g. deploy/checkout), got "{text}"')
    return kind.lower(), name


def aisre_ref(text: str, allowed: Iterable[str] = ("investigations", "incidents")) -> tuple[str, str]:
    """``investigation/NAME`` or ``incident/NAME`` (any kubectl alias) → (plural, name)."""
    kind, name = split_ref(text)
    plural = AISRE_PLURALS.get(kind)
    allowed = tuple(allowed)
    if plural not in allowed:
        wanted = " or ".join(f"{p.removesuffix('s')}/NAME" for p in allowed)
        raise UsageError(f'expected {wanted}, got "{text}"')
    return plural, name


def target_ref(text: str) -> tuple[TargetKind, str]:
    """A kubectl-style reference to what an Investigation can target: ``deploy/checkout``."""
    kind, name = split_ref(text)
    if kind not in TARGET_KINDS:
        known = ", ".join(aliases[0] for aliases, _ in _TARGETS)
        raise UsageError(f'cannot investigate "{text}": the kind must be one of {known} (or their long names)')
    return TARGET_KINDS[kind], name


# ------------------------------------------------------------------ Investigations

_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?$")


def parse_timeout(text: str) -> float:
    """kubectl's durations (``120s``, ``2m``, ``1h30m``) or plain seconds → seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise UsageError(f'invalid duration "{text}": use e.g. 90s, 2m or 1h30m')
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def investigation_body(target: TargetKind, name: str, *, question: str | None = None,
                       agents: list[str] | None = None, lookback: str | None = None,
                       deadline_seconds: int | None = None, object_name: str | None = None) -> dict[str, Any]:
    """A new Investigation of ``target`` (validated against the model before it is sent):
    named ``object_name``, or generated from the target's name."""
    spec: dict[str, Any] = {"target": {"apiVersion": target.api_version, "kind": target.kind, "name": name}}
    if question:
        spec["question"] = question
    if agents:
        spec["agents"] = agents
    if lookback:
        spec["window"] = {"lookback": lookback}
    if deadline_seconds is not None:
        spec["deadlineSeconds"] = deadline_seconds
    try:
        checked = InvestigationSpec.model_validate(spec).to_kube()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise UsageError(str(error)) from error
    metadata = {"name": object_name} if object_name else {"generateName": f"{name[:52].rstrip('-.')}-"}
    return {"apiVersion": API_VERSION, "kind": "Investigation", "metadata": metadata, "spec": checked}


def check_target(cluster: Cluster, namespace: str, target: TargetKind, name: str) -> None:
    """Raises ApiException (404) when the target does not exist. A caller who may not read
    it (403) is let through: the operator reads with its own identity."""
    api_class, method = target.reader
    read = getattr(getattr(kubernetes.client, api_class)(cluster.api_client), method)
    try:
        read(name) if not target.namespaced else read(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status != 403:
            raise


def create_investigation(cluster: Cluster, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "investigations", body)


def get_object(cluster: Cluster, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def list_objects(cluster: Cluster, namespace: str | None, plural: str) -> list[dict[str, Any]]:
    """aisre objects of one kind in a namespace, or in every namespace (None), by namespace and name."""
    if namespace is None:
        answer = cluster.custom.list_cluster_custom_object(GROUP, VERSION, plural)
    else:
        answer = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    return sorted(answer.get("items") or [], key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))


def state_of(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("state") or "Pending"


def wait_investigation(cluster: Cluster, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
    """Watch the Investigation until it is Completed or Failed; None when ``timeout`` seconds
    pass first."""
    deadline = time.monotonic() + timeout
    obj = get_object(cluster, namespace, "investigations", name)
    while state_of(obj) not in TERMINAL_STATES:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        watch = kubernetes.watch.Watch()
        try:
            for event in watch.stream(cluster.custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                      "investigations", field_selector=f"metadata.name={name}",
                                      resource_version=obj["metadata"]["resourceVersion"],
                                      timeout_seconds=max(1, int(left)), _request_timeout=left + 10):
                if event["type"] in ("ADDED", "MODIFIED"):
                    obj = event["object"]
                    if state_of(obj) in TERMINAL_STATES:
                        break
                elif event["type"] == "DELETED":
                    raise not_found(f'investigations.{GROUP} "{name}" was deleted while waiting')
        except kubernetes.client.ApiException as error:
            if error.status != 410:  # an expired resourceVersion: read again and watch on
                raise
        finally:
            watch.stop()
        if state_of(obj) not in TERMINAL_STATES:
            obj = get_object(cluster, namespace, "investigations", name)
    return obj


def failure_message(obj: dict[str, Any]) -> str:
    """Why an Investigation ended without a root cause, from its Completed condition."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    done = conditions.get("Completed") or {}
    return f"{done.get('reason', 'Failed')}: {done.get('message', '')}".rstrip(": ")


# ------------------------------------------------------------------ report and explain


def report(cluster: Cluster, namespace: str, plural: str, name: str) -> tuple[dict[str, Any], str]:
    """The object and its Markdown report. A resolved Incident keeps its post-incident
    report; an open one is rendered as it stands, with its Investigation when there is one."""
    obj = get_object(cluster, namespace, plural, name)
    if plural == "investigations":
        return obj, render_investigation(obj)
    status = obj.get("status") or {}
    if status.get("report"):
        return obj, status["report"]
    return obj, render_incident(obj, investigation_of(cluster, namespace, obj))


def investigation_of(cluster: Cluster, namespace: str, incident: dict[str, Any]) -> dict[str, Any] | None:
    """The Investigation an Incident started, or None (not yet, or deleted)."""
    ref = ((incident.get("status") or {}).get("investigationRef") or {}).get("name")
    if not ref:
        return None
    try:
        return get_object(cluster, namespace, "investigations", ref)
    except kubernetes.client.ApiException:
        return None


def investigation_for(cluster: Cluster, namespace: str, plural: str, name: str) -> dict[str, Any]:
    """The Investigation itself, or the one an Incident started (404 when it has none yet)."""
    obj = get_object(cluster, namespace, plural, name)
    if plural == "investigations":
        return obj
    found = investigation_of(cluster, namespace, obj)
    if found is None:
        raise not_found(f'incident "{name}" has no Investigation yet')
    return found


def not_found(message: str) -> kubernetes.client.ApiException:
    """A 404 shaped as the API server's (a Status body), for answers made on this side."""
    return kubernetes.client.ApiException(status=404, reason="Not Found",
                                          body=json.dumps({"kind": "Status", "reason": "NotFound", "message": message}))


def api_error_message(error: kubernetes.client.ApiException) -> str:
    """kubectl's wording of an API error: ``Error from server (NotFound): …``."""
    reason, message = error.reason or "", ""
    try:
        status = json.loads(error.body) if error.body else {}
        reason, message = status.get("reason") or reason, status.get("message") or ""
    except (TypeError, ValueError):
        message = str(error.body or "")
    return f"Error from server ({reason or error.status}): {message or error.reason}"
