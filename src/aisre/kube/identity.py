"""Who the caller is, as the API server authenticates them (never a name typed on a command
line): what approvals and feedback record, and what admission checks them against."""

from __future__ import annotations

import kubernetes


def whoami(api_client: kubernetes.client.ApiClient) -> tuple[str, list[str]]:
    """The caller's user name and groups as the API server authenticates them."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = kubernetes.client.AuthenticationV1Api(api_client).create_self_subject_review(review)
    info = answer.status.user_info
    return str(info.username), [str(g) for g in info.groups or []]
