"""The recommendation per root cause (an action only where it can fix the category, a
note otherwise), the store of known-good ConfigMap contents, and the restoreConfig action
(plan, dry-run diff, revert), without a cluster."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from aisre.api.evidence import Finding
from aisre.api.investigation import InvestigationStatus, RecommendedAction
from aisre.api.meta import ResourceRef
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.api.taxonomy import ActionType
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.operator.recommend import ANSWERS, advise
from aisre.operator.runbook_step import point_note_at_runbook
from aisre.remediation.actions import CATALOG, restore_config
from aisre.remediation.actions.base import PreconditionFailed
from aisre.remediation.policy import DecisionInput, TargetState, check_gitops
from aisre.remediation.snapshots import Limits, Snapshot, SnapshotStore, captures, content_digest, signature, snapshot_of
from aisre.report import render_incident, render_investigation

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
KEY = b"k" * 32


def t(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def changed(kind: str, name: str, used_by: list[str]) -> Finding:
    return Finding(id="cfg1", agent="changes", kind="ConfigChanged", summary="",
                   data={"config_kind": kind, "name": name, "changed": "2026-12-07T11:58:00+00:00", "used_by": used_by})


# ---------------------------------------------------------------- the mapping


def test_every_category_has_an_answer() -> None:
    assert set(ANSWERS) == set(C)
    for category, answer in ANSWERS.items():
        assert answer.manual, category
        assert all(a in CATALOG for a in answer.actions)


@pytest.mark.parametrize("category", list(C))
def test_each_category_gets_an_action_or_a_note_never_nothing(category: C) -> None:
    advice = advise(category, "Deployment/web", "shop", [], [])
    if category == C.NO_FAULT:
        assert advice.actions == [] and advice.note is None
    else:
        assert advice.actions or (advice.note and "A person must" in advice.note)


def test_a_config_change_gets_restore_config_never_a_restart_alone() -> None:
    advice = advise(C.BAD_CONFIG_CHANGE, "ConfigMap/app", "shop", [changed("ConfigMap", "app", ["Deployment/web"])], ["cfg1"])
    assert [a.type for a in advice.actions] == [ActionType.RESTORE_CONFIG.value]
    assert advice.actions[0].target.kind == "ConfigMap" and "restart" in advice.actions[0].reason
    assert advice.note is None
    for category in (C.BAD_CONFIG_CHANGE, C.MISSING_CONFIG):
        assert ActionType.ROLLOUT_RESTART not in ANSWERS[category].actions
        for resource in ("ConfigMap/app", "Secret/app", "Deployment/web"):
            found = advise(category, resource, "shop", [changed(resource.split("/")[0], "app", ["Deployment/web"])], [])
            assert all(a.type != ActionType.ROLLOUT_RESTART.value for a in found.actions)


def test_a_secret_change_is_a_suggestion_naming_what_changed_and_when() -> None:
    advice = advise(C.BAD_CONFIG_CHANGE, "Secret/db", "shop", [changed("Secret", "db", ["Deployment/api"])], [])
    assert advice.actions == []
    assert "Secret/db changed at 2026-12-07T11:58:00" in advice.note and "never keeps Secret values" in advice.note
    assert "Deployment/api" in advice.note


def test_a_rollback_only_when_the_rollout_changed_where_the_cause_lives() -> None:
    replicas_only = Finding(id="c1", agent="changes", kind="TemplateChange", summary="",
                            data={"owner": "Deployment/web", "fields": ["image"]})
    oom = advise(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "shop", [replicas_only], [])
    assert [a.type for a in oom.actions] == [ActionType.SET_RESOURCES.value]
    probe = advise(C.READINESS_PROBE_FAILURE, "Deployment/web", "shop", [Finding(
        id="c2", agent="changes", kind="TemplateChange", summary="", data={"owner": "Deployment/web", "fields": ["resources"]})], [])
    assert probe.actions == [] and "would not undo it" in probe.note
    bad_image = advise(C.BAD_IMAGE, "Deployment/web", "shop", [replicas_only], [])
    assert [a.type for a in bad_image.actions] == [ActionType.ROLLBACK.value]


def test_nothing_fits_says_so_and_points_at_the_runbook() -> None:
    advice = advise(C.SERVICE_SELECTOR_MISMATCH, "Service/web", "shop", [], [])
    assert advice.actions == [] and "No action in the catalog can fix ServiceSelectorMismatch" in advice.note
    status: dict[str, Any] = {"remediationNote": {"category": "ServiceSelectorMismatch", "message": advice.note},
                              "runbooks": [{"namespace": "aisre-system", "name": "selectors", "title": "Selectors"}]}
    point_note_at_runbook(status)
    assert status["remediationNote"]["runbook"] == "aisre-system/selectors"
    assert "Follow the runbook aisre-system/selectors" in status["remediationNote"]["message"]
    InvestigationStatus.model_validate(status)  # the API accepts it
    lonely = {"remediationNote": {"category": "ServiceSelectorMismatch", "message": "x" * 1024}}
    point_note_at_runbook(lonely)
    assert len(lonely["remediationNote"]["message"]) <= 1024 and "No Runbook matches" in lonely["remediationNote"]["message"]
    report = render_investigation({"metadata": {"name": "i", "namespace": "shop"}, "spec": {"target": {}}, "status": status})
    assert "No automatic fix." in report and "aisre-system/selectors" in report
    incident = render_incident({"metadata": {"name": "inc", "namespace": "shop"}, "spec": {}, "status": {}},
                               {"metadata": {"name": "i"}, "status": status})
    assert "## What a person must do" in incident


# ---------------------------------------------------------------- the snapshot store


def configmap(data: dict[str, str], changed_ago: float = 600, uid: str = "u1", name: str = "app") -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "7",
                                              "creationTimestamp": t(3600), "managedFields": [{"time": t(changed_ago)}]},
            "data": data}


def workload(name: str = "web", cm: str = "app", done: bool = True) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "shop", "generation": 2},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": cm}}]}]}}},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1 if done else 0}}


def pod(app: str = "web", started_ago: float = 300, ready_ago: float | None = 280) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready_ago is not None else "False",
                   "lastTransitionTime": t(ready_ago or 0)}]
    return {"metadata": {"name": f"{app}-1", "namespace": "shop", "labels": {"app": app}},
            "status": {"startTime": t(started_ago), "conditions": conditions}}


def test_only_content_the_workloads_ran_healthy_with_is_captured() -> None:
    good = captures([configmap({"a": "1"})], [workload()], [pod()], NOW, settle=30)
    assert [(s.name, s.data, s.users) for s in good] == [("app", {"a": "1"}, ("Deployment/web",))]
    # changed after the pods started: they still run the old content, so the new one is not known good
    assert captures([configmap({"a": "2"}, changed_ago=60)], [workload()], [pod()], NOW, 30) == []
    assert captures([configmap({"a": "1"})], [workload()], [pod(ready_ago=None)], NOW, 30) == []  # not Ready
    assert captures([configmap({"a": "1"})], [workload()], [pod(ready_ago=10)], NOW, 30) == []  # not for long enough
    assert captures([configmap({"a": "1"})], [workload(done=False)], [pod()], NOW, 30) == []  # rollout incomplete
    assert captures([configmap({"a": "1"})], [], [pod()], NOW, 30) == []  # used by nobody
    # every user must be healthy
    assert captures([configmap({"a": "1"})], [workload(), workload("api")], [pod()], NOW, 30) == []
    # created with its users and never changed: pods started in that same second read this content
    fresh = configmap({"a": "1"})
    fresh["metadata"]["creationTimestamp"] = fresh["metadata"]["managedFields"][0]["time"] = t(300)
    assert [s.name for s in captures([fresh], [workload()], [pod(started_ago=300)], NOW, 30)] == ["app"]
    # changed (not created) in the second the pods started: they may hold the old content
    assert captures([configmap({"a": "2"}, changed_ago=300)], [workload()], [pod(started_ago=300)], NOW, 30) == []


def test_secrets_are_never_kept() -> None:
    secret = {**configmap({"password": "hunter2"}), "kind": "Secret"}
    assert captures([secret], [workload()], [pod()], NOW, 30) == []
    store = SnapshotStore(key=KEY)
    assert "never kept" in store.put(snapshot_of(secret, NOW), kind="Secret")
    assert store.all() == []


def test_the_store_is_bounded() -> None:
    store = SnapshotStore(key=KEY, limits=Limits(per_configmap=100, per_namespace=250, total=400))
    assert "over the 100 bytes" in store.put(snapshot_of(configmap({"a": "x" * 200}), NOW))
    for i in range(5):
        snap = snapshot_of(configmap({"a": "y" * 50}, name=f"cm{i}", uid=f"u{i}"), NOW + dt.timedelta(seconds=i))
        assert store.put(snap) == "stored"
        assert store.bytes_used("shop") <= 250
    kept = sorted(s.name for s in store.all())
    assert kept == ["cm2", "cm3", "cm4"]  # the oldest went first
    assert store.put(snapshot_of(configmap({"a": "y" * 50}, name="cm4", uid="u4"), NOW)) == "unchanged"


def test_a_copy_is_bound_to_the_configmaps_uid() -> None:
    store = SnapshotStore(key=KEY)
    store.put(snapshot_of(configmap({"a": "1"}), NOW))
    assert store.known_good("shop", "app", "u1") is not None
    assert store.known_good("shop", "app", "another-uid") is None  # deleted and created again: another object
    assert store.known_good("other", "app", "u1") is None


class FakeConfigMaps:
    """The operator namespace's ConfigMaps, as the API server would keep them."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if request.method == "GET" and name == "configmaps":
            return httpx.Response(200, json={"items": list(self.objects.values())})
        if request.method == "GET":
            return httpx.Response(200, json=self.objects[name]) if name in self.objects else httpx.Response(404, json={})
        body = json.loads(request.content)
        body["metadata"]["resourceVersion"] = str(len(self.objects) + 1)
        self.objects[body["metadata"]["name"]] = body
        return httpx.Response(201, json=body)


