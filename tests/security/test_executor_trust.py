"""The executor trusts only what the operator itself decided (issue 13, first part).

Each test is one way a namespace user could try to steer the executor; it fails if the
attack works. The user holds `edit` and every verb on aisre's kinds (status included) in
their namespace, and nothing in the victim's."""

from __future__ import annotations

import json

from aisre.kube.reader import connect
from aisre.operator.leader import LeaderElector, LeaseSettings
from attack_helpers import as_user, detected, journal, refused_by_admission, replicas
from conftest_helpers import deployment
from remediation_helpers import action, apply, available, get, policy, signed, wait

AUTO_SCALE = [{"type": "scale", "mode": "auto"}]


def web(kubectl, namespace: str, replicas_: int = 2) -> None:
    apply(kubectl, namespace, deployment("web", replicas=replicas_))
    wait(lambda: available(kubectl, namespace, "web", replicas_), what="deployment available")


def test_a_user_cannot_write_an_incidents_status(kubectl, user_kubeconfig, user_ns) -> None:
    """Pointing an Incident at an Investigation of one's choosing (status.investigationRef)
    is refused by the API server, though RBAC allows the patch."""
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [])
    before = get(kubectl, "incident", "inc", user_ns)["status"]
    result = as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", user_ns, "--subresource=status",
                     "--type=merge", "-p", json.dumps({"status": {"investigationRef": {"name": "mine", "uid": "x"}}}))
    assert refused_by_admission(result, "aisre-status-writers"), result.stderr
    assert get(kubectl, "incident", "inc", user_ns)["status"] == before


def test_a_user_cannot_write_recommendations_into_an_investigation(kubectl, user_kubeconfig, user_ns, victim_ns) -> None:
    """Adding a recommendation (here: scale the victim's Deployment) to the operator's
    Investigation is refused by the API server."""
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [])
    forged = {"status": {"recommendedActions": [
        {"id": "scale-x", "type": "scale", "target": {"kind": "Deployment", "name": "web", "namespace": victim_ns},
         "parameters": {"replicas": 0}, "reason": "forged"}]}}
    result = as_user(kubectl, user_kubeconfig, "patch", "investigation", "inc", "-n", user_ns, "--subresource=status",
                     "--type=merge", "-p", json.dumps(forged))
    assert refused_by_admission(result, "aisre-status-writers"), result.stderr
    assert not get(kubectl, "investigation", "inc", user_ns)["status"].get("recommendedActions")


def test_a_status_written_at_creation_is_dropped(kubectl, user_kubeconfig, user_ns, victim_ns, remediator) -> None:
    """Creating an Incident with a ready-made status (a root cause and a link) writes no
    status at all: the executor finds nothing to do."""
    incident = {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "made"},
                "spec": {"title": "t", "resource": {"kind": "Deployment", "name": "web"}, "investigate": False},
                "status": {"investigationRef": {"name": "made"}, "state": "Identified",
                           "rootCause": {"category": "BadImage", "confidence": 0.9}}}
    created = as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=json.dumps(incident))
    assert created.returncode == 0, created.stderr
    assert not get(kubectl, "incident", "made", user_ns).get("status")


async def test_an_unsigned_recommendation_is_never_executed(kubectl, user_ns, remediator) -> None:
    """Should a recommendation reach status without the operator (a cluster without the
    admission policy, a status writer that is not the operator), it lacks the operator's
    signature: journaled Denied, never executed."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    ids = detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [])
    kubectl("patch", "investigation", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"recommendedActions": [action("scale-1", "scale", "Deployment", "web", replicas=4)]}}))
    assert ids["investigation"]
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["scale-1"]
    assert (entry["decision"], entry["reason"].split(":")[0]) == ("Denied", "UntrustedAction"), entry
    assert replicas(kubectl, user_ns) == 2


async def test_a_signed_recommendation_replayed_on_another_incident_is_refused(kubectl, user_ns, remediator, key) -> None:
    """A recommendation the operator signed for one Incident, copied into the
    Investigation of another, does not verify there."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    scale = action("scale-1", "scale", "Deployment", "web", replicas=3)
    first = detected(kubectl, user_ns, "first", {"kind": "Deployment", "name": "web"}, [], key=key)
    genuine = signed(key, first["incident"], first["investigation"], [scale])
    detected(kubectl, user_ns, "second", {"kind": "Deployment", "name": "web"}, [], key=key)
    kubectl("patch", "investigation", "second", "-n", user_ns, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"recommendedActions": genuine}}))
    await remediator.remediate(user_ns, "second")
    entry = journal(kubectl, user_ns, "second")["scale-1"]
    assert entry["reason"].startswith("UntrustedAction"), entry
    assert replicas(kubectl, user_ns) == 2


async def test_a_changed_parameter_breaks_the_signature(kubectl, user_ns, remediator, key) -> None:
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE, bounds={"scale": {"minReplicas": 0, "maxReplicas": 10}})
    ids = detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [], key=key)
    [genuine] = signed(key, ids["incident"], ids["investigation"], [action("scale-1", "scale", "Deployment", "web", replicas=3)])
    tampered = {**genuine, "parameters": {"replicas": 0}}
    kubectl("patch", "investigation", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"recommendedActions": [tampered]}}))
    await remediator.remediate(user_ns, "inc")
    assert journal(kubectl, user_ns, "inc")["scale-1"]["reason"].startswith("UntrustedAction")
    assert replicas(kubectl, user_ns) == 2


