"""What is forecast: the series aisre already reads, each with the limit it fails at, the
category the failure will become and what to do before it does.

Every target is one PromQL query whose series are each one object's usage; the limit is a
constant (most queries are already a ratio of used to capacity, so it is 1.0) or, for a
container's memory, that container's own limit from its pod spec. Pure data and pure
functions: the operator's forecast loop and the forecast bench run the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisre.api.incident import forecast_fingerprint
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C


@dataclass(frozen=True)
class Target:
    signal: str  # what is forecast, in the Incident's spec.prediction.signal
    category: C  # what the failure will be
    promql: str
    object_kind: str  # the kind whose name the ``object_label`` carries
    object_label: str
    limit: float | None  # None: the container's memory limit (pod spec)
    action: ActionType | None
    advice: str
    cluster_scoped: bool = False


VOLUME = Target(
    "volumeFull", C.STORAGE_FAILURE,
    "max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_used_bytes / (kubelet_volume_stats_capacity_bytes > 0))",
    "PersistentVolumeClaim", "persistentvolumeclaim", 1.0, None,
    "Expand the claim (its StorageClass must allow volume expansion) or free space before it fills: rotate, compact "
    "or delete old data.")
MEMORY = Target(
    "memoryLimit", C.MEMORY_LIMIT_TOO_LOW,
    'max by (namespace, pod, container) (container_memory_working_set_bytes{container!="", container!="POD"})',
    "Pod", "pod", None, ActionType.SET_RESOURCES,
    "Raise the container's memory limit within the policy's bounds (setResources) before the kernel kills it, and "
    "find what grows.")
QUOTA = Target(
    "quota", C.RESOURCE_QUOTA_EXCEEDED,
    'max by (namespace, resourcequota, resource) (kube_resourcequota{type="used"}) / on (namespace, resourcequota, resource) '
    'max by (namespace, resourcequota, resource) (kube_resourcequota{type="hard"} > 0)',
    "ResourceQuota", "resourcequota", 1.0, None,
    "Raise the quota's hard limit, or remove what uses it, before it refuses new pods (a rollout needs room for its "
    "surge).")
NODE_REQUESTS = Target(
    "nodeRequests", C.INSUFFICIENT_RESOURCES,
    'sum by (node, resource) (kube_pod_container_resource_requests{resource=~"cpu|memory"}) / on (node, resource) '
    'max by (node, resource) (kube_node_status_allocatable{resource=~"cpu|memory"} > 0)',
    "Node", "node", 1.0, None,
    "Add capacity to the node pool (or let the autoscaler's maximum grow) before new pods stop fitting.",
    cluster_scoped=True)
ERROR_RATE = Target(
    "errorRate", C.APPLICATION_ERROR,
    'sum by (namespace, pod) (rate(http_requests_total{code=~"5.."}[5m])) / '
    "(sum by (namespace, pod) (rate(http_requests_total[5m])) > 0)",
    "Pod", "pod", 0.05, None,
    "The share of failing requests climbs toward 5 %: look at what changed and at the dependencies before it pages.")

TARGETS: tuple[Target, ...] = (VOLUME, MEMORY, QUOTA, NODE_REQUESTS, ERROR_RATE)
CERTIFICATE_SIGNAL = "certificateExpiry"
CERTIFICATE_CATEGORY = C.DEPENDENCY_FAILURE  # an expired certificate fails its clients' handshakes
CERTIFICATE_ADVICE = ("Renew the certificate (cert-manager: check the Certificate's issuer and its Ready condition; "
                      "by hand: issue a new one and update the Secret) before clients refuse it.")


@dataclass(frozen=True)
class Subject:
    """One object a forecast is about: the series' object, the object to fix, and the
    namespace the Incident lives in."""

    signal: str
    resource: ResourceRef  # the object to fix (a pod's memory: its workload)
    home: str
    series: str  # the PromQL selecting exactly this series (evidence)
    detail: str = ""  # e.g. the container or the quota's resource
    container: str | None = None  # a container's series (memory): the one a pre-emptive action changes

    @property
    def fingerprint(self) -> str:
        return forecast_fingerprint(self.signal, self.home, self.resource)

    @property
    def incident_name(self) -> str:
        base = f"predicted-{self.signal.lower()}-{self.resource.name}".lower()
        clean = "".join(c if c.isalnum() or c == "-" else "-" for c in base)[:200].strip("-")
        return f"{clean}-{self.fingerprint[:6]}"


def category_of(signal: str) -> C | None:
    """The category a forecast signal's failure becomes (None: not a signal aisre forecasts).
    Derived from the signal, never read from a spec: the signal is what the operator's mark binds."""
    if signal == CERTIFICATE_SIGNAL:
        return CERTIFICATE_CATEGORY
    return next((t.category for t in TARGETS if t.signal == signal), None)


def selector_of(target: Target, labels: dict[str, str]) -> str:
    """The PromQL of one series of the target (its labels pinned), for the evidence."""
    keys = [k for k in ("namespace", target.object_label, "container", "resource") if k in labels]
    pinned = ", ".join(f'{k}="{labels[k]}"' for k in keys)
    return f"{target.promql}  # {{{pinned}}}"[:1024]


def plain_subject_labels(target: Target, labels: dict[str, str], operator_namespace: str) -> Subject | None:
    """The object a series is about, for targets whose series name it directly (not memory:
    a pod's series is about its workload, which the pod spec says)."""
    name = labels.get(target.object_label)
    if not name or target.limit is None:
        return None
    if target.cluster_scoped:
        return Subject(target.signal, ResourceRef(kind=target.object_kind, name=name), operator_namespace,
                       selector_of(target, labels), labels.get("resource", ""))
    namespace = labels.get("namespace")
    if not namespace:
        return None
    return Subject(target.signal, ResourceRef(kind=target.object_kind, name=name, namespace=namespace), namespace,
                   selector_of(target, labels), labels.get("resource", ""))
