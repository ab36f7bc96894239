"""Investigate mode: the runner asks the operator why the scenario namespace is failing
(an Investigation with ``spec.target.selector: {}``) and watches it until it concludes.

The contract consumed here (the operator's investigation pipeline): ``status.state`` goes
Pending -> Running -> Completed (or Failed), with a ``Completed`` condition True once it has
concluded; ``status.rootCause`` {category, resource, summary, confidence} and
``status.hypotheses`` (ranked, best first)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from aisre.api.meta import GROUP, VERSION
from aisre.bench.kube import Kube, Stream, api_error
from aisre.bench.score import Hypothesis

INVESTIGATION = "bench"
PLURAL = "investigations"
DONE_STATES = ("Completed", "Failed")


@dataclass
class Outcome:
    ranked: list[Hypothesis] = field(default_factory=list)
    concluded: str | None = None  # rootCause.category of a concluded investigation
    investigate_s: float | None = None  # created -> root cause in status
    error: str | None = None
    llm: dict[str, Any] | None = None  # what the LLM did and cost, when it was configured
    status: Mapping[str, Any] | None = None  # the concluded Investigation's status (bench --statuses)


def llm_of(status: Mapping[str, Any]) -> dict[str, Any]:
    """The LLM's part of a concluded status: the LLMUsed condition, calls, tokens, cost."""
    used = next((c for c in status.get("conditions") or [] if c.get("type") == "LLMUsed"), {})
    cost = status.get("cost") or {}
    report = status.get("llm") or {}
    return {"used": used.get("status") == "True", "reason": used.get("reason"), "calls": report.get("calls", 0),
            "plannerSteps": report.get("plannerSteps", 0), "accepted": report.get("accepted", 0),
            "discarded": len(report.get("discarded") or []), "inputTokens": cost.get("llmInputTokens", 0),
            "outputTokens": cost.get("llmOutputTokens", 0), "usd": cost.get("usd", 0.0)}


def _resource(ref: Mapping[str, Any] | None) -> str | None:
    if not ref or not ref.get("kind") or not ref.get("name"):
        return None
    return f"{ref['kind']}/{ref['name']}"


def ranked(status: Mapping[str, Any]) -> list[Hypothesis]:
    """The ranked hypotheses; the root cause alone when there are none."""
    items = status.get("hypotheses") or ([status["rootCause"]] if status.get("rootCause") else [])
    return [
        Hypothesis(str(h.get("category")), _resource(h.get("resource")), _confidence(h.get("confidence")),
                   _confidence(h.get("score")))
        for h in items
        if h.get("category")
    ]


def _confidence(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def concluded(status: Mapping[str, Any]) -> bool:
    if status.get("state") in DONE_STATES:
        return True
    return any(c.get("type") == "Completed" and c.get("status") == "True" for c in status.get("conditions") or [])


def _failure(status: Mapping[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" or cond.get("type") == "Failed":
            if cond.get("message") or cond.get("reason"):
                return f"{cond.get('type')}: {cond.get('reason', '')} {cond.get('message', '')}".strip()
    return "no reason given"


def outcome_of(status: Mapping[str, Any], root_cause_s: float | None) -> Outcome:
    """What a concluded Investigation's status says (pure)."""
    out = Outcome(ranked=ranked(status), investigate_s=root_cause_s, llm=llm_of(status), status=status)
    if status.get("state") == "Failed":
        out.error = f"investigation failed: {_failure(status)}"
        return out
    root = status.get("rootCause") or {}
    out.concluded = root.get("category") or (out.ranked[0].category if out.ranked else None)
    if out.concluded is None:
        out.error = "investigation concluded without a root cause"
    return out


def investigate(kube: Kube, namespace: str, timeout: float) -> Outcome:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Investigation",
        "metadata": {"name": INVESTIGATION, "namespace": namespace},
        "spec": {"target": {"selector": {}}},
    }
    try:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except ApiException as error:
        return Outcome(error=f"create Investigation: {api_error(error)}")
    created = time.monotonic()
    root_cause_s: float | None = None
    status: Mapping[str, Any] = {}
    stream = Stream(
        kube.custom.list_namespaced_custom_object, group=GROUP, version=VERSION, namespace=namespace,
        plural=PLURAL, field_selector=f"metadata.name={INVESTIGATION}",
    )
    for kind, obj in stream.events(timeout=timeout):
        if kind == "DELETED":
            stream.stop()
            return Outcome(error="the Investigation was deleted before it concluded")
        status = obj.get("status") or {}
        if root_cause_s is None and (status.get("rootCause") or status.get("state") == "Failed"):
            root_cause_s = time.monotonic() - created
        if concluded(status):
            stream.stop()
            return outcome_of(status, root_cause_s if root_cause_s is not None else time.monotonic() - created)
    state = status.get("state") or "no status"
    return Outcome(
        ranked=ranked(status),
        error=f"timeout: the Investigation did not conclude within {timeout:g} s (state {state})",
    )
