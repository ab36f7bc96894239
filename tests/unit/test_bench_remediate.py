"""The pure parts of ``aisre bench --remediate auto``: what counts as restored, which
journal entry is the result's action, and the run's figures."""

from __future__ import annotations

from types import SimpleNamespace

from aisre.bench.remediate import PERMISSIVE_POLICY, _template, chosen, summarize
from aisre.api.remediation_policy import RemediationPolicySpec


def test_a_restart_a_config_checksum_or_the_controller_hash_do_not_count_as_a_change() -> None:
    base = {"spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "a"}]}}}}
    after = {"spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "x"},
                                                "annotations": {"kubectl.kubernetes.io/restartedAt": "t",
                                                                "checksum/config": "a90e"}},
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


# ---------------------------------------------------------------- issue 19: the new actions scored


def test_the_permissive_policies_cover_restore_config_and_drain_on_the_scenarios_own_nodes_only() -> None:
    from aisre.api.taxonomy import ActionType
    from aisre.bench.remediate import NODE_LABEL, node_policy

    spec = RemediationPolicySpec.model_validate(PERMISSIVE_POLICY)
    assert "ConfigMap" in spec.targets.kinds
    assert {a.type for a in spec.actions} >= {ActionType.RESTORE_CONFIG, ActionType.DRAIN_NODE}
    nodes = RemediationPolicySpec.model_validate(node_policy("bench-x-1"))
    assert nodes.targets.kinds == ["Node"] and nodes.targets.namespaces == ["bench-x-1"]
    assert nodes.targets.selector.match_labels == {NODE_LABEL: "bench-x-1"}
    assert {a.type for a in nodes.actions} == {ActionType.DRAIN_NODE, ActionType.CORDON_NODE}


def test_the_node_policy_governs_only_the_nodes_the_scenario_broke() -> None:
    import datetime as dt

    from aisre.api.investigation import RecommendedAction
    from aisre.api.meta import ResourceRef
    from aisre.bench.remediate import NODE_LABEL, node_policy
    from aisre.remediation.policy import DecisionInput, TargetState, decide

    spec = RemediationPolicySpec.model_validate(node_policy("bench-x-1"))
    drain = RecommendedAction(id="d", type="drainNode", target=ResourceRef(kind="Node", name="kwok-1"))

    def decided(labels):
        return decide(DecisionInput(drain, "bench-x-1", "aisre-bench/bench-nodes-bench-x-1", spec,
                                    TargetState(labels=labels, replicas=4, ready=4), dt.datetime.now(dt.UTC),
                                    operator_namespace="aisre-bench")).reason

    assert decided({NODE_LABEL: "bench-x-1"}) == "ModeAuto"
    assert decided({NODE_LABEL: "bench-x-2"}) == "OutOfScope"  # another scenario's node
    assert decided({}) == "OutOfScope"  # a node no fault touched


def test_restored_knows_a_configmaps_content_and_a_drained_node() -> None:
    from aisre.bench.remediate import _content, restored

    base = {("ConfigMap", "cfg"): _content({"data": {"a": "1"}}), ("Deployment", "web"): {"spec": {}}}
    changed = {**base, ("ConfigMap", "cfg"): _content({"data": {"a": "2"}})}
    assert not restored({("ConfigMap", "cfg")}, base, changed, "rolloutRestart", False)
    assert restored({("ConfigMap", "cfg")}, base, dict(base), "restoreConfig", False)
    created = {**base, ("ConfigMap", "new"): _content({"data": {}})}
    assert not restored({("ConfigMap", "new")}, base, created, "restoreConfig", False)
    # a fault through nodes only: over for the pods once drained off them, never by a cordon
    assert restored(set(), base, base, "drainNode", True)
    assert not restored(set(), base, base, "cordonNode", True)
    assert not restored(set(), base, base, "drainNode", False)


def test_configmaps_a_fault_changes_must_be_kept_before_it() -> None:
    from aisre.bench.remediate import SNAPSHOT_ENV, configmaps_to_keep

    step = SimpleNamespace(patch=SimpleNamespace(target=SimpleNamespace(kind="ConfigMap", name="cfg")), apply=None)
    other = SimpleNamespace(patch=SimpleNamespace(target=SimpleNamespace(kind="Deployment", name="web")), apply=None)
    run = SimpleNamespace(scenario=SimpleNamespace(fault=[step, other]))
    assert configmaps_to_keep(run, {("ConfigMap", "cfg"): {}, ("Deployment", "web"): {}}) == {"cfg"}
    assert configmaps_to_keep(run, {}) == set()  # created by the fault: nothing known-good to keep
    # the keeper's tick and settle time in bench runs: seconds, not the production minute
    assert float(SNAPSHOT_ENV["AISRE_SNAPSHOT_INTERVAL"]) <= 2 and float(SNAPSHOT_ENV["AISRE_SNAPSHOT_SETTLE"]) <= 5


def test_the_snapshot_keeper_understands_namespace_patterns() -> None:
    from aisre.operator.config_snapshots import in_scope, listed_namespaces

    patterns = ("aisre-bench-ab12-*",)
    assert listed_namespaces(patterns) == (None,) and listed_namespaces(("shop",)) == ("shop",)
    assert listed_namespaces(()) == (None,)
    assert in_scope("aisre-bench-ab12-cart", patterns, (), "aisre-bench-ab12-op")
    assert not in_scope("aisre-bench-zz99-cart", patterns, (), None)
    assert not in_scope("aisre-bench-ab12-op", patterns, (), "aisre-bench-ab12-op")  # never the operator's own
    assert in_scope("shop", ("shop",), (), None) and not in_scope("pay", ("shop",), (), None)
    assert not in_scope("kube-system", (), ("kube-*",), None)


def test_simulated_oom_kills_end_once_every_killed_containers_limit_was_raised() -> None:
    from aisre.bench.remediate import limits_outgrown

    def at(**limits: str) -> dict:
        return {("Deployment", "web"): {"spec": {"containers": [
            {"name": n, "resources": {"limits": {"memory": v}}} for n, v in limits.items()]}}}

    fault = at(app="512Mi", proxy="32Mi")
    assert limits_outgrown({"proxy"}, fault, at(app="512Mi", proxy="64Mi"))
    assert not limits_outgrown({"proxy"}, fault, at(app="1Gi", proxy="32Mi"))  # the other container's limit
    assert not limits_outgrown({"proxy", "app"}, fault, at(app="512Mi", proxy="64Mi"))
    assert not limits_outgrown(None, fault, at(app="1Gi", proxy="1Gi"))  # not an OOM-only fault
    assert limits_outgrown({"*"}, fault, at(app="1Gi", proxy="32Mi"))  # the step named no container: any raised


def test_the_changed_object_the_scenario_names_as_its_cause_decides_restored() -> None:
    from aisre.bench.remediate import _content, restored

    base = {("Deployment", "worker"): {"image": "1"}, ("Deployment", "web"): {"image": "1"},
            ("ConfigMap", "env"): _content({"data": {"THREADS": "4"}})}
    release = {**base, ("Deployment", "worker"): {"image": "2"}, ("Deployment", "web"): {"image": "2"}}
    touched = {("Deployment", "worker"), ("Deployment", "web")}
    worker_back = {**release, ("Deployment", "worker"): {"image": "1"}}
    # the release upgraded web too; rolling back the worker the scenario blames ends the fault
    assert restored(touched, base, worker_back, "rollback", False, ("Deployment", "worker"))
    assert not restored(touched, base, release, "rollback", False, ("Deployment", "worker"))
    # a cause that is no changed object (a Service, a Node): every changed object counts
    assert not restored(touched, base, worker_back, "rollback", False, ("Service", "worker"))
    # a restored config whose Reloader hash in the Deployment still differs
    reloaded = {**base, ("Deployment", "web"): {"image": "1", "env": "hash"}}
    assert restored({("ConfigMap", "env"), ("Deployment", "web")}, base, reloaded, "restoreConfig", False,
                    ("ConfigMap", "env"))


def test_an_oom_only_fault_includes_pods_running_again_after_the_kill() -> None:
    from aisre.bench.remediate import oom_containers

    def run(*steps: dict) -> SimpleNamespace:
        defaults = {"state": "Running", "reason": None, "restarts": None, "container": None}
        return SimpleNamespace(scenario=SimpleNamespace(runtime_steps=lambda: [
            (i, SimpleNamespace(**{**defaults, **s})) for i, s in enumerate(steps)]))

    assert oom_containers(run({"reason": "OOMKilled", "restarts": 3, "container": "app"}, {})) == {"app"}
    assert oom_containers(run({"state": "OOMKilled"})) == {"*"}
    assert oom_containers(run({"reason": "OOMKilled"}, {"restarts": 4})) is None  # liveness restarts too
    assert oom_containers(run({"state": "CrashLoopBackOff"})) is None
    assert oom_containers(run({})) is None  # logs only: no OOM at all


def test_a_node_faults_pods_are_healthy_off_the_broken_nodes() -> None:
    from aisre.bench.remediate import SimulatedFault

    fault = SimpleNamespace(node_fault=True, broken_nodes={"kwok-node-1"}, touched=set())
    assert SimulatedFault.healthy(fault, {"spec": {"nodeName": "kwok-node-0"}})
    assert not SimulatedFault.healthy(fault, {"spec": {"nodeName": "kwok-node-1"}})
    restored = SimpleNamespace(node_fault=False, restorable=True, restored=lambda action: True)
    assert SimulatedFault.healthy(restored, {"spec": {"nodeName": "kwok-node-1"}})
    pods_only = SimpleNamespace(node_fault=False, restorable=False, restored=lambda action: True)
    assert not SimulatedFault.healthy(pods_only, {"spec": {}})  # nothing an action could restore


def test_a_template_without_a_limit_was_killed_at_the_limit_its_pods_were_admitted_with() -> None:
    from aisre.bench.remediate import admitted_limits, limits_outgrown

    pods = [{"spec": {"containers": [{"name": "typeahead", "resources": {"limits": {"memory": "512Mi"}}}]}}]
    admitted = admitted_limits(pods)
    assert admitted == {"typeahead": 512 * 2**20}
    at_fault = {("Deployment", "search"): {"spec": {"containers": [{"name": "typeahead"}]}}}

    def now(limit: str) -> dict:
        return {("Deployment", "search"): {"spec": {"containers": [
            {"name": "typeahead", "resources": {"limits": {"memory": limit}}}]}}}

    assert limits_outgrown({"typeahead"}, at_fault, now("768Mi"), admitted)
    assert not limits_outgrown({"typeahead"}, at_fault, now("384Mi"), admitted)  # below the default it had
