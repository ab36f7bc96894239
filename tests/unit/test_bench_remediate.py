"""The pure parts of ``aisre bench --remediate auto``: what counts as restored, which
journal entry is the result's action, and the run's figures."""

from __future__ import annotations

from types import SimpleNamespace

from aisre.bench.remediate import PERMISSIVE_POLICY, _template, chosen, summarize
from aisre.api.remediation_policy import RemediationPolicySpec


def test_a_restart_or_the_controller_hash_do_not_count_as_a_change() -> None:
    base = {"spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "a"}]}}}}
    after = {"spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "x"},
                                                "annotations": {"kubectl.kubernetes.io/restartedAt": "t"}},
                                   "spec": {"containers": [{"image": "a"}]}}}}
    assert _template(base) == _template(after)
    after["spec"]["template"]["spec"]["containers"][0]["image"] = "b"
    assert _template(base) != _template(after)


def test_the_executed_entry_is_the_action() -> None:
    entries = [{"id": "a", "decision": "Denied"}, {"id": "b", "decision": "Execute"}]
    assert chosen(entries)["id"] == "b" and chosen(entries[:1])["id"] == "a" and chosen([]) is None


def test_figures_and_the_policy_never_governs_nodes() -> None:
    spec = RemediationPolicySpec.model_validate(PERMISSIVE_POLICY)
    assert "Node" not in spec.targets.kinds
    results = [SimpleNamespace(incident=True, remediation={"action_result": "Succeeded", "cleared": True}),
               SimpleNamespace(incident=True, remediation={"action_result": "Reverted", "cleared": False}),
               SimpleNamespace(incident=False, remediation={"action_result": None, "cleared": False})]
    assert summarize(results) == {"scenarios_with_fault": 2, "actions_executed": 2, "actions_succeeded": 1,
                                  "actions_reverted": 1, "cleared": 1, "actions_on_no_fault": 0}
