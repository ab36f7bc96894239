"""Attack paths through the running operator: the real operator (``serve``, in-process,
as the admin, which the boundary admits as the operator) watches this tier's namespaces,
with detection on, the Alertmanager webhook, two Investigation slots and a storm cap of
three Investigations per namespace per minute."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.thresholds import Thresholds
from attack_helpers import OPERATOR_NS, SECURITY_PREFIX, aisre_object, as_user, grant_namespace_user
from conftest_helpers import deployment, temporary_namespace
from remediation_helpers import apply, available, get, wait

TOKEN = "s3cret-webhook-token"
SLOTS = 2
STORM = 3


@pytest.fixture(scope="module")
def operator(kubeconfig, boundary, key, tmp_path_factory) -> Iterator[OperatorThread]:
    token = tmp_path_factory.mktemp("webhook") / "token"
    token.write_text(TOKEN)
    with OperatorThread(kubeconfig, free_port(), namespaces=(f"{SECURITY_PREFIX}*",), detection=True,
                        operator_namespace=OPERATOR_NS, alertmanager_token_file=str(token),
                        executor_user=f"system:serviceaccount:{OPERATOR_NS}:aisre-executor",
                        max_concurrent_investigations=SLOTS, thresholds=Thresholds(storm_per_minute=STORM)) as running:
        yield running


def concluded(kubectl, namespace: str, name: str, timeout: float = 30) -> dict:
    return wait(lambda: (o := get(kubectl, "investigation", name, namespace)).get("status", {}).get("state")
                in ("Completed", "Failed") and o, timeout, f"investigation {name} concluded")


def incident(name: str, investigate: bool = True, kind: str = "Deployment", resource: str = "web") -> str:
    return aisre_object("Incident", name, {"title": "t", "resource": {"kind": kind, "name": resource},
                                           "investigate": investigate})


def test_a_pre_created_investigation_is_not_adopted(kubectl, user_kubeconfig, user_ns, operator) -> None:
    """An Investigation made under the name the operator will use for an Incident's
    Investigation is never taken as that Incident's: the operator makes its own."""
    theirs = aisre_object("Investigation", "inc", {"target": {"selector": {}}, "incidentRef": {"name": "inc"}})
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=theirs).returncode == 0
    theirs_uid = get(kubectl, "investigation", "inc", user_ns)["metadata"]["uid"]
    kubectl("create", "-n", user_ns, "-f", "-", input=incident("inc"))
    try:
        ref = wait(lambda: (get(kubectl, "incident", "inc", user_ns).get("status") or {}).get("investigationRef"), 60,
                   "the Incident's Investigation")
    except AssertionError as error:  # say what the operator's handlers recorded (Kopf's progress annotations)
        raise AssertionError(f"{error}: {get(kubectl, 'incident', 'inc', user_ns)['metadata'].get('annotations')}") from error
    assert ref.get("uid") and ref["uid"] != theirs_uid and ref["name"] != "inc", ref
    mine = get(kubectl, "investigation", ref["name"], user_ns)
    assert mine["metadata"]["ownerReferences"][0]["uid"] == get(kubectl, "incident", "inc", user_ns)["metadata"]["uid"]


def test_an_investigation_naming_an_unlinked_incident_is_never_linked(kubectl, user_kubeconfig, user_ns, operator) -> None:
    """spec.incidentRef is the user's to write: an Investigation that names an Incident
    which started none of its own does not become that Incident's."""
    kubectl("create", "-n", user_ns, "-f", "-", input=incident("quiet", investigate=False))
    theirs = aisre_object("Investigation", "claims", {"target": {"selector": {}}, "incidentRef": {"name": "quiet"}})
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=theirs).returncode == 0
    concluded(kubectl, user_ns, "claims")
    time.sleep(1)  # the link, were it made, follows the conclusion at once
    status = get(kubectl, "incident", "quiet", user_ns).get("status") or {}
    assert not status.get("investigationRef") and not status.get("rootCause"), status


def test_a_node_investigation_reads_only_its_own_namespace(kubectl, user_kubeconfig, user_ns, victim_ns, operator) -> None:
    """An Investigation of a Node, made in the user's namespace, sees the pods of that
    namespace on the node, never the victim's."""
    pods = json.loads(kubectl("get", "pods", "-n", victim_ns, "-o", "json").stdout)["items"]
    node = pods[0]["spec"]["nodeName"]
    ask = aisre_object("Investigation", "node", {"target": {"kind": "Node", "name": node}})
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=ask).returncode == 0
    status = concluded(kubectl, user_ns, "node")["status"]
    text = json.dumps(status)
    assert victim_ns not in text and not any(p["metadata"]["name"] in text for p in pods), text[:2000]


def test_evidence_in_status_is_redacted(kubectl, user_ns, operator) -> None:
    """A credential in what the cluster says (here a Warning Event's message) does not
    reach the Investigation's status, its Events or the Incident."""
    apply(kubectl, user_ns, deployment("web", replicas=1))
    wait(lambda: available(kubectl, user_ns, "web", 1), what="deployment available")
    pod = json.loads(kubectl("get", "pods", "-n", user_ns, "-o", "json").stdout)["items"][0]
    secret = "hunter2-Zq8xW3"
    kubectl("create", "-n", user_ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "web."}, "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": user_ns, "uid": pod["metadata"]["uid"]},
        "message": f"db login failed: password={secret} (retrying)", "count": 3,
        "firstTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    kubectl("create", "-n", user_ns, "-f", "-", input=aisre_object(
        "Investigation", "why", {"target": {"kind": "Deployment", "name": "web"}, "agents": ["events", "workloads"]}))
    status = concluded(kubectl, user_ns, "why")["status"]
    assert any("db login failed" in e["summary"] for e in status["evidence"]), status["evidence"]  # the evidence is there
    assert secret not in json.dumps(status)
    events = kubectl("get", "events", "-n", user_ns, "-o", "json").stdout
    assert events.count(secret) == 1  # the Event we made, and nothing aisre posted


