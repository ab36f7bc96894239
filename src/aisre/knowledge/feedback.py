"""``aisre feedback incident/NAME --correct | --wrong [--category C] [--resource KIND/NAME]``:
a person's verdict on the root cause, recorded in the Incident's spec under their identity.

The author is whoever the API server says the caller is; the chart's admission policy
refuses feedback that names someone else. The memory of past incidents uses the verdict
(a corrected case is remembered as what it really was) and the operator exports the share
of confirmed root causes. The plain kubectl equivalent is in docs/knowledge.md.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from aisre.api.incident import Feedback
from aisre.api.meta import GROUP, VERSION
from aisre.kube.identity import whoami


def feedback_entry(verdict: str, user: str, category: str | None = None, resource: dict[str, str] | None = None,
                   comment: str = "") -> dict[str, Any]:
    """spec.feedback, validated by the model (a correct verdict names nothing else)."""
    if verdict == "correct" and (category or resource):
        raise ValueError("--correct takes no --category or --resource")
    entry = Feedback.model_validate({"verdict": verdict, "by": user, "category": category, "resource": resource,
                                     "comment": comment})
    return entry.to_kube()


def give_feedback(api_client: kubernetes.client.ApiClient, namespace: str, incident: str, verdict: str,
                  category: str | None = None, resource: dict[str, str] | None = None, comment: str = "") -> str:
    """Records the verdict as the client's user; returns the user's name. Raises ApiException
    when refused (no such Incident, no right to patch it, admission)."""
    user, _ = whoami(api_client)
    body = {"spec": {"feedback": feedback_entry(verdict, user, category, resource, comment)}}
    kubernetes.client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents", incident, body)
    return user


def verdict_pairs(incidents: list[dict[str, Any]], investigations: dict[tuple[str, str], dict[str, Any]]
                  ) -> list[tuple[float, bool]]:
    """(the ranking's raw score of the root cause, whether people confirmed it) for every
    Incident with a verdict whose Investigation is still there: what a cluster's own
    calibration is fitted and judged on. ``investigations`` by (namespace, name)."""
    pairs = []
    for incident in incidents:
        verdict = ((incident.get("spec") or {}).get("feedback") or {}).get("verdict")
        ref = ((incident.get("status") or {}).get("investigationRef") or {}).get("name")
        investigation = investigations.get(((incident.get("metadata") or {}).get("namespace", ""), ref or ""))
        hypotheses = ((investigation or {}).get("status") or {}).get("hypotheses") or []
        if verdict and hypotheses and hypotheses[0].get("score") is not None:
            pairs.append((float(hypotheses[0]["score"]), verdict == "correct"))
    return pairs
