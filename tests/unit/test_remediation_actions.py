"""The action catalog's pure parts: each plan (preconditions and the one request it
sends), reverts, the dry-run diff, the crash markers, and the journal readers."""

from __future__ import annotations

import datetime as dt

import pytest

from aisre.api.incident import JournalEntry
from aisre.api.investigation import RecommendedAction
from aisre.remediation.actions import CATALOG, rollback, set_resources
from aisre.remediation.actions.base import MARKER, PreconditionFailed, diff, has_marker
from aisre.remediation.executor import recorded_marker, waits_for_time
from aisre.remediation.inputs import past_actions


def deploy(revision: int = 2, image: str = "web:2", memory: str | None = "64Mi") -> dict:
    container = {"name": "web", "image": image, "resources": {"limits": {"memory": memory}} if memory else {}}
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns", "uid": "d1",
                                               "annotations": {rollback.REVISION: str(revision)}},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}}


def rs(revision: int, image: str) -> dict:
    return {"metadata": {"name": f"web-{revision}", "annotations": {rollback.REVISION: str(revision)},
                         "ownerReferences": [{"uid": "d1", "controller": True}]},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": f"h{revision}"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def act(type_: str, kind: str = "Deployment", **params) -> RecommendedAction:
    return RecommendedAction(id=f"{type_}-1", type=type_, target={"kind": kind, "name": "web", "namespace": "ns"},
                             parameters=params or None)


def ops(plan) -> dict:
    return {op["path"]: op["value"] for op in plan.body}


def test_rollback_takes_the_previous_revision_without_the_hash() -> None:
    plan = CATALOG["rollback"].plan(deploy(3, "web:3"), act("rollback"), "m", {"replicaSets": [rs(1, "web:1"), rs(2, "web:2"), rs(3, "web:3")]})
    template = ops(plan)["/spec/template"]
    assert template["spec"]["containers"][0]["image"] == "web:2"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert ops(plan)["/metadata/annotations"][MARKER] == "m" and plan.undo == {"revision": 3}
    back = rollback.revert(deploy(4, "web:2"), plan.undo, "m2", {"replicaSets": [rs(1, "web:1"), rs(3, "web:3"), rs(4, "web:2")]})
    assert ops(back)["/spec/template"]["spec"]["containers"][0]["image"] == "web:3"


def test_rollback_needs_an_older_different_revision() -> None:
    with pytest.raises(PreconditionFailed, match="nothing to roll back to"):
        CATALOG["rollback"].plan(deploy(1), act("rollback"), "m", {"replicaSets": [rs(1, "web:2")]})
    same = deploy(2, "web:1")
    same["spec"]["template"] = rollback._template(rs(1, "web:1"))
    with pytest.raises(PreconditionFailed, match="current template already"):
        CATALOG["rollback"].plan(same, act("rollback"), "m", {"replicaSets": [rs(1, "web:1")]})


def revision(kind: str, number: int, image: str) -> dict:
    """A ControllerRevision as the StatefulSet and DaemonSet controllers write it."""
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]},
                "$patch": "replace"}
    return {"metadata": {"name": f"web-{kind.lower()}-{number}", "ownerReferences": [{"uid": "d1", "controller": True}]},
            "revision": number, "data": {"spec": {"template": template}}}


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_rollback_of_a_statefulset_or_daemonset_reads_controller_revisions(kind: str) -> None:
    target = deploy(0, "web:3")
    target["kind"] = kind
    target["metadata"]["annotations"] = {}
    history = [revision(kind, 1, "web:1"), revision(kind, 2, "web:2"), revision(kind, 3, "web:3")]
    if kind == "StatefulSet":  # it names its current revision; a DaemonSet's is the newest
        target["status"] = {"updateRevision": "web-statefulset-3", "currentRevision": "web-statefulset-2"}
    plan = CATALOG["rollback"].plan(target, act("rollback", kind=kind), "m", {"controllerRevisions": history})
    template = ops(plan)["/spec/template"]
    assert template["spec"]["containers"][0]["image"] == "web:2" and "$patch" not in template
    assert plan.undo == {"revision": 3} and plan.path.endswith(f"/{kind.lower()}s/web")
    # The controller gives the reused template the next number; revert finds revision 3 by number.
    rolled = deploy(0, "web:2")
    rolled["kind"] = kind
    back = rollback.revert(rolled, plan.undo, "m2", {"controllerRevisions": [history[0], history[2], revision(kind, 4, "web:2")]})
    assert ops(back)["/spec/template"]["spec"]["containers"][0]["image"] == "web:3"
    with pytest.raises(PreconditionFailed, match="nothing to roll back to"):
        CATALOG["rollback"].plan(target, act("rollback", kind=kind), "m", {"controllerRevisions": history[:0]})


