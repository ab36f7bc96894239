"""`kubelet: real` scenarios: pods pinned to the real node, and no simulation steps allowed."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from aisre.bench.realnode import TOLERATION, report_delay, pin
from aisre.bench.scenario import Scenario

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"template": {"spec": {"nodeSelector": {"zone": "a"},
                                   "containers": [{"name": "web", "image": "registry.local/faultapp:1"}]}}},
}


def test_a_workload_is_pinned_beside_its_own_node_selector_and_the_input_is_left_alone() -> None:
    original = copy.deepcopy(DEPLOYMENT)
    spec = pin(DEPLOYMENT)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"zone": "a", "aisre.dev/kubelet": "real"}
    assert spec["tolerations"] == [TOLERATION]
    assert DEPLOYMENT == original


@pytest.mark.parametrize("kind, path", [
    ("Pod", ("spec",)),
    ("StatefulSet", ("spec", "template", "spec")),
    ("Job", ("spec", "template", "spec")),
    ("CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
])
def test_every_kind_with_pods_is_pinned_where_its_pod_spec_is(kind: str, path: tuple[str, ...]) -> None:
    spec: Any = pin({"kind": kind, "metadata": {"name": "x"}})
    for key in path:
        spec = spec[key]
    assert spec["nodeSelector"] == {"aisre.dev/kubelet": "real"} and spec["tolerations"] == [TOLERATION]


def test_a_toleration_of_the_taint_is_not_added_twice_and_others_are_kept() -> None:
    own = [{"key": "dedicated", "operator": "Exists"}, {"key": "aisre.dev/real-node", "operator": "Exists"}]
    pinned = pin({"kind": "Pod", "spec": {"tolerations": own}})
    assert pinned["spec"]["tolerations"] == own


def test_objects_without_pods_are_unchanged() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
    assert pin(service) == service


SCENARIO = """
apiVersion: aisre.dev/scenario-v1
name: real-crash
kubelet: real
setup: |
  apiVersion: v1
  kind: Pod
  metadata: {name: web}
  spec: {containers: [{name: web, image: registry.local/busybox:1}]}
fault:
  - delete: {kind: Pod, name: web}
expect:
  incident: true
  rootCause: {category: BadCommand, resource: {kind: Deployment, name: web}}
"""


def test_a_real_scenario_parses_and_simulated_is_the_default() -> None:
    assert Scenario.model_validate(yaml.safe_load(SCENARIO)).kubelet == "real"
    data = yaml.safe_load(SCENARIO)
    del data["kubelet"]
    assert Scenario.model_validate(data).kubelet == "simulated"


@pytest.mark.parametrize("step", [
    {"runtime": {"selector": {"app": "web"}, "state": "CrashLoopBackOff"}},
    {"metrics": [{"series": "container_memory_working_set_bytes"}]},
])
def test_a_real_scenario_may_not_say_what_the_kubelet_reports(step: dict[str, Any]) -> None:
    data = yaml.safe_load(SCENARIO)
    data["fault"].append(step)
    with pytest.raises(ValidationError, match="kubelet: real scenarios cannot have"):
        Scenario.model_validate(data)


@pytest.mark.parametrize("node, played", [
    ({"kubelet": "stop"}, True),
    ({"conditions": [{"type": "Ready", "status": "False"}]}, True),  # a stopped kubelet shows that
    ({"conditions": [{"type": "Ready", "status": "Unknown"}], "kubelet": "stop"}, True),
    ({"conditions": [{"type": "MemoryPressure", "status": "True"}]}, False),  # no way to make a real node say it
    ({"conditions": [{"type": "Ready", "status": "True"}]}, False),
])
def test_a_real_scenarios_node_step_stops_the_kubelet_and_says_nothing_else(node: dict[str, Any], played: bool) -> None:
    data = yaml.safe_load(SCENARIO)
    data["fault"].append({"node": {"podSelector": {"app": "web"}, **node}})
    if played:
        assert Scenario.model_validate(data).fault[-1].node is not None
    else:
        with pytest.raises(ValidationError, match="stopping the real kubelet"):
            Scenario.model_validate(data)


def test_a_simulated_kubelet_stop_reports_what_the_node_controller_writes() -> None:
    from aisre.bench.scenario import NodeStep

    step = NodeStep.model_validate({"name": "kwok-node-0", "kubelet": "stop"})
    [ready] = step.reported_conditions()
    assert (ready.type, ready.status, ready.reason) == ("Ready", "Unknown", "NodeStatusUnknown")
    with pytest.raises(ValidationError, match="conditions, or kubelet: stop"):
        NodeStep.model_validate({"name": "kwok-node-0"})


def test_an_unknown_kubelet_is_refused() -> None:
    data = yaml.safe_load(SCENARIO)
    data["kubelet"] = "kwok"
    with pytest.raises(ValidationError):
        Scenario.model_validate(data)


SINCE = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _event(reason: str, at: str = "2026-01-01T12:00:07Z", count: int = 1, component: str = "kubelet") -> dict[str, Any]:
    return {"type": "Warning", "reason": reason, "count": count, "lastTimestamp": at, "source": {"component": component}}


def test_a_kubelet_warning_after_the_fault_is_its_report_with_the_delay() -> None:
    assert report_delay(_event("BackOff"), SINCE) == 7.0
    assert report_delay(_event("Failed", at="2026-01-01T12:00:00Z"), SINCE) == 0.0


def test_warnings_from_before_the_fault_or_from_others_than_the_kubelet_are_not() -> None:
    assert report_delay(_event("BackOff", at="2026-01-01T11:59:59Z"), SINCE) is None
    assert report_delay(_event("FailedScheduling", component="default-scheduler"), SINCE) is None


def test_a_probe_failure_counts_once_it_repeats_not_as_a_startup_blip() -> None:
    assert report_delay(_event("Unhealthy", count=1), SINCE) is None
    assert report_delay(_event("Unhealthy", count=3), SINCE) == 7.0


def test_a_simulated_workload_that_tolerates_every_taint_is_kept_off_the_real_node() -> None:
    from aisre.bench.realnode import keep_off

    shipper = {"kind": "DaemonSet", "metadata": {"name": "shipper"}, "spec": {"template": {"spec": {
        "tolerations": [{"operator": "Exists"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, {"matchFields": []}]}}}}}}}
    original = copy.deepcopy(shipper)
    terms = keep_off(shipper)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    off = {"key": "aisre.dev/kubelet", "operator": "NotIn", "values": ["real"]}
    assert [t["matchExpressions"][-1] for t in terms] == [off, off]  # every ORed term keeps off it
    assert terms[0]["matchExpressions"][0]["key"] == "zone"
    assert shipper == original
    # Pods that do not tolerate the real node's taint are left exactly as written.
    assert keep_off(DEPLOYMENT) is DEPLOYMENT


def test_a_baseline_gets_the_time_its_own_workloads_ask_for() -> None:
    from aisre.bench.scenario_run import SETUP_TIMEOUT_S, setup_timeout

    ordered = {"kind": "StatefulSet", "spec": {"replicas": 3, "minReadySeconds": 20}}
    parallel = {"kind": "StatefulSet", "spec": {"replicas": 3, "minReadySeconds": 20, "podManagementPolicy": "Parallel"}}
    assert setup_timeout([DEPLOYMENT]) == SETUP_TIMEOUT_S
    assert setup_timeout([DEPLOYMENT, ordered]) == SETUP_TIMEOUT_S + 60
    assert setup_timeout([parallel]) == SETUP_TIMEOUT_S + 20
