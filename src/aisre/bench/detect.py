"""Detect mode: after the fault, wait for the operator's own Incident about the scenario
namespace and for the Investigation it starts; for an ``incident: false`` scenario, watch a
fixed window in which any such Incident is a false positive.

An Incident concerns the namespace when it lives there, or when it lives in the
operator's namespace (node-level) and names an affected object in it. ``detect_s`` runs
from the end of the fault steps (the fault fully applied) to the Incident's existence,
0 when detection was faster than the scenario's own waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from aisre.api.meta import GROUP, VERSION
from aisre.bench.investigate import concluded, outcome_of, ranked
from aisre.bench.kube import Kube, api_error
from aisre.bench.score import Hypothesis

NO_FAULT_WINDOW_S = 20.0
POLL_S = 0.1


@dataclass
class DetectOutcome:
    incidents: list[str] = field(default_factory=list)
    first: tuple[str, str] | None = None  # namespace and name of the first Incident
    llm: dict[str, Any] | None = None  # what the LLM did and cost, when it was configured
    ranked: list[Hypothesis] = field(default_factory=list)
    concluded: str | None = None
    detect_s: float | None = None
    investigate_s: float | None = None
    error: str | None = None


def concerns(incident: dict[str, Any], namespace: str) -> bool:
    if incident["metadata"]["namespace"] == namespace:
        return True
    spec = incident.get("spec") or {}
    return any((ref or {}).get("namespace") == namespace for ref in [spec.get("resource"), *(spec.get("affected") or [])])


def _incidents(kube: Kube, namespaces: tuple[str, ...], namespace: str) -> list[dict[str, Any]]:
    found = []
    for ns in namespaces:
        try:
            items = kube.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "incidents")["items"]
        except ApiException as error:
            if error.status == 404:
                continue
            raise
        found.extend(i for i in items if concerns(i, namespace))
    return sorted(found, key=lambda i: i["metadata"]["creationTimestamp"])


def _get(kube: Kube, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def detect(kube: Kube, namespace: str, operator_namespace: str, fault_done: float, expect_incident: bool,
           timeout: float) -> DetectOutcome:
    homes = tuple(dict.fromkeys((namespace, operator_namespace)))
    out = DetectOutcome()
    window = timeout if expect_incident else NO_FAULT_WINDOW_S
    deadline = fault_done + window
    incident: dict[str, Any] | None = None
    try:
        while time.monotonic() < deadline:
            found = _incidents(kube, homes, namespace)
            if found:
                incident = found[0]
                out.detect_s = max(0.0, time.monotonic() - fault_done)
                break
            time.sleep(POLL_S)
        if incident is None:
            if expect_incident:
                out.error = f"timeout: no Incident within {window:g} s of the fault"
            return out
        out.incidents = [i["metadata"]["name"] for i in _incidents(kube, homes, namespace)]
        # (For a false positive too: what its Investigation says goes into the report.)
        deadline = time.monotonic() + timeout
        home, name = incident["metadata"]["namespace"], incident["metadata"]["name"]
        out.first = (home, name)
        seen_at: float | None = None
        root_at: float | None = None
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            # The Incident names its current Investigation (it investigates again when it grows).
            current = _get(kube, home, "incidents", name) or incident
            ref = ((current.get("status") or {}).get("investigationRef") or {}).get("name") or name
            investigation = _get(kube, home, "investigations", ref)
            if investigation is not None:
                seen_at = seen_at or time.monotonic()
                status = investigation.get("status") or {}
                if root_at is None and (status.get("rootCause") or status.get("state") == "Failed"):
                    root_at = time.monotonic()
                if concluded(status):
                    break
            time.sleep(POLL_S)
        else:
            out.ranked = ranked(status)
            out.error = f"timeout: the Incident's Investigation did not conclude within {timeout:g} s"
            return out
        # The Investigation's own wall time (it often concludes within one poll of the runner).
        took = status.get("durationSeconds")
        result = outcome_of(status, float(took) if isinstance(took, int | float) else (root_at or 0.0) - (seen_at or 0.0))
        out.ranked, out.concluded, out.investigate_s, out.error = result.ranked, result.concluded, result.investigate_s, result.error
        out.llm = result.llm
        # Correlation is judged once the root cause is known: every Incident about this namespace.
        out.incidents = [i["metadata"]["name"] for i in _incidents(kube, homes, namespace)]
    except ApiException as error:
        out.error = f"API: {api_error(error)}"
    return out
