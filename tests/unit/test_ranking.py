"""Ranking on synthetic evidence: patterns, the causal graph, and NoFault."""

from __future__ import annotations

import itertools

from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.ranking.calibration import calibrate, fit_knots
from aisre.ranking.rank import rank

_ids = itertools.count()


def f(kind: str, owner: str | None = None, agent: str = "workloads", **data) -> Finding:
    if owner:
        data["owner"] = owner
        kind_, _, name = owner.partition("/")
        resource = ResourceRef(kind=kind_, name=name, namespace="ns")
    else:
        resource = None
    return Finding(id=f"x-{next(_ids)}", agent=agent, kind=kind, summary=kind, resource=resource, data=data)


def edge(src: str, dst: str, relation: str) -> Finding:
    return f("Edge", agent="topology", src=src, dst=dst, relation=relation)


def top(findings: list[Finding]) -> tuple[str, str]:
    hypotheses = rank(findings, "ns")
    return hypotheses[0].category.value, hypotheses[0].resource


def unavailable(owner: str) -> Finding:
    return f("WorkloadUnavailable", owner, desired=2, available=1, ready=1, updated=1)


def test_image_pull_errors() -> None:
    d = "Deployment/api"
    base = [unavailable(d), f("TemplateChange", d, agent="changes", fields=["image"])]
    assert top(base + [f("ContainerWaiting", d, reason="ImagePullBackOff", message='Back-off pulling image "x:v2"')]) == ("BadImage", d)
    denied = f("ContainerWaiting", d, reason="ErrImagePull",
               message="rpc error: pull access denied for registry.local/x, repository does not exist or may require authorization: "
               "authorization failed")
    assert top(base + [denied]) == ("ImagePullAuth", d)


