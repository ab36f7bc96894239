"""``aisre approve incident/NAME ACTION_ID``: record an approval in the Incident's spec.

The approver is whoever the API server says the caller is (a SelfSubjectReview), never a
name typed on the command line; the ValidatingAdmissionPolicy in the chart refuses an
approval that names someone else, claims groups its author is not in, or comes from a
user outside the policy's approvers. The approval names the revision the journal says the
action awaits: it counts for that decision only (docs/remediation.md).
The plain kubectl equivalent is in docs/remediation.md.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from aisre.api.meta import GROUP, VERSION
from aisre.kube.identity import whoami


class NothingToApprove(LookupError):
    """The Incident's journal has no action with that id awaiting approval."""


def approval_patch(action_id: str, user: str, comment: str = "", revision: str | None = None,
                   groups: list[str] | None = None) -> dict[str, Any]:
    """One approvals entry. The list is written whole (a JSON merge patch replaces lists),
    under the read resourceVersion, so a concurrent approval is never lost silently."""
    entry: dict[str, Any] = {"actionId": action_id, "approvedBy": user}
    if revision:
        entry["revision"] = revision
    if groups:
        entry["groups"] = groups[:32]
    if comment:
        entry["comment"] = comment
    return entry


def pending_revision(incident: dict[str, Any], action_id: str) -> str:
    """The revision the journal says the action awaits approval of (what an approval must name)."""
    for entry in (incident.get("status") or {}).get("remediations") or []:
        if entry.get("id") == action_id and entry.get("decision") == "AwaitingApproval" and entry.get("revision"):
            return str(entry["revision"])
    raise NothingToApprove(f"no action {action_id} awaits approval in incident {incident['metadata']['name']}")


def approve(api_client: kubernetes.client.ApiClient, namespace: str, incident: str, action_id: str,
            comment: str = "") -> str:
    """Append the approval as the client's user, for the revision the action awaits;
    returns the approver's name. Raises NothingToApprove, or ApiException when refused."""
    user, groups = whoami(api_client)
    api = kubernetes.client.CustomObjectsApi(api_client)
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident)
    revision = pending_revision(current, action_id)
    approvals = [a for a in (current.get("spec") or {}).get("approvals") or [] if a.get("actionId") != action_id]
    approvals.append(approval_patch(action_id, user, comment, revision, [g for g in groups if not g.startswith("system:")]))
    body = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"approvals": approvals}}
    # A dict body is sent as application/merge-patch+json.
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident, body)
    return user