async def test_copies_survive_a_restart_and_forged_ones_are_dropped() -> None:
    api = FakeConfigMaps()
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handler), base_url="https://api")
    first = SnapshotStore(client, "aisre-system", KEY)
    first.put(snapshot_of(configmap({"a": "1"}), NOW, ["Deployment/web"]))
    await first.save("shop")
    assert set(api.objects) == {"aisre-snapshots-shop"}
    restarted = SnapshotStore(client, "aisre-system", KEY)
    assert await restarted.load() == 1
    assert restarted.known_good("shop", "app", "u1").data == {"a": "1"}
    # Someone who could write there plants other content under the old signature: dropped.
    doc = json.loads(api.objects["aisre-snapshots-shop"]["data"]["snapshots"])
    doc["good"]["app"]["data"] = {"a": "evil"}
    api.objects["aisre-snapshots-shop"]["data"]["snapshots"] = json.dumps(doc)
    assert await SnapshotStore(client, "aisre-system", KEY).load() == 0
    assert await SnapshotStore(client, "aisre-system", b"another key").load() == 0
    await client.aclose()


# ---------------------------------------------------------------- the action


def restore_action() -> RecommendedAction:
    return RecommendedAction(id="r1", type=ActionType.RESTORE_CONFIG, target=ResourceRef(kind="ConfigMap", name="app",
                                                                                           namespace="shop"))