def test_set_resources_raises_the_limit_by_a_percentage() -> None:
    plan = CATALOG["setResources"].plan(deploy(), act("setResources", memoryIncreasePercent=50), "m")
    assert ops(plan)["/spec/template/spec/containers/0/resources"]["limits"]["memory"] == "96Mi"
    assert plan.undo == {"container": "web", "resources": {"limits": {"memory": "64Mi"}}}
    assert set_resources._raised("500m", 20, "cpu") == "600m" and set_resources._raised("1", 50, "cpu") == "1500m"
    with pytest.raises(PreconditionFailed, match="no memory limit or request"):
        CATALOG["setResources"].plan(deploy(memory=None), act("setResources", memoryIncreasePercent=50), "m")
    with pytest.raises(PreconditionFailed, match="no container db"):
        CATALOG["setResources"].plan(deploy(), act("setResources", container="db", memoryIncreasePercent=50), "m")


def test_scale_delete_and_cordon_preconditions() -> None:
    with pytest.raises(PreconditionFailed, match="already at 2"):
        CATALOG["scale"].plan(deploy(), act("scale", replicas=2), "m")
    assert CATALOG["scale"].plan(deploy(), act("scale", replicas=4), "m").undo == {"replicas": 2}
    bare = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    with pytest.raises(PreconditionFailed, match="no controller"):
        CATALOG["deletePod"].plan(bare, act("deletePod", kind="Pod"), "u1")
    owned = {"metadata": {**bare["metadata"], "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": True}]}}
    plan = CATALOG["deletePod"].plan(owned, act("deletePod", kind="Pod"), "u1")
    assert plan.method == "DELETE" and plan.body["preconditions"] == {"uid": "u1"}
    node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": True}}
    with pytest.raises(PreconditionFailed, match="already cordoned"):
        CATALOG["cordonNode"].plan(node, act("cordonNode", kind="Node"), "m")
    with pytest.raises(PreconditionFailed, match="applies to Node"):
        CATALOG["cordonNode"].plan(deploy(), act("cordonNode"), "m")


def test_applied_tells_whether_a_change_reached_the_server() -> None:
    marked = {"metadata": {"annotations": {MARKER: "m1"}}}
    assert has_marker(marked, "m1") and not has_marker(marked, "m2") and not has_marker(None, "m1")
    pod = {"metadata": {"uid": "u1"}}
    assert not CATALOG["deletePod"].applied(pod, "u1")
    assert CATALOG["deletePod"].applied(None, "u1") and CATALOG["deletePod"].applied({"metadata": {"uid": "u2"}}, "u1")


def test_dry_run_diff_shows_changed_spec_leaves() -> None:
    after = deploy()
    after["spec"]["replicas"] = 4
    after["status"] = {"replicas": 9}
    assert diff(deploy(), after) == ["/spec/replicas: 2 -> 4"]


def test_marker_is_rebuilt_from_the_entry_when_a_crd_pruned_it() -> None:
    incident = {"metadata": {"namespace": "ns", "name": "inc"}}
    when = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    entry = JournalEntry(id="scale-1", type="scale", target={"kind": "Deployment", "name": "web"}, decision="Execute",
                         decided_at=when, result="Running")
    assert recorded_marker(incident, entry) == "ns/inc/scale-1/2026-01-01T10:00:00Z"
    pod = entry.model_copy(update={"type": "deletePod", "detail": "pod web-x (uid 0a-1b) of ReplicaSet/web-1"})
    assert recorded_marker(incident, pod) == "0a-1b"


