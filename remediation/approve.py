"""``aisre approve incident/NAME ACTION_ID``: record an approval in the Incident's spec.

The approver is whoever the API server says the caller is (a SelfSubjectReview), never a
name typed on the command line; the ValidatingAdmissionPolicy in the chart refuses an
approval that names someone else or comes from a user outside the policy's approvers.
The plain kubectl equivalent is in docs/remediation.md.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from aisre.api.meta import GROUP, VERSION


def whoami(api_client: kubernetes.client.ApiClient) -> str:
    """The caller's user name as the API server authenticates it."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = kubernetes.client.AuthenticationV1Api(api_client).create_self_subject_review(review)
    return str(answer.status.user_info.username)


def approval_patch(action_id: str, user: str, comment: str = "") -> dict[str, Any]:
    """One approvals entry. The list is written whole (a JSON merge patch replaces lists),
    under the read resourceVersion, so a concurrent approval is never lost silently."""
    entry: dict[str, Any] = {"actionId": action_id, "approvedBy": user}
    if comment:
        entry["comment"] = comment
    return entry


def approve(api_client: kubernetes.client.ApiClient, namespace: str, incident: str, action_id: str,
            comment: str = "") -> str:
    """Append the approval as the client's user; returns the approver's name. Raises
    ApiException when refused."""
    user = whoami(api_client)
    api = kubernetes.client.CustomObjectsApi(api_client)
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident)
    approvals = [a for a in (current.get("spec") or {}).get("approvals") or [] if a.get("actionId") != action_id]
    approvals.append(approval_patch(action_id, user, comment))
    body = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"approvals": approvals}}
    # A dict body is sent as application/merge-patch+json.
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident, body)
    return user
