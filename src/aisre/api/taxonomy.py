"""The fixed vocabularies of aisre: root-cause categories, action types, modes,
severities. Their values are part of the API (CRD enums, scenario files, reports).
"""

from __future__ import annotations

from enum import Enum


class RootCauseCategory(str, Enum):
    """What is wrong, from the taxonomy in the scenario contract."""

    BAD_IMAGE = "BadImage"
    IMAGE_PULL_AUTH = "ImagePullAuth"
    IMAGE_ARCH_MISMATCH = "ImageArchMismatch"
    BAD_COMMAND = "BadCommand"
    MISSING_CONFIG = "MissingConfig"
    BAD_CONFIG_CHANGE = "BadConfigChange"
    MEMORY_LIMIT_TOO_LOW = "MemoryLimitTooLow"
    MEMORY_LEAK = "MemoryLeak"
    CPU_SATURATION = "CPUSaturation"
    LIVENESS_PROBE_FAILURE = "LivenessProbeFailure"
    READINESS_PROBE_FAILURE = "ReadinessProbeFailure"
    DEPENDENCY_FAILURE = "DependencyFailure"
    SERVICE_PORT_MISMATCH = "ServicePortMismatch"
    SERVICE_SELECTOR_MISMATCH = "ServiceSelectorMismatch"
    NETWORK_POLICY_BLOCK = "NetworkPolicyBlock"
    INSUFFICIENT_RESOURCES = "InsufficientResources"
    SCHEDULING_CONSTRAINT = "SchedulingConstraint"
    NODE_FAILURE = "NodeFailure"
    RESOURCE_QUOTA_EXCEEDED = "ResourceQuotaExceeded"
    STORAGE_FAILURE = "StorageFailure"
    SCALED_TO_ZERO = "ScaledToZero"
    RBAC_DENIED = "RBACDenied"
    INIT_CONTAINER_FAILURE = "InitContainerFailure"
    APPLICATION_ERROR = "ApplicationError"
    NO_FAULT = "NoFault"


class ActionType(str, Enum):
    """The typed action catalog: the only repairs aisre can recommend or run."""

    DELETE_POD = "deletePod"
    ROLLOUT_RESTART = "rolloutRestart"
    SCALE = "scale"
    ROLLBACK = "rollback"
    SET_RESOURCES = "setResources"
    CORDON_NODE = "cordonNode"
    UNCORDON_NODE = "uncordonNode"
    RESTORE_CONFIG = "restoreConfig"
    DRAIN_NODE = "drainNode"


class RemediationMode(str, Enum):
    """How far a policy lets an action go, in graduated steps."""

    OBSERVE = "observe"
    SUGGEST = "suggest"
    DRY_RUN = "dryRun"
    APPROVE = "approve"
    AUTO = "auto"


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AgentName(str, Enum):
    """Evidence agents an Investigation may ask for by name."""

    WORKLOADS = "workloads"
    EVENTS = "events"
    LOGS = "logs"
    CHANGES = "changes"
    TOPOLOGY = "topology"
    METRICS = "metrics"


class TargetKind(str, Enum):
    """Kinds a RemediationPolicy can govern."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    REPLICA_SET = "ReplicaSet"
    POD = "Pod"
    NODE = "Node"
    CONFIG_MAP = "ConfigMap"
