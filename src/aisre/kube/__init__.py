"""Shared Kubernetes access for agents and remediation: an async, read-mostly client
over the API server's REST paths (``reader``) and the table of resources it knows."""

from aisre.kube.reader import ClusterReader, KubeAccessError, bearer_token, configuration, connect
from aisre.kube.resources import RESOURCES, Resource

__all__ = [
    "RESOURCES",
    "ClusterReader",
    "KubeAccessError",
    "Resource",
    "bearer_token",
    "configuration",
    "connect",
]