def test_journal_readers() -> None:
    entries = [
        {"id": "a", "type": "scale", "target": {"kind": "Deployment", "name": "web", "namespace": "ns"}, "decision": "Execute",
         "policy": "ns/p", "startedAt": "2026-01-01T10:00:00Z", "result": "Running"},
        {"id": "b", "type": "scale", "target": {"kind": "Deployment", "name": "web"}, "decision": "Denied",
         "reason": "Cooldown: an action ran", "result": "Skipped"},
    ]
    past = past_actions([{"status": {"remediations": entries}}])
    assert [(p.policy, p.target, p.running) for p in past] == [("ns/p", "Deployment/ns/web", True)]
    body = {"status": {"investigationRef": {"name": "i"}, "rootCause": {"category": "BadImage"}, "remediations": entries}}
    assert waits_for_time(body)
    assert not waits_for_time({"status": {**body["status"], "remediations": entries[:1]}})


def test_a_statefulsets_forced_rollback_deletes_only_its_unready_pods_on_another_revision() -> None:
    target = {"kind": "StatefulSet", "metadata": {"name": "db", "uid": "d1"}, "status": {"updateRevision": "db-old"}}

    def pod(name: str, revision: str, ready: bool, owner: str = "d1", deleting: bool = False) -> dict:
        meta = {"name": name, "labels": {"controller-revision-hash": revision}, "ownerReferences": [{"uid": owner}]}
        if deleting:
            meta["deletionTimestamp"] = "2026-11-24T12:00:00Z"
        return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    pods = [pod("db-0", "db-old", True), pod("db-1", "db-old", False),  # reverted revision: the controller's business
            pod("db-2", "db-bad", False), pod("db-3", "db-bad", True),  # stuck on the bad one / healthy, rolled normally
            pod("db-4", "db-bad", False, deleting=True), pod("other-0", "db-bad", False, owner="x")]
    assert rollback.stuck_pods(target, pods) == ["db-2"]
    assert rollback.stuck_pods({**target, "kind": "Deployment"}, pods) == []
    assert rollback.stuck_pods({**target, "status": {}}, pods) == []  # the controller has not said which revision


def test_a_rollback_keeps_the_ready_pods_already_on_the_revision_it_returns_to() -> None:
    def pod(name: str, owner: dict, ready: bool, revision: str | None = None) -> dict:
        labels = {"controller-revision-hash": revision} if revision else {}
        return {"metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    # a Deployment stuck mid-rollout: revision 1's ReplicaSet still runs two Ready pods
    history = {"replicaSets": [rs(1, "web:1"), rs(2, "web:2")]}
    old, new = {"kind": "ReplicaSet", "name": "web-1"}, {"kind": "ReplicaSet", "name": "web-2"}
    pods = [pod("a", old, True), pod("b", old, True), pod("c", old, False), pod("d", new, False), pod("e", new, True)]
    assert rollback.kept_ready(deploy(), history, pods) == 2
    assert rollback.kept_ready(deploy(), {"replicaSets": [rs(2, "web:2")]}, pods) == 0  # nothing to return to
    # a StatefulSet: its pods of the ControllerRevision the rollback returns to
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "uid": "d1"}, "status": {"updateRevision": "db-2"}}
    revisions = {"controllerRevisions": [
        {"metadata": {"name": f"db-{n}"}, "revision": n, "data": {"spec": {"template": {"spec": {"n": n}}}}} for n in (1, 2)]}
    mine = {"uid": "d1"}
    pods = [pod("db-0", mine, True, "db-1"), pod("db-1", mine, True, "db-1"), pod("db-2", mine, False, "db-2"),
            pod("x-0", {"uid": "x"}, True, "db-1")]
    assert rollback.kept_ready(sts, revisions, pods) == 2


def test_the_blast_radius_of_a_rollback_counts_only_the_pods_it_replaces() -> None:
    from aisre.remediation import policy as P
    from aisre.remediation.policy import TargetState, healthy_after

    def after(**state):
        return healthy_after(P.DecisionInput(act("rollback", "StatefulSet"), "ns", "ns/p", None,
                                             TargetState(**state), dt.datetime.now(dt.UTC)))

    # two of three Ready on the old revision, the third stuck on the bad one: nothing healthy goes
    assert after(replicas=3, ready=2, ready_kept=2, rollout_unavailable=1) == (2, 3)
    # every pod on the bad revision and Ready: one at a time, as before
    assert after(replicas=3, ready=3, ready_kept=0, rollout_unavailable=1) == (2, 3)
    assert after(replicas=4, ready=4, ready_kept=2, rollout_unavailable=1) == (3, 4)
