"""The pure parts of the trust boundary: signatures and what they bind, the executor's
refusals, approvals' pending decisions, the ledger, the storm gate and the Investigation
slots (their cluster counterparts are in tests/security)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from aisre.api.incident import ActionResult, Decision, JournalEntry
from aisre.api.investigation import RecommendedAction
from aisre.api.signing import action_id, action_signature, has_mark, object_mark, verify_action
from aisre.operator.incidents import StartGate
from aisre.operator.recommend import bind_actions
from aisre.operator.run_investigation import Slots
from aisre.remediation import ledger
from aisre.remediation.executor import new_revision, pending_of, redacted_diff, trust_refusal

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SCALE = {"id": "scale-1", "type": "scale", "target": {"kind": "Deployment", "name": "web", "namespace": "shop"},
         "parameters": {"replicas": 3}, "reason": "r"}


def incident(uid: str = "inc-uid", namespace: str = "shop") -> dict:
    return {"metadata": {"name": "inc", "namespace": namespace, "uid": uid}}


def investigation(uid: str = "inv-uid") -> dict:
    return {"metadata": {"name": "inc", "namespace": "shop", "uid": uid}}


def test_a_signature_binds_incident_investigation_and_every_field_of_the_action() -> None:
    signed = {**SCALE, "signature": action_signature(KEY, "inc-uid", "inv-uid", SCALE)}
    assert verify_action(KEY, "inc-uid", "inv-uid", signed)
    assert not verify_action(b"x" * 32, "inc-uid", "inv-uid", signed)
    assert not verify_action(KEY, "other-incident", "inv-uid", signed)
    assert not verify_action(KEY, "inc-uid", "other-investigation", signed)
    for changed in ({"id": "scale-2"}, {"type": "rollback"}, {"parameters": {"replicas": 30}}, {"parameters": None},
                    {"target": {**SCALE["target"], "namespace": "victim"}}, {"target": {**SCALE["target"], "name": "db"}}):
        assert not verify_action(KEY, "inc-uid", "inv-uid", {**signed, **changed}), changed
    assert not verify_action(KEY, "inc-uid", "inv-uid", SCALE)  # unsigned


def test_the_operator_binds_ids_to_the_incident_and_the_parameters() -> None:
    [bound] = bind_actions([SCALE], "shop", "inc-uid", "inv-uid", KEY)
    assert bound["id"] == action_id("scale", "shop", "inc-uid", SCALE["target"], {"replicas": 3}) != SCALE["id"]
    assert verify_action(KEY, "inc-uid", "inv-uid", bound)
    [other] = bind_actions([{**SCALE, "parameters": {"replicas": 4}}], "shop", "inc-uid", "inv-uid", KEY)
    [elsewhere] = bind_actions([SCALE], "shop", "another-incident", "inv-uid", KEY)
    assert len({bound["id"], other["id"], elsewhere["id"]}) == 3 and all(len(i) <= 64 for i in (bound["id"], other["id"]))


def test_marks_bind_kind_place_name_and_binding() -> None:
    obj = {"metadata": {"namespace": "shop", "name": "inc", "annotations": {
        "aisre.dev/mark": object_mark(KEY, "Investigation", "shop", "inc", "inc-uid")}}}
    assert has_mark(KEY, obj, "Investigation", "inc-uid")
    assert not has_mark(KEY, obj, "Investigation", "another-uid")
    assert not has_mark(KEY, obj, "Incident", "inc-uid")
    assert not has_mark(KEY, {**obj, "metadata": {**obj["metadata"], "name": "copy"}}, "Investigation", "inc-uid")


def test_the_executor_refuses_what_the_operator_did_not_sign_for_this_incident() -> None:
    raw = {**SCALE, "signature": action_signature(KEY, "inc-uid", "inv-uid", SCALE)}
    action = RecommendedAction.model_validate(raw)
    assert trust_refusal(KEY, incident(), investigation(), raw, action) is None
    assert trust_refusal(None, incident(), investigation(), raw, action).startswith("UntrustedAction")
    assert trust_refusal(KEY, incident("x"), investigation(), raw, action).startswith("UntrustedAction")
    victim = {**SCALE, "target": {**SCALE["target"], "namespace": "victim"}}
    victim["signature"] = action_signature(KEY, "inc-uid", "inv-uid", victim)
    assert trust_refusal(KEY, incident(), investigation(), victim,
                         RecommendedAction.model_validate(victim)).startswith("OutOfNamespace")


def entry(**fields) -> JournalEntry:
    base = {"id": "scale-1", "type": "scale", "target": SCALE["target"], "decision": Decision.AWAITING_APPROVAL,
            "revision": "3-abcdef0123456789", "expiresAt": NOW + dt.timedelta(hours=1), "result": ActionResult.PENDING}
    return JournalEntry.model_validate({**base, **fields})


def test_a_pending_decision_holds_for_one_target_revision_until_it_expires() -> None:
    assert pending_of(entry(), "3", NOW).revision == "3-abcdef0123456789"
    assert pending_of(entry(), "4", NOW) is None  # the target changed
    assert pending_of(entry(), "3", NOW + dt.timedelta(hours=1)) is None  # expired
    assert pending_of(entry(decision=Decision.EXECUTE), "3", NOW) is None
    assert pending_of(None, "3", NOW) is None
    pod_uid = "0b1c-22"  # a pod's revision is its uid, dashes and all
    assert pending_of(entry(revision=new_revision(pod_uid)), pod_uid, NOW) is not None
    assert new_revision("3") != new_revision("3")


def test_a_dry_runs_diff_names_secret_values_without_showing_them() -> None:
    before = {"spec": {"template": {"spec": {"containers": [{"env": [{"name": "API_TOKEN", "value": "t0ken-1"}], "image": "a:1"}]}}}}
    after = {"spec": {"template": {"spec": {"containers": [{"env": [{"name": "API_TOKEN", "value": "t0ken-2"}], "image": "a:2"}]}}}}
    lines = redacted_diff(before, after)
    assert '/spec/template/spec/containers/0/image: "a:1" -> "a:2"' in lines
    assert "/spec/template/spec/containers/0/env/0/value: [REDACTED:secret-field] changed" in lines
    assert "t0ken" not in "\n".join(lines)


def test_the_ledger_keeps_a_day_replaces_by_action_and_frees_stale_running() -> None:
    def row(id_: str, started: dt.datetime, result: str = "Succeeded", uid: str = "u") -> dict:
        return {"incidentUid": uid, "id": id_, "policy": "shop/p", "target": "Deployment/shop/web",
                "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "result": result}

    rows = [row("old", NOW - dt.timedelta(hours=25)), row("a", NOW - dt.timedelta(minutes=5), "Running")]
    rows = ledger.merged(rows, row("a", NOW - dt.timedelta(minutes=5)), NOW)
    assert [(r["id"], r["result"]) for r in rows] == [("a", "Succeeded")]
    rows = ledger.merged(rows, row("a", NOW, uid="other-incident"), NOW)  # same id, another Incident: kept apart
    assert len(rows) == 2
    past = ledger.past_actions([row("x", NOW - dt.timedelta(hours=2), "Running"), row("y", NOW, "Running")], NOW)
    assert [p.running for p in past] == [False, True]


def test_the_storm_gate_counts_every_incident_per_namespace_per_minute() -> None:
    gate = StartGate(2)
    assert [gate.wait_for("shop", t) for t in (0.0, 1.0)] == [0.0, 0.0]
    assert gate.wait_for("shop", 2.0) == pytest.approx(58.0)
    assert gate.wait_for("pay", 2.0) == 0.0  # another namespace has its own minute
    assert gate.wait_for("shop", 60.5) == 0.0


def test_the_storm_gate_counts_what_started_before_a_restart() -> None:
    wall = dt.datetime(2026, 12, 7, 12, 0, 30, tzinfo=dt.UTC)

    def investigation(ns: str, created: str, incident: bool = True) -> dict:
        return {"metadata": {"namespace": ns, "creationTimestamp": created},
                "spec": {"incidentRef": {"name": "i"}} if incident else {}}

    gate = StartGate(2)
    assert gate.seed([investigation("shop", "2026-12-07T12:00:10Z"), investigation("shop", "2026-12-07T12:00:20Z"),
                      investigation("pay", "2026-12-07T11:58:00Z"),  # older than a minute
                      investigation("pay", "2026-12-07T12:00:25Z", incident=False)], wall, 1000.0) == 2
    assert gate.wait_for("shop", 1000.0) == pytest.approx(40.0)  # the first of them ages out at 12:01:10
    assert gate.wait_for("pay", 1000.0) == 0.0


async def test_the_storm_gate_waits_out_an_api_server_still_loading_its_crds() -> None:
    import httpx

    from aisre.operator.incidents import seed_start_gate

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    answers = [httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "storage is (re)initializing"}),
               httpx.Response(200, json={"items": [{"metadata": {"namespace": "shop", "creationTimestamp": now},
                                                    "spec": {"incidentRef": {"name": "i"}}}] * 2})]
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: answers.pop(0)), base_url="https://k") as client:
        gate = StartGate(2)
        await seed_start_gate(gate, client)
    assert not answers and gate.wait_for("shop", time.monotonic()) > 0  # both counted: the minute is full


async def test_slots_bound_concurrent_work_first_come_first_served() -> None:
    slots = Slots(2)
    running, most, order = 0, 0, []

    async def work(i: int) -> None:
        nonlocal running, most
        async with slots.semaphore:
            running += 1
            most = max(most, running)
            order.append(i)
            await asyncio.sleep(0.01)
            running -= 1

    tasks = [asyncio.create_task(work(i)) for i in range(7)]
    await asyncio.sleep(0)
    assert slots.full
    await asyncio.gather(*tasks)
    assert most == 2 and order == list(range(7))


def test_a_failed_handler_is_retried_within_seconds() -> None:
    """Kopf's own default is a minute: the first Incident after a start would wait that long
    after one transient error."""
    from aisre.operator.config import OperatorConfig
    from aisre.operator.main import kopf_settings

    assert kopf_settings(OperatorConfig()).execution.default_backoff <= 5


def test_a_leader_stops_acting_at_its_renew_deadline_before_anyone_may_take_over() -> None:
    from aisre.operator.leader import LeaderElector, LeaseSettings

    now = [100.0]
    elector = LeaderElector(None, "ns", "lease", "me", LeaseSettings(), clock=lambda: now[0])  # type: ignore[arg-type]
    assert not elector.may_act()  # not leading yet
    elector.leading.set()
    elector.last_renewed = 100.0
    now[0] = 109.9
    assert elector.may_act()
    now[0] = 110.0  # renew_deadline passed: no more changes, though the loop has not stepped down yet
    assert elector.is_leader and not elector.may_act()
    assert elector.settings.renew_deadline < elector.settings.duration  # others wait out the whole term