def test_an_incident_that_concludes_no_fault_is_not_left_investigating(kubectl, user_ns, operator) -> None:
    apply(kubectl, user_ns, deployment("web", replicas=1))
    wait(lambda: available(kubectl, user_ns, "web", 1), what="deployment available")
    kubectl("create", "-n", user_ns, "-f", "-", input=incident("calm"))
    status = wait(lambda: (s := get(kubectl, "incident", "calm", user_ns).get("status") or {}).get("rootCause") and s,
                  40, "a root cause")
    assert status["rootCause"]["category"] == "NoFault", status["rootCause"]
    assert status["state"] == "Identified", status["state"]


def test_an_investigation_flood_waits_in_a_bounded_queue(kubectl, user_kubeconfig, user_ns, operator) -> None:
    """A user creating many Investigations at once gets them run SLOTS at a time; the
    others wait with the condition Queued."""
    many = "\n---\n".join(aisre_object("Investigation", f"flood-{i}", {"target": {"selector": {}}}) for i in range(8))
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=many).returncode == 0
    most_running = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = json.loads(kubectl("get", "investigations", "-n", user_ns, "-o", "json").stdout)["items"]
        states = [(i.get("status") or {}).get("state") for i in items]
        most_running = max(most_running, states.count("Running"))
        if states.count("Completed") + states.count("Failed") == len(items) == 8:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the flood did not conclude: {states}")
    queued = [i for i in items if any(c["type"] == "Queued" for c in (i["status"].get("conditions") or []))]
    assert most_running <= SLOTS, most_running
    assert len(queued) >= 8 - SLOTS - 2, [i["metadata"]["name"] for i in queued]


def test_incidents_people_create_count_against_the_storm_cap(kubectl, user_kubeconfig, user_ns, operator) -> None:
    many = "\n---\n".join(incident(f"storm-{i}") for i in range(STORM + 3))
    assert as_user(kubectl, user_kubeconfig, "create", "-n", user_ns, "-f", "-", input=many).returncode == 0
    time.sleep(6)
    investigations = json.loads(kubectl("get", "investigations", "-n", user_ns, "-o", "json").stdout)["items"]
    assert len(investigations) == STORM, [i["metadata"]["name"] for i in investigations]
    incidents = json.loads(kubectl("get", "incidents", "-n", user_ns, "-o", "json").stdout)["items"]
    throttled = [i for i in incidents if any(c["type"] == "Throttled" and c["status"] == "True"
                                             for c in (i.get("status") or {}).get("conditions") or [])]
    assert len(throttled) == 3, [i["metadata"]["name"] for i in throttled]


def test_restarting_the_operator_does_not_open_a_fresh_storm_minute(kubectl, user_kubeconfig, boundary) -> None:
    """Incidents up to the cap, an operator restart, and more Incidents inside the same
    minute: the new process counts the Investigations already started and starts none."""
    with temporary_namespace(kubectl, "aisre-own-storm-") as ns:  # the tier's operator leaves it alone
        grant_namespace_user(kubectl, ns)

        def investigations() -> int:
            return len(json.loads(kubectl("get", "investigations", "-n", ns, "-o", "json").stdout)["items"])

        def serve() -> OperatorThread:
            return OperatorThread(kubeconfig=kubectl.kubeconfig, http_port=free_port(), namespaces=(ns,),
                                  operator_namespace=OPERATOR_NS, thresholds=Thresholds(storm_per_minute=STORM))

        def create(names: range) -> None:
            many = "\n---\n".join(incident(f"storm-{i}") for i in names)
            assert as_user(kubectl, user_kubeconfig, "create", "-n", ns, "-f", "-", input=many).returncode == 0

        create(range(STORM))
        with serve():
            wait(lambda: investigations() >= STORM, 30, "the first Investigations")
        with serve():
            create(range(STORM, STORM + 3))  # new ones, after the restart
            time.sleep(6)
            assert investigations() == STORM


def post(operator: OperatorThread, payload: dict, token: str = TOKEN) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{operator.http_port}/alertmanager", data=json.dumps(payload).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def alert(namespace: str, name: str = "HighErrorRate", **labels: str) -> dict:
    return {"status": "firing", "labels": {"alertname": name, "namespace": namespace, "deployment": "web", **labels},
            "annotations": {"summary": "5xx"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}


def test_one_bad_alert_costs_only_itself(operator, user_ns) -> None:
    """A 64-character namespace in one alert of a batch (today: a 500 for the whole
    request) is refused alone; the valid alert beside it is taken."""
    payload = {"version": "4", "status": "firing", "receiver": "aisre", "groupKey": "{}:{}",
               "alerts": [alert("n" * 64), alert(user_ns), {"status": "firing", "labels": {"alertname": 7}}, None,
                          alert("Bad_Namespace"), alert(user_ns, pod="../../etc")]}
    code, answer = post(operator, payload)
    assert code == 200, answer
    assert answer["accepted"] == 1 and len(answer["skipped"]) == 5, answer


def test_alerts_for_namespaces_not_watched_are_refused(operator, user_ns) -> None:
    payload = {"version": "4", "status": "firing", "alerts": [alert("kube-system"), alert("default"), alert(user_ns)]}
    code, answer = post(operator, payload)
    assert code == 200 and answer["accepted"] == 1, answer
    assert any("kube-system is not watched" in s for s in answer["skipped"]), answer