def test_oom_is_memory_limit_and_leak_is_an_alternative() -> None:
    d = "Deployment/worker"
    hypotheses = rank([unavailable(d), f("ContainerWaiting", d, reason="CrashLoopBackOff", restarts=4),
                       f("ContainerTerminated", d, reason="OOMKilled", exit_code=137, current=False)], "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.MEMORY_LIMIT_TOO_LOW, d)
    assert C.MEMORY_LEAK in [h.category for h in hypotheses[:3]]


def test_memory_its_own_logs_show_climbing_through_each_run_is_a_leak() -> None:
    d = "Deployment/geocoder"
    oom = [unavailable(d), f("ContainerTerminated", d, reason="OOMKilled", exit_code=137, current=False)]
    climbed = f("LogMemoryGrowing", d, agent="logs", field="rssMB", first=388.0, last=918.0, readings=4, previous=True)
    hypotheses = rank([*oom, climbed], "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.MEMORY_LEAK, d)
    assert climbed.id in hypotheses[0].evidence_ids
    # a rollout that cut the limit is the limit, whatever the readings
    resized = f("TemplateChange", d, agent="changes", fields=["resources"], revision=2, previous_revision=1)
    assert rank([*oom, climbed, resized], "ns")[0].category == C.MEMORY_LIMIT_TOO_LOW
    # readings that climb in a program nothing killed are its warm-up, not a fault
    assert C.MEMORY_LEAK not in [h.category for h in rank([climbed], "ns")]


def test_a_proxys_own_502s_are_its_refusals_not_a_second_peer() -> None:
    """A gateway's access log shows the 502s it answered (no peer named); its error log names
    the upstream it could not connect to, by address. The refusal decides, and a healthy
    server refusing means its Service sends clients where nothing listens."""
    gateway, server, other = "Deployment/portal", "Deployment/help", "Deployment/tickets"
    findings = [
        f("ServicePorts", agent="topology", service="Service/help", ports=[80]),
        f("ServicePorts", agent="topology", service="Service/tickets", ports=[8080]),
        edge(gateway, "Service/help", "dependsOn"), edge(gateway, "Service/tickets", "dependsOn"),
        edge("Service/help", server, "routesTo"), edge("Service/tickets", other, "routesTo"),
        f("WorkloadHealthy", server, desired=2, available=2), f("WorkloadHealthy", other, desired=2, available=2),
        f("TemplateChange", server, agent="changes", fields=["image"], revision=2, previous_revision=1),
        f("LogSignature", gateway, agent="logs", signature="connection_refused", host=None, port=80, count=2, recent=2,
          sample="connect() failed (111: Connection refused) while connecting to upstream"),
        f("LogSignature", gateway, agent="logs", signature="peer_error", host=None, port=None, count=2, recent=2,
          sample='"GET /help/returns HTTP/1.1" 502 157'),
    ]
    assert top(findings) == ("ServicePortMismatch", "Service/help")
    # without the refusal, the 502s alone still point at the release that preceded them
    assert top([x for x in findings if x.data.get("signature") != "connection_refused"])[1] == server


def test_a_failure_the_log_names_once_is_that_peer_when_another_line_names_none() -> None:
    client = "Deployment/checkout"
    findings = [
        f("ServicePorts", agent="topology", service="Service/pricing", ports=[50051]),
        f("ServicePorts", agent="topology", service="Service/inventory", ports=[8080]),
        edge(client, "Service/pricing", "dependsOn"), edge(client, "Service/inventory", "dependsOn"),
        edge("Service/pricing", "Deployment/pricing", "routesTo"), edge("Service/inventory", "Deployment/inventory", "routesTo"),
        f("LogSignature", client, agent="logs", signature="wrong_listener", host="pricing", port=50051, count=1, recent=1,
          sample="failed to connect to pricing:50051: error reading server preface: http2: frame too large"),
        f("LogSignature", client, agent="logs", signature="wrong_listener", host=None, port=None, count=3, recent=3,
          sample="price lookup failed: error reading server preface: http2: frame too large"),
    ]
    hypotheses = rank(findings, "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.SERVICE_PORT_MISMATCH, "Service/pricing")
    assert "Service/inventory" not in [h.resource for h in hypotheses]


def test_credentials_a_peer_stopped_accepting_come_from_the_issuer_that_changed() -> None:
    bff, api, idp = "Deployment/bff", "Deployment/orders", "Deployment/keycloak"
    findings = [
        f("ServicePorts", agent="topology", service="Service/orders", ports=[8080]),
        f("ServicePorts", agent="topology", service="Service/keycloak", ports=[8080]),
        edge(bff, "Service/orders", "dependsOn"), edge(bff, "Service/keycloak", "dependsOn"),
        edge("Service/orders", api, "routesTo"), edge("Service/keycloak", idp, "routesTo"),
        f("WorkloadHealthy", api, desired=2, available=2), f("WorkloadHealthy", idp, desired=1, available=1),
        f("ConfigChanged", agent="changes", config_kind="ConfigMap", name="keycloak-env", used_by=[idp]),
        f("LogSignature", bff, agent="logs", signature="auth_failure", host="orders", port=8080, count=2, recent=2,
          sample='upstream rejected request status=401 error="invalid_token" iss claim is not valid'),
    ]
    assert top(findings) == ("BadConfigChange", "ConfigMap/keycloak-env")
    # a change on the rejecting peer's own side is its own lead, not the issuer's
    mine = f("ConfigChanged", agent="changes", config_kind="Secret", name="orders-jwt", used_by=[api])
    assert top([*findings, mine]) == ("BadConfigChange", "Secret/orders-jwt")


def test_client_crash_points_at_the_database() -> None:
    client, db = "Deployment/checkout", "Deployment/orders-db"
    findings = [
        unavailable(client), f("ContainerWaiting", client, reason="CrashLoopBackOff", restarts=5),
        f("ContainerTerminated", client, reason="Error", exit_code=1, current=False),
        f("LogSignature", client, agent="logs", signature="connection_refused", host="orders-db", port=5432),
        unavailable(db), f("ContainerNotReady", db, container="postgres"),
        edge("Service/orders-db", db, "routesTo"), edge(client, "Service/orders-db", "dependsOn"),
    ]
    hypotheses = rank(findings, "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.DEPENDENCY_FAILURE, db)
    client_app = [h for h in hypotheses if h.resource == client and h.category == C.APPLICATION_ERROR]
    assert not client_app or client_app[0].score < hypotheses[0].score


def test_service_selector_mismatch_beats_the_dependency() -> None:
    client = "Deployment/web"
    findings = [
        unavailable(client), f("ContainerNotReady", client),
        f("LogSignature", client, agent="logs", signature="connection_refused", host="cart", port=8080),
        f("ServiceSelectorMatchesNothing", agent="topology", service="Service/cart", selector={"app": "carts"}),
        edge(client, "Service/cart", "dependsOn"),
    ]
    assert top(findings) == ("ServiceSelectorMismatch", "Service/cart")


def test_network_policy_block() -> None:
    client, server = "Deployment/web", "Deployment/redis"
    findings = [
        unavailable(client), f("ContainerNotReady", client),
        f("LogSignature", client, agent="logs", signature="timeout", host="redis", port=6379),
        edge("Service/redis", server, "routesTo"), f("WorkloadHealthy", server, desired=1, available=1),
        f("NetworkPolicyBlocks", agent="topology", policy="NetworkPolicy/deny-all",
          blocked=[{"client": client, "server": server, "direction": "ingress"}]),
    ]
    assert top(findings) == ("NetworkPolicyBlock", "NetworkPolicy/deny-all")


def test_quota_scheduling_and_storage() -> None:
    d = "Deployment/api"
    quota = f("ReplicaFailure", d, reason="FailedCreate", message='pods "api-x" is forbidden: exceeded quota: team-quota, '
              "requested: cpu=500m, used: cpu=2, limited: cpu=2")
    assert top([unavailable(d), quota]) == ("ResourceQuotaExceeded", "ResourceQuota/team-quota")
    pending = f("PodUnschedulable", d, reason="Unschedulable", message="0/2 nodes are available: 2 Insufficient memory.")
    assert top([unavailable(d), pending]) == ("InsufficientResources", d)
    selector = f("PodUnschedulable", d, message="0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    assert top([unavailable(d), selector]) == ("SchedulingConstraint", d)
    claim = [unavailable(d), f("PodUnschedulable", d, message="0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."),
             f("PVCNotBound", agent="topology", claim="PersistentVolumeClaim/data", phase="Pending"),
             edge(d, "PersistentVolumeClaim/data", "uses")]
    assert top(claim) == ("StorageFailure", "PersistentVolumeClaim/data")


def test_missing_config_and_bad_config_change() -> None:
    d = "Deployment/ledger"
    waiting = f("ContainerWaiting", d, reason="CreateContainerConfigError", message='configmap "ledger-config" not found')
    hypotheses = rank([unavailable(d), waiting], "ns")
    assert {h.category for h in hypotheses[:2]} == {C.MISSING_CONFIG}
    assert {h.resource for h in hypotheses[:2]} == {d, "ConfigMap/ledger-config"}
    changed = f("ConfigChanged", agent="changes", config_kind="ConfigMap", name="ledger-config", used_by=[d], updated_after_create=True)
    crash = [unavailable(d), f("ContainerWaiting", d, reason="CrashLoopBackOff"),
             f("ContainerTerminated", d, reason="Error", exit_code=1, current=False),
             f("LogSignature", d, agent="logs", signature="config_parse"), changed]
    assert top(crash) == ("BadConfigChange", "ConfigMap/ledger-config")


def test_application_error_after_rollout() -> None:
    d = "Deployment/cart"
    findings = [unavailable(d), f("ContainerWaiting", d, reason="CrashLoopBackOff"),
                f("ContainerTerminated", d, reason="Error", exit_code=2, current=False),
                f("TemplateChange", d, agent="changes", fields=["image"]),
                f("LogSignature", d, agent="logs", signature="panic")]
    assert top(findings) == ("ApplicationError", d)


def test_node_failure() -> None:
    d = "Deployment/api"
    node = Finding(id="n1", agent="workloads", kind="NodeNotReady", summary="", resource=ResourceRef(kind="Node", name="kwok-node-1"),
                   data={"pods": ["api-1"], "reason": "KubeletNotReady"})
    findings = [unavailable(d), f("ContainerNotReady", d, pods=["api-1"]), node]
    assert top(findings) == ("NodeFailure", "Node/kwok-node-1")


def test_rbac_points_at_the_role_missing_the_permission() -> None:
    d = "Deployment/reporter"
    findings = [unavailable(d), f("ContainerWaiting", d, reason="CrashLoopBackOff"),
                f("LogSignature", d, agent="logs", signature="forbidden",
                  detail={"sa": "reporter", "verb": "list", "resource": "pods"}),
                f("RoleBinding", agent="topology", binding="RoleBinding/reporter", role="Role/pod-reader", role_exists=True,
                  subjects=[{"kind": "ServiceAccount", "name": "reporter"}], rules=[{"verbs": ["get"], "resources": ["pods"]}])]
    assert top(findings) == ("RBACDenied", "Role/pod-reader")


def test_history_and_noise_is_no_fault() -> None:
    d = "Deployment/web"
    findings = [f("WorkloadHealthy", d, desired=2, available=2),
                f("ContainerTerminated", d, reason="Error", exit_code=1, current=False, running_now=True, ready_now=True),
                f("Event", d, agent="events", type="Warning", reason="Unhealthy", message="Readiness probe failed: connection refused")]
    assert top(findings) == ("NoFault", "")
    assert rank([], "ns")[0].category == C.NO_FAULT


def test_ranking_ignores_names() -> None:
    """Renaming every object changes nothing but the names in the answer."""
    def scenario(a: str, b: str) -> list[Finding]:
        return [unavailable(a), f("ContainerWaiting", a, reason="CrashLoopBackOff"),
                f("LogSignature", a, agent="logs", signature="connection_refused", host=b.split("/")[1], port=5432),
                unavailable(b), f("ContainerNotReady", b), edge(f"Service/{b.split('/')[1]}", b, "routesTo")]
    first = [(h.category, h.score) for h in rank(scenario("Deployment/checkout", "Deployment/db"), "ns")]
    second = [(h.category, h.score) for h in rank(scenario("Deployment/zz-frontend", "Deployment/aa-store"), "ns")]
    assert first == second


def test_calibration_is_monotone() -> None:
    knots = fit_knots([(0.3, False), (0.4, False), (0.5, True), (0.6, False), (0.8, True), (0.9, True), (0.95, True)], bins=3)
    values = [calibrate(s / 20, knots) for s in range(21)]
    assert values == sorted(values)
    assert 0.0 <= values[0] and values[-1] <= 1.0


def test_calibration_shrinks_toward_the_score() -> None:
    """A suite where every answer is right moves confidences up only part of the way, and
    never to certainty; the map in force is monotone and never claims more than 0.99."""
    pairs = [(0.7 + i / 100, True) for i in range(20)]
    unshrunk = fit_knots(pairs, bins=2)
    shrunk = fit_knots(pairs, bins=2, prior_weight=40)
    assert calibrate(0.75, unshrunk) == 1.0
    assert 0.75 < calibrate(0.75, shrunk) < 0.85
    values = [calibrate(s / 20) for s in range(21)]
    assert values == sorted(values) and values[-1] <= 0.99