async def test_a_target_in_another_namespace_is_never_acted_on(kubectl, user_ns, victim_ns, remediator, key) -> None:
    """An Incident in the user's namespace about the victim's Deployment (its spec is the
    user's to write), whose recommendation names that Deployment (even with a valid
    signature), does nothing there."""
    policy(kubectl, user_ns, actions=AUTO_SCALE, bounds={"scale": {"minReplicas": 0, "maxReplicas": 10}})
    into_victim = {**action("scale-v", "scale", "Deployment", "web", replicas=0)}
    into_victim["target"]["namespace"] = victim_ns
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web", "namespace": victim_ns}, [into_victim], key=key)
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["scale-v"]
    assert (entry["decision"], entry["reason"].split(":")[0]) == ("Denied", "OutOfNamespace"), entry
    assert replicas(kubectl, victim_ns) == 2


async def test_a_look_alike_investigation_of_the_same_name_is_not_trusted(kubectl, user_kubeconfig, user_ns, remediator,
                                                                            key) -> None:
    """The user deletes the Investigation the operator made for an Incident and creates
    one of the same name, owned by the same Incident; even with recommendations signed for
    it (as the operator signs what it investigates), the Incident's link is by uid."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    ids = detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [], key=key)
    assert as_user(kubectl, user_kubeconfig, "delete", "investigation", "inc", "-n", user_ns).returncode == 0
    owner = {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident", "name": "inc", "uid": ids["incident"], "controller": True}
    look_alike = {"apiVersion": "aisre.dev/v1alpha1", "kind": "Investigation",
                  "metadata": {"name": "inc", "ownerReferences": [owner]},
                  "spec": {"target": {"kind": "Deployment", "name": "web"}, "incidentRef": {"name": "inc"}}}
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=json.dumps(look_alike)).returncode == 0
    new_uid = get(kubectl, "investigation", "inc", user_ns)["metadata"]["uid"]
    kubectl("patch", "investigation", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"recommendedActions": signed(key, ids["incident"], new_uid,
                                                 [action("scale-1", "scale", "Deployment", "web", replicas=5)])}}))
    await remediator.remediate(user_ns, "inc")
    assert "scale-1" not in journal(kubectl, user_ns, "inc")
    assert replicas(kubectl, user_ns) == 2


async def test_a_resolved_incident_is_never_acted_on(kubectl, user_ns, remediator, key) -> None:
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    kubectl("patch", "incident", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"state": "Resolved"}}))
    await remediator.remediate(user_ns, "inc")
    assert journal(kubectl, user_ns, "inc") == {}
    assert replicas(kubectl, user_ns) == 2


async def test_a_leader_whose_lease_was_taken_acts_no_more_before_its_deadline(kubectl, kubeconfig, user_ns, remediator,
                                                                              key) -> None:
    """Fencing by the Lease itself: once anyone else writes the leader's Lease (a replica
    that took it over, however its clock told it the term had passed), the leader sends no
    change, though its own renew deadline has not passed yet."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    client = connect(str(kubeconfig))
    elector = LeaderElector(client, user_ns, "aisre-leader", "replica-a",
                            LeaseSettings(duration=60, renew=20, renew_deadline=40, retry=1))
    try:
        assert await elector.try_acquire_or_renew()
        elector.leading.set()
        elector.last_renewed = elector.clock()
        assert await elector.fence()  # holds it, unchanged since its own write
        lease = get(kubectl, "lease", "aisre-leader", user_ns)
        lease["spec"]["holderIdentity"] = "replica-b"
        kubectl("replace", "-n", user_ns, "-f", "-", input=json.dumps(lease))  # another replica's write
        assert elector.may_act()  # within its renew deadline, by its own clock
        remediator.may_act = elector.fence
        await remediator.remediate(user_ns, "inc")
        assert journal(kubectl, user_ns, "inc") == {}  # nothing claimed
        assert replicas(kubectl, user_ns) == 2
    finally:
        await client.aclose()


async def test_a_replica_that_lost_the_lease_acts_no_more(kubectl, user_ns, remediator, key) -> None:
    """With leader election, a replica past its renew deadline (another may take the Lease
    over soon) neither claims nor sends a change."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=AUTO_SCALE)
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    async def not_leading() -> bool:
        return False

    remediator.may_act = not_leading
    await remediator.remediate(user_ns, "inc")
    assert journal(kubectl, user_ns, "inc") == {}  # nothing decided, nothing claimed
    assert replicas(kubectl, user_ns) == 2


async def test_a_prediction_a_user_writes_into_an_incident_does_not_bring_the_predicted_mode(
        kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """A policy that runs an action on its own only before a failure (predictedMode: auto)
    and asks for approval after one (mode: approve): giving an Incident of the operator's a
    forecast in its spec, which RBAC allows, does not skip the approval."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=[{"type": "scale", "mode": "approve", "predictedMode": "auto"}],
           approvers={"users": ["oncall"]})
    ids = detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [], key=key)
    kubectl("patch", "investigation", "inc", "-n", user_ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"recommendedActions": signed(key, ids["incident"], ids["investigation"],
                                                 [action("scale-1", "scale", "Deployment", "web", replicas=3)])}}))
    forecast = {"spec": {"prediction": {"category": "InsufficientResources", "signal": "memoryLimit", "confidence": 0.99,
                                        "failureTime": "2030-01-01T00:00:00Z", "model": "linearTrend"}}}
    edited = as_user(kubectl, user_kubeconfig, "patch", "incident", "inc", "-n", user_ns, "--type=merge",
                     "-p", json.dumps(forecast))
    assert edited.returncode == 0, edited.stderr  # RBAC allows it; the executor must not believe it
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["scale-1"]
    assert entry["decision"] == "AwaitingApproval", entry
    assert replicas(kubectl, user_ns) == 2