def test_plan_restores_the_known_good_content() -> None:
    store = SnapshotStore(key=KEY)
    store.put(snapshot_of(configmap({"a": "1", "b": "same"}), NOW))
    bad = configmap({"a": "2", "b": "same", "c": "new"})
    context = {"snapshot": store.known_good("shop", "app", "u1"), "users": [workload()], "store": store}
    plan = restore_config.plan(bad, restore_action(), "m", context)
    assert plan.method == "PATCH" and plan.path == "/api/v1/namespaces/shop/configmaps/app"
    assert {"op": "add", "path": "/data", "value": {"a": "1", "b": "same"}} in plan.body
    assert plan.undo == {"digest": content_digest({"a": "2", "b": "same", "c": "new"}, {})}
    assert "keys a, c" in plan.summary and "restart Deployment/web" in plan.summary
    with pytest.raises(PreconditionFailed, match="no known-good copy"):
        restore_config.plan(bad, restore_action(), "m", {"snapshot": None})
    with pytest.raises(PreconditionFailed, match="already has its known-good content"):
        restore_config.plan(configmap({"a": "1", "b": "same"}), restore_action(), "m", context)
    # reverting writes back what was replaced (kept in the store once the change is sent)
    store.put(plan.extra["replaced"])
    back = restore_config.revert(configmap({"a": "1", "b": "same"}), plan.undo, "m/revert", {"store": store})
    assert {"op": "add", "path": "/data", "value": {"a": "2", "b": "same", "c": "new"}} in back.body
    with pytest.raises(PreconditionFailed, match="not kept"):
        restore_config.revert(bad, {"digest": "0" * 64}, "m/revert", {"store": store})


def test_the_dry_run_diff_names_keys_and_is_bounded() -> None:
    before = configmap({"a": "x=1\ny=2", "gone": "1"})
    after = configmap({"a": "x=1\ny=3", "new": "1"})
    lines = restore_config.content_diff(before, after)
    assert lines[0] == "keys added: new; removed: gone; changed: a"
    assert "-y=2" in lines and "+y=3" in lines
    big = restore_config.content_diff(configmap({"a": "\n".join(map(str, range(500)))}), configmap({"a": "other"}))
    assert len(big) <= restore_config.DIFF_LINES + 2 and "more diff lines not shown" in big[-1]
    secretish = restore_config.content_diff(configmap({"a": "password=hunter2"}), configmap({"a": "password=other"}))
    assert not any("hunter2" in line for line in secretish)


def test_a_gitops_managed_configmap_is_suggested_with_the_git_revert() -> None:
    spec = RemediationPolicySpec.model_validate({"mode": "auto", "actions": [{"type": "restoreConfig"}]})
    for labels, annotations in (({"argocd.argoproj.io/instance": "shop"}, {}),
                                ({}, {"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:shop/app"}),
                                ({"kustomize.toolkit.fluxcd.io/name": "shop"}, {}),
                                ({"helm.toolkit.fluxcd.io/name": "shop"}, {})):
        verdict = check_gitops(DecisionInput(restore_action(), "shop", "shop/p", spec,
                                             TargetState(labels=labels, annotations=annotations), NOW))
        assert verdict is not None and verdict.decision == "Suggested"
        assert "revert the commit that changed ConfigMap/app in Git" in verdict.detail


def test_signatures_cover_content_and_identity() -> None:
    snap = snapshot_of(configmap({"a": "1"}), NOW)
    other = Snapshot(**{**snap.__dict__, "data": {"a": "2"}})
    assert signature(KEY, snap) != signature(KEY, other)
    assert signature(KEY, snap) != signature(KEY, Snapshot(**{**snap.__dict__, "namespace": "else"}))
