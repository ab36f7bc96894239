"""Detection adopts only its own Incidents; bad input is refused by the API server; the
record of what was executed cannot be deleted by a namespace's users; no secret value
leaves through the journal (issue 13, remaining parts)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from aisre.kube.reader import connect
from aisre.operator.detection import store
from aisre.operator.detection.correlate import Root, fingerprint
from aisre.operator.detection.detector import Tracked
from aisre.remediation import ledger
from attack_helpers import OPERATOR_NS, aisre_object, as_user, detected, journal, replicas
from conftest_helpers import deployment
from remediation_helpers import action, apply, available, get, policy, wait

NOW = dt.datetime.now(dt.UTC)


def web(kubectl, namespace: str, count: int = 2, **env: str) -> None:
    manifest = deployment("web", replicas=count)
    if env:
        manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    apply(kubectl, namespace, manifest)
    wait(lambda: available(kubectl, namespace, "web", count), what="deployment available")


def look_alike(namespace: str, name: str, root: Root, **annotations: str) -> str:
    fp = fingerprint(root)
    return aisre_object("Incident", name, {"title": "mine", "resource": {"kind": root.kind, "name": root.name},
                                           "fingerprint": fp, "source": "detection", "investigate": False},
                        labels={store.FINGERPRINT_LABEL: fp},
                        annotations={store.ROOT_ANNOTATION: f"{root.kind}/{root.namespace}/{root.name}", **annotations})


async def test_detection_never_adopts_an_incident_it_did_not_open(kubectl, kubeconfig, user_kubeconfig, user_ns, victim_ns,
                                                                  key) -> None:
    """Incidents with detection's label and root annotation, made by the user: one about the
    victim's Deployment (its signals would flow into the user's namespace), one about the
    user's own with a mark copied from an Incident detection did open. Only detection's
    own is carried on."""
    client = connect(str(kubeconfig))
    try:
        own = Tracked(root=Root("Deployment", "api", user_ns), namespace=user_ns, fingerprint=fingerprint(
            Root("Deployment", "api", user_ns)), candidate_since=NOW, first_seen=NOW, last_seen=NOW, name="deployment-api-x1")
        await store.create(client, own, NOW, key, OPERATOR_NS)
        copied = get(kubectl, "incident", own.name, user_ns)["metadata"]["annotations"]["aisre.dev/mark"]
        for name, root, extra in (("victims", Root("Deployment", "web", victim_ns), {}),
                                  ("copied", Root("Deployment", "web", user_ns), {"aisre.dev/mark": copied})):
            made = as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=look_alike(user_ns, name, root, **extra))
            assert made.returncode == 0, made.stderr
        adopted = await store.load_open(client, (user_ns,), NOW, key, OPERATOR_NS)
    finally:
        await client.aclose()
    assert [t.name for t in adopted] == [own.name]


async def test_detection_never_writes_into_an_incident_it_did_not_open(kubectl, kubeconfig, user_kubeconfig, user_ns,
                                                                      key) -> None:
    """The user makes an Incident under the very name detection is about to use: detection
    leaves it alone and opens its own under another name."""
    root = Root("Deployment", "web", user_ns)
    made = as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-",
                   input=look_alike(user_ns, "deployment-web-abc", root))
    assert made.returncode == 0, made.stderr
    before = get(kubectl, "incident", "deployment-web-abc", user_ns)
    t = Tracked(root=root, namespace=user_ns, fingerprint=fingerprint(root), candidate_since=NOW, first_seen=NOW,
                last_seen=NOW, name="deployment-web-abc")
    client = connect(str(kubeconfig))
    try:
        await store.create(client, t, NOW, key, OPERATOR_NS)
    finally:
        await client.aclose()
    after = get(kubectl, "incident", "deployment-web-abc", user_ns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert t.name != "deployment-web-abc" and get(kubectl, "incident", t.name, user_ns)["spec"]["fingerprint"] == t.fingerprint


@pytest.mark.parametrize("kind, spec, field", [
    ("RemediationPolicy", {"actions": [{"type": "scale"}], "limits": {"cooldown": "99999999999999h"}}, "cooldown"),
    ("RemediationPolicy", {"actions": [{"type": "scale"}], "limits": {"cooldown": "25h"}}, "cooldown"),
    ("RemediationPolicy", {"actions": [{"type": "scale"}], "verification": {"timeout": "999999h"}}, "timeout"),
    ("RemediationPolicy", {"actions": [{"type": "scale"}], "approvers": {"users": ["a"], "expireAfter": "9999h"}}, "expireAfter"),
    ("Investigation", {"target": {"selector": {}}, "window": {"lookback": "99999999999999h"}}, "lookback"),
])
def test_unbounded_durations_are_refused_by_the_api_server(kubectl, user_kubeconfig, user_ns, kind, spec, field) -> None:
    result = as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=aisre_object(kind, "bounds", spec))
    assert result.returncode != 0 and "is invalid" in result.stderr and field in result.stderr, result.stderr


async def test_deleting_an_incident_resets_no_cooldown(kubectl, user_kubeconfig, user_ns, remediator, key) -> None:
    """An action ran under a policy with a one-hour cooldown; the user deletes the
    Incident (and with it its journal) and the next Incident asks for the same target:
    refused, the ledger in the operator's namespace remembers."""
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=[{"type": "scale", "mode": "auto"}], limits={"cooldown": "1h", "minHealthyPercent": 0})
    detected(kubectl, user_ns, "first", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    await remediator.remediate(user_ns, "first")
    assert journal(kubectl, user_ns, "first")["scale-1"]["result"] == "Succeeded"
    assert get(kubectl, "incident", "first", user_ns)["status"]["state"] == "Mitigated"  # verified: mitigated
    assert as_user(kubectl, user_kubeconfig, "delete", "incident", "first", "-n", user_ns).returncode == 0
    detected(kubectl, user_ns, "second", {"kind": "Deployment", "name": "web"},
             [action("scale-2", "scale", "Deployment", "web", replicas=4)], key=key)
    await remediator.remediate(user_ns, "second")
    entry = journal(kubectl, user_ns, "second")["scale-2"]
    assert (entry["decision"], entry["reason"].split(":")[0]) == ("Denied", "Cooldown"), entry
    assert replicas(kubectl, user_ns) == 3
    # and the user cannot reach the ledger
    denied = as_user(kubectl, user_kubeconfig, "delete", "configmap", ledger.name_for(user_ns), "-n", OPERATOR_NS)
    assert denied.returncode != 0 and "forbidden" in denied.stderr


async def test_deleting_an_incident_mid_action_still_records_the_action(kubectl, user_kubeconfig, user_ns, remediator, key,
                                                                        monkeypatch) -> None:
    web(kubectl, user_ns)
    policy(kubectl, user_ns, actions=[{"type": "scale", "mode": "auto"}], limits={"cooldown": "1s", "minHealthyPercent": 0})
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"},
             [action("scale-1", "scale", "Deployment", "web", replicas=3)], key=key)
    monkeypatch.setenv("AISRE_TEST_PAUSE_AFTER_CLAIM", "2")
    running = asyncio.create_task(remediator.remediate(user_ns, "inc"))
    await asyncio.to_thread(wait, lambda: "scale-1" in journal(kubectl, user_ns, "inc"), 10, "the claim")
    assert (await asyncio.to_thread(as_user, kubectl, user_kubeconfig, "delete", "incident", "inc", "-n", user_ns)).returncode == 0
    await running
    rows = json.loads(get(kubectl, "configmap", ledger.name_for(user_ns), OPERATOR_NS)["data"]["actions"])
    mine = [r for r in rows if r["incident"] == f"{user_ns}/inc" and r["id"] == "scale-1"]
    assert [r["result"] for r in mine] == ["Succeeded"], rows
    assert replicas(kubectl, user_ns) == 3


async def test_no_secret_value_reaches_the_journal_or_events(kubectl, user_ns, remediator, key) -> None:
    """A dry run of a rollback quotes the pod template's diff: a changed password in an
    environment variable is named, never shown."""
    web(kubectl, user_ns, 1, DB_PASSWORD="first-Pa55word", MODE="blue")
    kubectl("set", "env", "deployment/web", "-n", user_ns, "DB_PASSWORD=second-Pa55word", "MODE=green")
    wait(lambda: available(kubectl, user_ns, "web", 1), what="the second revision")
    policy(kubectl, user_ns, actions=[{"type": "rollback", "mode": "dryRun"}])
    detected(kubectl, user_ns, "inc", {"kind": "Deployment", "name": "web"}, [action("rb-1", "rollback", "Deployment", "web")],
             key=key)
    await remediator.remediate(user_ns, "inc")
    entry = journal(kubectl, user_ns, "inc")["rb-1"]
    assert entry["decision"] == "DryRun" and '"green" -> "blue"' in entry["detail"], entry  # the diff is there
    assert "Pa55word" not in entry["detail"] and "[REDACTED:secret-field] changed" in entry["detail"], entry
    assert "Pa55word" not in kubectl("get", "events", "-n", user_ns, "-o", "json").stdout
