"""Pre-emptive actions on Predicted Incidents: a mode of their own per action, off by default."""

from __future__ import annotations

import datetime as dt

from aisre.api.incident import Decision
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.remediation.policy import DecisionInput, TargetState, decide

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
SCALE = RecommendedAction(id="scale-1", type="scale", target=ResourceRef(kind="Deployment", name="web", namespace="ns"),
                          parameters={"replicas": 3})


def decision(rule: dict[str, str], predicted: bool) -> Decision:
    policy = RemediationPolicySpec.model_validate({"actions": [{"type": "scale", **rule}]})
    return decide(DecisionInput(SCALE, "ns", "ns/p", policy, TargetState(labels={"app": "web"}, replicas=2, ready=2), NOW,
                                predicted=predicted)).decision


def test_a_reactive_auto_rule_only_observes_a_prediction() -> None:
    assert decision({"mode": "auto"}, predicted=False) == Decision.EXECUTE
    assert decision({"mode": "auto"}, predicted=True) == Decision.OBSERVED


def test_a_predicted_mode_governs_predictions_alone() -> None:
    assert decision({"mode": "observe", "predictedMode": "auto"}, predicted=True) == Decision.EXECUTE
    assert decision({"mode": "observe", "predictedMode": "auto"}, predicted=False) == Decision.OBSERVED
    assert decision({"mode": "auto", "predictedMode": "suggest"}, predicted=True) == Decision.SUGGESTED
