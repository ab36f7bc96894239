"""Accepting a spec: the first thing the operator does with any aisre object.

Pure functions: given the object's body and the time, return the status to write
(``observedGeneration``, the ``Accepted`` condition, and the derived short ``state``).
The API server has already validated the spec against the CRD schema and CEL rules;
this re-checks it against the same pydantic models, which catches objects stored under
an older schema, and resolves what the printer columns show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from aisre.api.conditions import ACCEPTED, REASON_INVALID_SPEC, REASON_SPEC_ACCEPTED, is_true, set_condition
from aisre.api.incident import Incident, IncidentState
from aisre.api.investigation import Investigation, InvestigationState, InvestigationTarget
from aisre.api.meta import ConditionStatus, KubeModel
from aisre.api.notification_route import NotificationRoute
from aisre.api.remediation_policy import RemediationPolicy, RemediationPolicySpec


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        path = ".".join(str(p) for p in item["loc"])
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)


def describe_target(target: InvestigationTarget) -> str:
    if target.name:
        return f"{target.kind}/{target.name}"
    selector = target.selector
    labels = (selector.match_labels or {}) if selector else {}
    exprs = (selector.match_expressions or []) if selector else []
    if not labels and not exprs:
        return "namespace"
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if exprs:
        text = ",".join(filter(None, [text, f"+{len(exprs)} expressions"]))
    return f"selector {text}"


def describe_actions(spec: RemediationPolicySpec) -> str:
    if not spec.actions:
        return "none"
    return ",".join(f"{rule.type}={rule.mode or spec.mode}" for rule in spec.actions)


def _investigation_state(conditions: list[dict[str, Any]], current: str | None) -> str:
    if not is_true(conditions, ACCEPTED):
        return InvestigationState.FAILED.value
    return current or InvestigationState.PENDING.value


def _incident_state(conditions: list[dict[str, Any]], current: str | None, predicted: bool = False) -> str:
    # A forecast (spec.prediction) starts as Predicted: nothing has failed yet.
    return current or (IncidentState.PREDICTED if predicted else IncidentState.OPEN).value


def accept(model: type[KubeModel], body: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The status fields to merge into the object after (re)reading its spec."""
    generation = body.get("metadata", {}).get("generation")
    status = body.get("status") or {}
    try:
        parsed = model.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as error:
        conditions = set_condition(
            status.get("conditions"),
            type_=ACCEPTED,
            status=ConditionStatus.FALSE,
            reason=REASON_INVALID_SPEC,
            message=_validation_message(error),
            observed_generation=generation,
            now=now,
        )
        patch: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
        if model is Investigation:
            patch["state"] = InvestigationState.FAILED.value
        return patch

    conditions = set_condition(
        status.get("conditions"),
        type_=ACCEPTED,
        status=ConditionStatus.TRUE,
        reason=REASON_SPEC_ACCEPTED,
        message=f"{model.KIND} spec is valid",  # type: ignore[attr-defined]
        observed_generation=generation,
        now=now,
    )
    patch = {"observedGeneration": generation, "conditions": conditions}
    if isinstance(parsed, Investigation):
        patch["target"] = describe_target(parsed.spec.target)
        patch["state"] = _investigation_state(conditions, status.get("state"))
    elif isinstance(parsed, Incident):
        patch["state"] = _incident_state(conditions, status.get("state"), parsed.spec.prediction is not None)
    elif isinstance(parsed, RemediationPolicy):
        patch["actionsSummary"] = describe_actions(parsed.spec)
    elif isinstance(parsed, NotificationRoute):
        patch["sinks"] = ",".join(sink.type for sink in parsed.spec.sinks)
    return patch
