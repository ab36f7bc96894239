"""The policy chain: every step's refusal, the graduated modes, and (hypothesis) that
nothing executes that the policy does not allow while the limits hold."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisre.api.incident import Decision
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.remediation import policy as P
from aisre.remediation.policy import ApprovalGiven, DecisionInput, PastAction, Pending, TargetState, decide

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)  # a Tuesday


def action(type_: str = "scale", kind: str = "Deployment", **params) -> RecommendedAction:
    return RecommendedAction(id=f"{type_}-1", type=type_, target=ResourceRef(kind=kind, name="web",
                             namespace=None if kind == "Node" else "ns"), parameters=params or None)


def spec(**fields) -> RemediationPolicySpec:
    fields.setdefault("actions", [{"type": "scale", "mode": "auto"}])
    return RemediationPolicySpec.model_validate(fields)


PENDING = Pending("3-0123456789abcdef", NOW + dt.timedelta(hours=1))


def run(a: RecommendedAction | None = None, s: RemediationPolicySpec | None = None, *, target: TargetState | None = None,
        history=(), approvals=None, now=NOW, no_policy=False, pending=PENDING, name="ns/p", operator_namespace=None,
        floor=0):
    a = a or action(replicas=3)
    s = None if no_policy else (s or spec())
    return decide(DecisionInput(a, "ns", None if no_policy else name, s,
                                target or TargetState(labels={"app": "web"}, replicas=2, ready=2), now, history,
                                approvals or {}, operator_namespace=operator_namespace, min_healthy_floor=floor,
                                pending=pending))


def test_no_policy_means_observe_only() -> None:
    v = run(no_policy=True)
    assert (v.decision, v.reason) == (Decision.OBSERVED, P.NO_POLICY)


def test_auto_executes_within_everything() -> None:
    v = run()
    assert (v.decision, v.reason) == (Decision.EXECUTE, P.AUTO)


def test_an_incident_changes_only_what_it_is_about() -> None:
    def with_objects(*keys: str):
        a = action(replicas=3)
        return decide(DecisionInput(a, "ns", "ns/p", spec(), TargetState(labels={"app": "web"}, replicas=2, ready=2), NOW,
                                    incident_objects=frozenset(keys)))
    assert with_objects("Deployment/ns/web").decision == Decision.EXECUTE
    other = with_objects("Deployment/ns/api", "Pod/ns/api-1")
    assert (other.decision, other.reason) == (Decision.SUGGESTED, P.NOT_THIS_INCIDENT)
    assert with_objects("Deployment/other/web").reason == P.NOT_THIS_INCIDENT  # same name, another namespace
    pod = action("deletePod", "Pod")
    owned = TargetState(labels={}, replicas=2, ready=2, owners=("ReplicaSet/ns/web-5d4", "Deployment/ns/web"))
    for target, decision in ((owned, Decision.EXECUTE), (TargetState(replicas=2, ready=2), Decision.SUGGESTED)):
        v = decide(DecisionInput(pod, "ns", "ns/p", spec(actions=[{"type": "deletePod", "mode": "auto"}]), target, NOW,
                                 incident_objects=frozenset({"Deployment/ns/web"})))
        assert v.decision == decision, v


def test_a_listed_action_without_a_mode_takes_the_policys() -> None:
    assert run(s=spec(mode="suggest", actions=[{"type": "scale"}])).decision == Decision.SUGGESTED
    assert run(s=spec(mode="auto", actions=[{"type": "scale"}])).decision == Decision.EXECUTE
    assert run(s=spec(actions=[{"type": "scale"}])).decision == Decision.OBSERVED  # spec.mode defaults to observe
    assert run(s=spec(mode="auto", actions=[{"type": "rollback"}])).reason == P.ACTION_NOT_ALLOWED


@pytest.mark.parametrize("policy, kwargs, decision, reason", [
    (spec(targets={"namespaces": ["other"]}), {}, Decision.DENIED, P.OUT_OF_SCOPE),
    (spec(targets={"kinds": ["StatefulSet"]}), {}, Decision.DENIED, P.OUT_OF_SCOPE),
    (spec(targets={"selector": {"matchLabels": {"app": "db"}}}), {}, Decision.DENIED, P.OUT_OF_SCOPE),
    (spec(actions=[{"type": "rollback", "mode": "auto"}]), {}, Decision.DENIED, P.ACTION_NOT_ALLOWED),
    (spec(paused=True), {}, Decision.DENIED, P.POLICY_PAUSED),
    (spec(actions=[{"type": "scale", "mode": "observe"}]), {}, Decision.OBSERVED, P.MODE_OBSERVE),
    (spec(actions=[{"type": "scale", "mode": "suggest"}]), {}, Decision.SUGGESTED, P.MODE_SUGGEST),
    (spec(actions=[{"type": "scale", "mode": "dryRun"}]), {}, Decision.DRY_RUN, P.MODE_DRY_RUN),
    (spec(bounds={"scale": {"minReplicas": 1, "maxReplicas": 2}}), {}, Decision.DENIED, P.OUT_OF_BOUNDS),
    (spec(windows=[{"start": "22:00", "end": "06:00"}]), {}, Decision.DENIED, P.OUTSIDE_WINDOW),
    (spec(limits={"actionsPerHour": 1, "cooldown": "1s"}),
     {"history": [PastAction("ns/p", "Deployment/ns/other", NOW - dt.timedelta(minutes=5))]}, Decision.DENIED, P.RATE_LIMITED),
    (spec(limits={"maxConcurrent": 1}),
     {"history": [PastAction("ns/p", "Deployment/ns/other", NOW - dt.timedelta(hours=2), running=True)]},
     Decision.DENIED, P.TOO_MANY_CONCURRENT),
    (spec(limits={"cooldown": "30m"}),
     {"history": [PastAction("ns/q", "Deployment/ns/web", NOW - dt.timedelta(minutes=10))]}, Decision.DENIED, P.COOLDOWN),
    (spec(), {"target": TargetState(labels={"app": "web"}, annotations={"argocd.argoproj.io/tracking-id": "x"},
                                    replicas=2, ready=2)}, Decision.SUGGESTED, P.GITOPS_MANAGED),
    (spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["alice"]}), {},
     Decision.AWAITING_APPROVAL, P.AWAITING_APPROVAL),
    (spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["alice"]}),
     {"approvals": {"scale-1": ApprovalGiven("mallory", PENDING.revision)}}, Decision.AWAITING_APPROVAL, P.NOT_AN_APPROVER),
    (spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["alice"]}),
     {"approvals": {"scale-1": ApprovalGiven("alice", PENDING.revision)}}, Decision.EXECUTE, P.APPROVED),
    (spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"groups": ["sre"]}),
     {"approvals": {"scale-1": ApprovalGiven("bob", PENDING.revision, ("sre",))}}, Decision.EXECUTE, P.APPROVED),
])
def test_each_step(policy, kwargs, decision, reason) -> None:
    v = run(s=policy, **kwargs)
    assert (v.decision, v.reason) == (decision, reason), v.text


def test_blast_radius_refuses_taking_too_many_down() -> None:
    a = action("deletePod", kind="Pod")
    s = spec(actions=[{"type": "deletePod", "mode": "auto"}], limits={"minHealthyPercent": 100})
    v = run(a, s, target=TargetState(replicas=2, ready=2))
    assert (v.decision, v.reason) == (Decision.DENIED, P.BLAST_RADIUS)
    assert run(a, spec(actions=[{"type": "deletePod", "mode": "auto"}]), target=TargetState(replicas=2, ready=2)).decision == Decision.EXECUTE
    # unknown counts: refuse rather than guess
    assert run(a, s, target=TargetState()).reason == P.BLAST_RADIUS


def test_nodes_need_an_explicit_kind_and_gitops_can_be_allowed() -> None:
    a = action("cordonNode", kind="Node")
    central = {"name": "aisre-system/p", "operator_namespace": "aisre-system"}
    assert run(a, spec(actions=[{"type": "cordonNode", "mode": "auto"}]), target=TargetState(replicas=3, ready=3),
               **central).reason == P.OUT_OF_SCOPE
    s = spec(actions=[{"type": "cordonNode", "mode": "auto"}], targets={"kinds": ["Node"]})
    assert run(a, s, target=TargetState(replicas=3, ready=3), **central).decision == Decision.EXECUTE
    managed = TargetState(labels={"kustomize.toolkit.fluxcd.io/name": "x"}, replicas=2, ready=2)
    assert run(s=spec(allowGitOpsManaged=True), target=managed).decision == Decision.EXECUTE


def test_a_namespaces_policy_never_governs_nodes_or_other_namespaces() -> None:
    s = spec(actions=[{"type": "cordonNode", "mode": "auto"}], targets={"kinds": ["Node"]})
    node = run(action("cordonNode", kind="Node"), s, target=TargetState(replicas=3, ready=3), operator_namespace="aisre-system")
    assert (node.decision, node.reason) == (Decision.DENIED, P.OUT_OF_SCOPE), node.text
    # uncordonNode with any target, and a Node target of any action: the same
    assert run(action("uncordonNode", kind="Node"), spec(actions=[{"type": "uncordonNode", "mode": "auto"}],
               targets={"kinds": ["Node"]}), operator_namespace="aisre-system").reason == P.OUT_OF_SCOPE
    elsewhere = RecommendedAction(id="scale-1", type="scale", parameters={"replicas": 3},
                                  target=ResourceRef(kind="Deployment", name="web", namespace="victim"))
    v = run(elsewhere, spec(targets={"namespaces": ["victim"]}), operator_namespace="aisre-system")
    assert (v.decision, v.reason) == (Decision.DENIED, P.OUT_OF_SCOPE), v.text
    # the operator's own policy may govern another namespace
    assert run(elsewhere, spec(targets={"namespaces": ["victim"]}), name="aisre-system/p",
               operator_namespace="aisre-system").decision == Decision.EXECUTE


def test_the_blast_radius_floor_binds_a_namespaces_policy_only() -> None:
    a = action("deletePod", kind="Pod")
    off = spec(actions=[{"type": "deletePod", "mode": "auto"}], limits={"minHealthyPercent": 0})
    one_of_one = TargetState(replicas=1, ready=1)
    v = run(a, off, target=one_of_one, operator_namespace="aisre-system", floor=50)
    assert (v.decision, v.reason) == (Decision.DENIED, P.BLAST_RADIUS), v.text
    assert run(a, off, target=one_of_one, name="aisre-system/p", operator_namespace="aisre-system",
               floor=50).decision == Decision.EXECUTE
    # nothing healthy to lose: the action cannot widen the outage
    assert run(a, off, target=TargetState(replicas=2, ready=0), operator_namespace="aisre-system",
               floor=50).decision == Decision.EXECUTE


def test_a_rollback_costs_what_the_workloads_own_update_strategy_takes_out() -> None:
    from aisre.remediation.inputs import rollout_unavailable

    a = action("rollback")
    s = spec(actions=[{"type": "rollback", "mode": "auto"}], limits={"minHealthyPercent": 100})
    # One replica, the default rolling update: a new pod first (surge), none taken out.
    single = {"kind": "Deployment", "spec": {"replicas": 1}}
    assert rollout_unavailable(single) == 0
    assert run(a, s, target=TargetState(replicas=1, ready=1, rollout_unavailable=0)).decision == Decision.EXECUTE
    # Recreate takes every pod out; a StatefulSet one at a time; unknown: one at a time too.
    recreate = {"kind": "Deployment", "spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}
    assert rollout_unavailable(recreate) == 4
    assert run(a, s, target=TargetState(replicas=4, ready=4, rollout_unavailable=4)).reason == P.BLAST_RADIUS
    assert rollout_unavailable({"kind": "StatefulSet", "spec": {"replicas": 3}}) == 1
    assert run(a, s, target=TargetState(replicas=3, ready=3)).reason == P.BLAST_RADIUS
    assert rollout_unavailable({"kind": "Deployment", "spec": {"replicas": 8, "strategy": {"rollingUpdate": {
        "maxUnavailable": "50%", "maxSurge": 0}}}}) == 4
    assert rollout_unavailable({"kind": "Deployment", "spec": {"replicas": 1, "strategy": {"rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}}}}) == 1  # both zero: the controller takes one


def test_an_approval_counts_only_for_the_pending_revision_before_expiry() -> None:
    s = spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"users": ["alice"]})
    given = {"scale-1": ApprovalGiven("alice", PENDING.revision)}
    assert run(s=s, approvals=given).decision == Decision.EXECUTE
    # recorded before the decision existed: nothing pending to approve
    assert run(s=s, approvals=given, pending=None).reason == P.AWAITING_APPROVAL
    # for another revision (the target changed since, or a guess)
    stale = {"scale-1": ApprovalGiven("alice", "2-0123456789abcdef")}
    assert run(s=s, approvals=stale).reason == P.STALE_APPROVAL
    assert run(s=s, approvals={"scale-1": ApprovalGiven("alice")}).reason == P.STALE_APPROVAL
    # expired
    assert run(s=s, approvals=given, now=PENDING.expires_at).reason == P.AWAITING_APPROVAL
    # groups count only as recorded with the approval (the API server checked them)
    by_group = spec(actions=[{"type": "scale", "mode": "approve"}], approvers={"groups": ["sre"]})
    assert run(s=by_group, approvals={"scale-1": ApprovalGiven("mallory", PENDING.revision)}).reason == P.NOT_AN_APPROVER
    assert run(s=by_group, approvals={"scale-1": ApprovalGiven("mallory", PENDING.revision, ("dev",))}).reason == \
        P.NOT_AN_APPROVER


def test_set_resources_bounds() -> None:
    s = spec(actions=[{"type": "setResources", "mode": "auto"}], bounds={"resources": {"maxMemoryIncreasePercent": 50, "maxMemory": "100Mi"}})
    target = TargetState(replicas=2, ready=2, memory_limit_bytes=64 * 2**20)
    assert run(action("setResources", memoryIncreasePercent=60), s, target=target).reason == P.OUT_OF_BOUNDS
    assert run(action("setResources", memoryIncreasePercent=50), s, target=target).reason == P.AUTO
    big = TargetState(replicas=2, ready=2, memory_limit_bytes=90 * 2**20)
    assert run(action("setResources", memoryIncreasePercent=50), s, target=big).reason == P.OUT_OF_BOUNDS


def test_overnight_window_and_days() -> None:
    w = P.TimeWindowRule.model_validate({"start": "22:00", "end": "06:00", "days": ["Mon"]})
    assert P.in_window(w, dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))  # Tue 02:00 belongs to Mon night
    assert not P.in_window(w, dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC))  # Tue 23:00
    berlin = P.TimeWindowRule.model_validate({"start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"})
    assert P.in_window(berlin, NOW)  # 11:00 in Berlin


def test_most_restrictive_policy_governs() -> None:
    a = action(replicas=3)
    chosen = P.pick_policy([("ns/b-auto", spec()), ("ns/a-suggest", spec(actions=[{"type": "scale", "mode": "suggest"}]))],
                           a, "ns", TargetState(replicas=2, ready=2))
    assert chosen is not None and chosen[0] == "ns/a-suggest"


# ---------------------------------------------------------------- property-based

MODES = ["observe", "suggest", "dryRun", "approve", "auto"]
TYPES = ["deletePod", "rolloutRestart", "scale", "rollback", "setResources", "cordonNode", "uncordonNode"]
KIND_OF = {"deletePod": "Pod", "cordonNode": "Node", "uncordonNode": "Node"}

policies = st.builds(
    lambda actions, paused, lo, span, per_hour, conc, cool, healthy, windows, gitops, users, kinds: RemediationPolicySpec.model_validate({
        "actions": [{"type": t, "mode": m} for t, m in actions.items()],
        "paused": paused,
        "bounds": {"scale": {"minReplicas": lo, "maxReplicas": lo + span}, "resources": {"maxMemoryIncreasePercent": 40}},
        "limits": {"actionsPerHour": per_hour, "maxConcurrent": conc, "cooldown": f"{cool}m", "minHealthyPercent": healthy},
        "windows": windows, "allowGitOpsManaged": gitops, "approvers": {"users": users}, "targets": {"kinds": kinds},
    }),
    st.dictionaries(st.sampled_from(TYPES), st.sampled_from(MODES), max_size=7),
    st.booleans(), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(1, 3), st.integers(0, 90),
    st.sampled_from([0, 50, 100]),
    st.sampled_from([None, [{"start": "09:00", "end": "17:00"}], [{"start": "22:00", "end": "06:00"}]]),
    st.booleans(), st.sampled_from([["alice"], ["alice", "bob"]]),
    st.sampled_from([None, ["Deployment", "Pod", "Node"], ["Node"]]),
)


@st.composite
def recommendations(draw):
    t = draw(st.sampled_from(TYPES))
    params = {}
    if t == "scale":
        params["replicas"] = draw(st.integers(0, 12))
    if t == "setResources":
        params["memoryIncreasePercent"] = draw(st.integers(1, 100))
    return action(t, kind=KIND_OF.get(t, "Deployment"), **params)


targets = st.builds(
    lambda replicas, down, gitops: TargetState(labels={"argocd.argoproj.io/instance": "x"} if gitops else {},
                                               replicas=replicas, ready=max(0, replicas - down)),
    st.integers(0, 6), st.integers(0, 6), st.booleans())


@settings(max_examples=400, deadline=None)
@given(policies, st.booleans(), st.lists(st.tuples(recommendations(), targets, st.sampled_from([None, "alice", "mallory"]),
                                                   st.integers(0, 180)), min_size=1, max_size=12))
def test_nothing_executes_that_the_policy_does_not_allow(spec_, central, steps) -> None:
    history: list[PastAction] = []
    now = NOW
    floor = 50
    for rec, target, approver, minutes in steps:
        now = now + dt.timedelta(minutes=minutes)
        given_ = {rec.id: ApprovalGiven(approver, PENDING.revision)} if approver else {}
        v = decide(DecisionInput(rec, "ns", "ns/p", spec_, target, now, list(history), given_,
                                 operator_namespace="ns" if central else "aisre-system", min_healthy_floor=floor,
                                 pending=Pending(PENDING.revision, now + dt.timedelta(minutes=5))))
        if v.decision != Decision.EXECUTE:
            continue
        mode = P.mode_of(spec_, rec.type)
        assert mode in ("approve", "auto") and not spec_.paused
        assert central or rec.target.kind != "Node"  # a namespace's policy never governs nodes
        assert spec_.targets is None or not spec_.targets.kinds or rec.target.kind in spec_.targets.kinds
        if mode == "approve":
            assert approver in spec_.approvers.users and v.approved_by == approver
        if rec.type == "scale":
            assert spec_.bounds.scale.min_replicas <= rec.parameters["replicas"] <= spec_.bounds.scale.max_replicas
        if rec.type == "setResources":
            assert rec.parameters["memoryIncreasePercent"] <= 40
        assert not spec_.windows or any(P.in_window(w, now) for w in spec_.windows)
        assert spec_.allow_git_ops_managed or not P.gitops_owner(target.labels, target.annotations)
        healthy = P.healthy_after(DecisionInput(rec, "ns", "ns/p", spec_, target, now))
        minimum = spec_.limits.min_healthy_percent if central else max(spec_.limits.min_healthy_percent, floor)
        assert minimum == 0 or (healthy and (healthy[0] * 100 >= minimum * healthy[1] or healthy[0] >= (target.ready or 0)))
        key = P.target_key(rec.target.kind, rec.target.namespace, rec.target.name)
        cooldown = P.parse_duration(spec_.limits.cooldown)
        assert not any(h.target == key and now - h.started_at < cooldown for h in history)
        history.append(PastAction("ns/p", key, now))
        # the limit holds over every sliding hour
        last_hour = [h for h in history if now - dt.timedelta(hours=1) < h.started_at <= now]
        assert len(last_hour) <= spec_.limits.actions_per_hour


@settings(max_examples=200, deadline=None)
@given(recommendations(), targets)
def test_without_a_policy_nothing_executes(rec, target) -> None:
    v = decide(DecisionInput(rec, "ns", None, None, target, NOW))
    assert v.decision == Decision.OBSERVED
