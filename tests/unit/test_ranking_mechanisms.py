"""The general mechanisms of ranking, on synthetic evidence: a dependency that refuses its
clients, failures seen only in logs, restarts below the crash-loop threshold, a log that
says what configuration is missing, the relevance of structural defects, and NoFault that
is only as sure as the evidence allows. Each test names its objects arbitrarily."""

from __future__ import annotations

import itertools

from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.ranking.rank import rank

_ids = itertools.count()


def f(kind: str, owner: str | None = None, agent: str = "workloads", **data) -> Finding:
    resource = None
    if owner:
        data["owner"] = owner
        kind_, _, name = owner.partition("/")
        resource = ResourceRef(kind=kind_, name=name, namespace="ns")
    return Finding(id=f"m-{next(_ids)}", agent=agent, kind=kind, summary=kind, resource=resource, data=data)


def edge(src: str, dst: str, relation: str, **data) -> Finding:
    return f("Edge", agent="topology", src=src, dst=dst, relation=relation, **data)


def service(name: str, *ports: int) -> Finding:
    return f("ServicePorts", agent="topology", service=f"Service/{name}", ports=list(ports))


def crashing(owner: str) -> list[Finding]:
    return [f("WorkloadUnavailable", owner, desired=2, available=0, ready=0, updated=2),
            f("ContainerWaiting", owner, reason="CrashLoopBackOff", restarts=5),
            f("ContainerTerminated", owner, reason="Error", exit_code=1, current=False)]


def healthy(owner: str) -> Finding:
    return f("WorkloadHealthy", owner, desired=1, available=1)


def top(findings: list[Finding]) -> tuple[str, str]:
    best = rank(findings, "ns")[0]
    return best.category.value, best.resource


def auth_line(owner: str, host: str | None = None) -> Finding:
    return f("LogSignature", owner, agent="logs", signature="auth_failure", host=host, count=4, recent=2, previous=True,
             sample='FATAL:  password authentication failed for user "app"')


def db_world(client: str, server: str, svc: str) -> list[Finding]:
    return [service(svc, 5432), edge(f"Service/{svc}", server, "routesTo"), edge(client, f"Service/{svc}", "dependsOn", via=["DB_HOST"]),
            healthy(server)]


def test_a_dependency_that_refuses_is_the_root_not_the_client() -> None:
    client, server = "Deployment/ledger", "StatefulSet/ledger-pg"
    findings = crashing(client) + db_world(client, server, "ledger-pg") + [auth_line(client)]
    hypotheses = rank(findings, "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.DEPENDENCY_FAILURE, server)
    assert [link.ref for link in hypotheses[0].chain] == [client, "Service/ledger-pg", server]


def test_the_change_that_made_the_dependency_refuse_wins() -> None:
    client, server = "Deployment/ledger", "StatefulSet/ledger-pg"
    changed = f("ConfigChanged", agent="changes", config_kind="Secret", name="pg-users", used_by=[server])
    findings = crashing(client) + db_world(client, server, "ledger-pg") + [auth_line(client), changed]
    hypotheses = rank(findings, "ns")
    assert (hypotheses[0].category, hypotheses[0].resource) == (C.BAD_CONFIG_CHANGE, "Secret/pg-users")
    assert hypotheses[0].chain[-1].ref == "Secret/pg-users"


def test_a_client_side_change_stays_ahead_of_an_unchanged_dependency() -> None:
    client, server = "Deployment/ledger", "StatefulSet/ledger-pg"
    changed = f("ConfigChanged", agent="changes", config_kind="Secret", name="ledger-creds", used_by=[client])
    findings = crashing(client) + db_world(client, server, "ledger-pg") + [auth_line(client), changed]
    assert top(findings) == ("BadConfigChange", "Secret/ledger-creds")


def test_a_hostless_line_is_matched_by_its_protocol() -> None:
    client, pg, cache = "Deployment/ledger", "StatefulSet/ledger-pg", "Deployment/ledger-cache"
    findings = crashing(client) + db_world(client, pg, "ledger-pg") + [
        service("ledger-cache", 6379), edge("Service/ledger-cache", cache, "routesTo"),
        edge(client, "Service/ledger-cache", "dependsOn", via=["CACHE_URL"]), healthy(cache), auth_line(client)]
    assert top(findings) == ("DependencyFailure", pg)


def test_errors_only_in_logs_follow_the_peer() -> None:
    client, server = "Deployment/storefront", "Deployment/catalog"
    findings = [healthy(client), healthy(server), service("catalog", 80), edge("Service/catalog", server, "routesTo"),
                f("LogSignature", client, agent="logs", signature="timeout", host="catalog", port=80, count=12, recent=3),
                f("NetworkPolicyBlocks", agent="topology", policy="NetworkPolicy/lockdown",
                  blocked=[{"client": client, "server": server, "direction": "ingress"}])]
    assert top(findings) == ("NetworkPolicyBlock", "NetworkPolicy/lockdown")


def test_a_past_burst_of_errors_is_no_fault() -> None:
    client, server = "Deployment/storefront", "Deployment/catalog"
    findings = [healthy(client), healthy(server), service("catalog", 80), edge("Service/catalog", server, "routesTo"),
                f("LogSignature", client, agent="logs", signature="timeout", host="catalog", port=80, count=4, recent=0)]
    assert top(findings) == ("NoFault", "")


def test_oom_kills_below_the_crash_loop_threshold_are_a_fault() -> None:
    d = "Deployment/indexer"
    findings = [healthy(d), f("ContainerTerminated", d, reason="OOMKilled", exit_code=137, current=False, restarts=3,
                              recent=True, running_now=True, ready_now=True)]
    assert top(findings) == ("MemoryLimitTooLow", d)
    old = [healthy(d), f("ContainerTerminated", d, reason="OOMKilled", exit_code=137, current=False, restarts=3, recent=False,
                         running_now=True, ready_now=True)]
    assert top(old) == ("NoFault", "")


def test_liveness_kills_below_the_crash_loop_threshold_are_a_fault() -> None:
    d = "Deployment/quotes"
    findings = [healthy(d),
                f("Event", d, agent="events", type="Warning", reason="Unhealthy", count=6,
                  message="Liveness probe failed: Get \"http://10.1.0.4:8080/healthz\": context deadline exceeded"),
                f("Event", d, agent="events", type="Normal", reason="Killing", count=2,
                  message="Container quotes failed liveness probe, will be restarted")]
    assert top(findings) == ("LivenessProbeFailure", d)


def test_a_log_that_names_missing_config_is_missing_config() -> None:
    d = "Deployment/mailer"
    findings = crashing(d) + [f("LogSignature", d, agent="logs", signature="missing_setting", count=1, recent=1, previous=True,
                                sample="FATAL required environment variable SMTP_HOST is not set")]
    assert top(findings) == ("MissingConfig", d)


def test_a_defect_nothing_depends_on_does_not_outrank_the_failure() -> None:
    d, leftover = "Deployment/billing", "Service/billing-legacy"
    findings = crashing(d) + [
        f("TemplateChange", d, agent="changes", fields=["image"]),
        f("LogSignature", d, agent="logs", signature="panic", count=1, recent=1, previous=True),
        f("ServiceSelectorMatchesNothing", agent="topology", service=leftover, selector={"app": "billing-legacy"}, near=["x"])]
    assert top(findings) == ("ApplicationError", d)
    healthy_ns = [healthy(d), f("ServiceSelectorMatchesNothing", agent="topology", service=leftover,
                                selector={"app": "billing-legacy"}, near=["Deployment/billing"])]
    assert top(healthy_ns) == ("NoFault", "")


def test_a_broken_service_an_ingress_routes_to_matters() -> None:
    svc = "Service/portal"
    findings = [f("ServiceSelectorMatchesNothing", agent="topology", service=svc, selector={"app": "portal-v2"}, near=[]),
                edge("Ingress/portal", svc, "dependsOn", via=["ingress"])]
    assert top(findings) == ("ServiceSelectorMismatch", svc)


def test_unexplained_errors_lower_no_fault() -> None:
    d = "Deployment/reports"
    quiet = rank([healthy(d)], "ns")[0]
    noisy = rank([healthy(d), f("LogTemplates", d, agent="logs", error_lines=9, recent_error_lines=2, lines=20)], "ns")
    assert quiet.category == C.NO_FAULT and quiet.confidence >= 0.85
    no_fault = [h for h in noisy if h.category == C.NO_FAULT][0]
    assert no_fault.confidence < quiet.confidence - 0.1


def test_a_missing_variable_points_at_the_config_it_comes_from() -> None:
    d = "Deployment/notifier"
    said = f("LogSignature", d, agent="logs", signature="missing_setting", count=1, recent=1, previous=True,
             sample="KeyError: 'MESSAGING_SERVICE_ID'")
    env_from = [edge(d, "ConfigMap/notifier-env", "uses", source="envFrom"), edge(d, "Secret/notifier-keys", "uses", source="envFrom")]
    assert top(crashing(d) + env_from + [said]) == ("MissingConfig", "ConfigMap/notifier-env")
    filled = [edge(d, "Secret/notifier-keys", "uses", source="env", env_names=["MESSAGING_SERVICE_ID"])]
    assert top(crashing(d) + filled + [said]) == ("MissingConfig", "Secret/notifier-keys")


def test_a_dependency_down_for_a_cause_of_its_own_yields_to_that_cause() -> None:
    client, server = "Deployment/shop", "Deployment/gateway"
    findings = crashing(client) + crashing(server) + [
        service("gateway", 8080), edge("Service/gateway", server, "routesTo"), edge(client, "Service/gateway", "dependsOn"),
        f("LogSignature", client, agent="logs", signature="connection_refused", host="gateway", port=8080, count=5, recent=2),
        f("LogSignature", server, agent="logs", signature="missing_setting", count=1, recent=1, previous=True,
          sample="required key GATEWAY_TOKEN missing value"),
        edge(server, "Secret/gateway-keys", "uses", source="env", env_names=["GATEWAY_TOKEN"])]
    assert top(findings) == ("MissingConfig", "Secret/gateway-keys")


def test_a_client_sent_to_a_loopback_address_points_at_the_dependency_that_sent_it() -> None:
    client, server = "Deployment/qz-reader", "StatefulSet/qz-broker"
    rollout = f("TemplateChange", server, agent="changes", fields=["env"])
    line = f("LogSignature", client, agent="logs", signature="connection_refused", host=None, port=7001, loopback=True,
             count=6, recent=3, previous=False, sample="connect to 127.0.0.1:7001 failed: Connection refused")
    findings = [healthy(client), healthy(server), service("qz-broker", 7001), edge("Service/qz-broker", server, "routesTo"),
                edge(client, "Service/qz-broker", "dependsOn", via=["BROKERS"]), rollout, line]
    assert top(findings) == (C.BAD_CONFIG_CHANGE.value, server)


def test_an_address_given_by_number_is_resolved_by_its_port() -> None:
    client, server = "Deployment/pw-front", "Deployment/pw-back"
    line = f("LogSignature", client, agent="logs", signature="connection_refused", host=None, port=9311, loopback=False,
             count=6, recent=3, previous=False, sample="dial tcp 10.4.0.9:9311: connect: connection refused")
    broken = f("ServiceSelectorMatchesNothing", agent="topology", service="Service/pw-back", selector={"app": "pw-bak"})
    findings = [healthy(client), healthy(server), service("pw-back", 9311), service("other", 80), broken, line]
    assert top(findings) == (C.SERVICE_SELECTOR_MISMATCH.value, "Service/pw-back")


def test_a_dependency_that_says_a_setting_is_missing_lacks_config_rather_than_has_a_bad_one() -> None:
    client, server = "Deployment/kv-api", "Deployment/kv-gate"
    changed = f("ConfigChanged", agent="changes", config_kind="Secret", name="kv-gate-keys", used_by=[server])
    said = f("LogSignature", server, agent="logs", signature="missing_setting", count=1, recent=1, previous=True,
             sample="fatal: required key GATE_TOKEN missing value")
    refused = f("LogSignature", client, agent="logs", signature="no_servers", host="kv-gate", count=5, recent=2,
                previous=False, sample="call to kv-gate failed: no healthy upstream")
    findings = crashing(server) + [healthy(client), service("kv-gate", 80), edge("Service/kv-gate", server, "routesTo"),
                                   edge(client, "Service/kv-gate", "dependsOn", via=["GATE_URL"]), changed, said, refused]
    assert top(findings) == (C.MISSING_CONFIG.value, "Secret/kv-gate-keys")


def test_a_workload_left_running_another_workloads_program_has_a_bad_command() -> None:
    worker, web = "Deployment/jb-worker", "Deployment/jb-web"
    same = f("RunsSameProgram", worker, agent="changes", other=web, container="main", command_before='["run-jobs"]',
             command_after="null")
    findings = [healthy(worker), healthy(web), same, f("TemplateChange", worker, agent="changes", fields=["command", "image"])]
    assert top(findings) == (C.BAD_COMMAND.value, worker)


def test_a_probe_the_program_answers_as_not_ready_is_not_the_root_of_a_dependency_outage() -> None:
    client, server = "Deployment/mq-api", "StatefulSet/mq-store"

    def world(probe_message: str) -> list[Finding]:
        not_ready = [f("WorkloadUnavailable", server, desired=1, available=0, ready=0, updated=1),
                     f("ContainerNotReady", server, restarts=0),
                     f("Event", server, agent="events", reason="Unhealthy", type="Warning", count=9, message=probe_message)]
        refused = f("LogSignature", client, agent="logs", signature="connection_refused", host="mq-store", count=5,
                    recent=2, previous=False, sample="dial mq-store:5672: connection refused")
        return crashing(client) + not_ready + [service("mq-store", 5672), edge("Service/mq-store", server, "routesTo"),
                                               edge(client, "Service/mq-store", "dependsOn", via=["AMQP_URL"]), refused]

    assert top(world("Readiness probe failed: HTTP probe failed with statuscode: 503")) == (C.DEPENDENCY_FAILURE.value, server)
    # A probe aimed where nothing listens is the dependency's own fault.
    aimed_at_nothing = 'Readiness probe failed: Get "http://10.0.0.4:8081/ready": dial tcp 10.0.0.4:8081: connect: connection refused'
    assert top(world(aimed_at_nothing)) == (C.READINESS_PROBE_FAILURE.value, server)


def test_a_workload_at_zero_whose_twin_serves_is_not_a_fault() -> None:
    canary, primary = "Deployment/rk-web", "Deployment/rk-web-main"
    zero = f("WorkloadScaledToZero", canary, desired=0, available=0)
    changed = f("ReplicasChanged", canary, agent="changes", replicas=0, manager="rollout-controller")
    findings = [zero, changed, healthy(primary), service("rk-web-canary", 80), edge("Service/rk-web-canary", canary, "routesTo")]
    assert top(findings) == (C.SCALED_TO_ZERO.value, canary)  # alone, zero replicas is the fault
    twins = [edge(canary, primary, "twinOf"), edge(primary, canary, "twinOf")]
    assert top(findings + twins) == (C.NO_FAULT.value, "")  # its twin runs the same program and serves


def test_a_failed_run_that_a_later_run_superseded_is_history() -> None:
    job = "Job/nightly-export-29110"
    failed = [f("ContainerTerminated", job, reason="Error", exit_code=1, current=True),
              f("LogSignature", job, agent="logs", signature="connection_refused", host="exports-api", count=3, recent=2,
                previous=False, sample="connect to exports-api:8080: connection refused")]
    assert top(failed) != (C.NO_FAULT.value, "")
    superseded = f("JobSuperseded", job, by="Job/nightly-export-29111")
    assert top(failed + [superseded, healthy("Deployment/exports-api")]) == (C.NO_FAULT.value, "")


def test_errors_to_a_peer_that_ended_are_history_not_a_dependency_failure() -> None:
    client, server = "Deployment/ct-api", "StatefulSet/ct-cache"
    world = [healthy(client), healthy(server), service("ct-cache", 6379), edge("Service/ct-cache", server, "routesTo"),
             edge(client, "Service/ct-cache", "dependsOn", via=["CACHE_URL"])]
    burst = f("LogSignature", client, agent="logs", signature="no_servers", host="ct-cache", count=8, recent=0, previous=False,
              sample="READONLY You can't write against a read only replica.")
    assert top(world + [burst]) == (C.NO_FAULT.value, "")
    lasting = f("LogSignature", client, agent="logs", signature="no_servers", host="ct-cache", count=8, recent=3,
                previous=False, sample="READONLY You can't write against a read only replica.")
    assert top(world + [lasting]) == (C.DEPENDENCY_FAILURE.value, server)


def test_a_client_whose_changed_config_names_a_host_that_does_not_exist_has_the_bad_change() -> None:
    client = "Deployment/zq-checkout"
    rollout = f("TemplateChange", client, agent="changes", fields=["env"])
    line = f("LogSignature", client, agent="logs", signature="dns_failure", host="zq-paymnt", count=5, recent=2,
             previous=False, sample="dial tcp: lookup zq-paymnt on 10.96.0.10:53: no such host")
    findings = [healthy(client), service("zq-payment", 50051), rollout, line]
    assert top(findings) == (C.BAD_CONFIG_CHANGE.value, client)


def test_a_client_dialing_a_port_its_service_does_not_serve_has_the_bad_config() -> None:
    client, server = "Deployment/yk-orders", "StatefulSet/yk-db"
    changed = f("ConfigChanged", agent="changes", config_kind="ConfigMap", name="yk-orders-env", used_by=[client])
    line = f("LogSignature", client, agent="logs", signature="connection_refused", host="yk-db", port=5433, count=6,
             recent=3, previous=False, sample="connect to yk-db:5433 failed: Connection refused")
    findings = crashing(client) + db_world(client, server, "yk-db") + [changed, line]
    assert top(findings) == (C.BAD_CONFIG_CHANGE.value, "ConfigMap/yk-orders-env")


def test_a_line_without_a_host_is_matched_to_the_dependency_its_words_name() -> None:
    client, ads, cart = "Deployment/vx-front", "Deployment/vx-adverts", "Deployment/vx-basket"
    line = f("LogSignature", client, agent="logs", signature="peer_error", host=None, count=7, recent=3, previous=False,
             sample="failed to retrieve adverts: rpc error: code = Internal desc = flag enabled")
    rollout = f("TemplateChange", ads, agent="changes", fields=["image"])
    findings = [healthy(client), healthy(ads), healthy(cart), service("vx-adverts", 9555), service("vx-basket", 7070),
                edge("Service/vx-adverts", ads, "routesTo"), edge("Service/vx-basket", cart, "routesTo"),
                edge(client, "Service/vx-adverts", "dependsOn", via=["AD_ADDR"]),
                edge(client, "Service/vx-basket", "dependsOn", via=["CART_ADDR"]), rollout, line]
    assert top(findings)[1] == ads


def _labels(owner: str, **labels: str) -> Finding:
    return f("PodLabels", owner, agent="topology", labels=labels)


def test_a_policy_between_a_client_and_the_peer_its_logs_name_is_found() -> None:
    client, server = "Deployment/nb-shipper", "StatefulSet/nb-store"
    policy = f("NetworkPolicy", agent="topology", policy="NetworkPolicy/nb-store-in", allows_dns=True,
               spec={"podSelector": {"matchLabels": {"app": "nb-store"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "nb-ui"}}}]}]})
    line = f("LogSignature", client, agent="logs", signature="timeout", host="nb-store", port=9200, count=9, recent=4,
             previous=False, sample="connect to nb-store:9200 timed out")
    findings = [healthy(client), healthy(server), service("nb-store", 9200), edge("Service/nb-store", server, "routesTo"),
                _labels(client, app="nb-shipper"), _labels(server, app="nb-store"), policy, line]
    assert top(findings) == (C.NETWORK_POLICY_BLOCK.value, "NetworkPolicy/nb-store-in")


def test_names_that_do_not_resolve_behind_an_egress_policy_without_dns_point_at_it() -> None:
    client = "Deployment/dq-api"
    policy = f("NetworkPolicy", agent="topology", policy="NetworkPolicy/dq-egress", allows_dns=False,
               spec={"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 5432}]}]})
    line = f("LogSignature", client, agent="logs", signature="dns_failure", host="dq-db", count=9, recent=4, previous=False,
             sample="getaddrinfo EAI_AGAIN dq-db")
    findings = crashing(client) + db_world(client, "StatefulSet/dq-db", "dq-db") + [_labels(client, app="dq-api"), policy, line]
    assert top(findings) == (C.NETWORK_POLICY_BLOCK.value, "NetworkPolicy/dq-egress")


def test_refused_by_a_service_whose_pods_are_healthy_is_a_port_that_reaches_no_listener() -> None:
    client, server = "Deployment/hc-gw", "Deployment/hc-site"
    line = f("LogSignature", client, agent="logs", signature="connection_refused", host="hc-site", port=80, count=9,
             recent=4, previous=False, sample="connect() failed (111: Connection refused) while connecting to upstream hc-site:80")
    findings = [healthy(client), healthy(server), service("hc-site", 80), edge("Service/hc-site", server, "routesTo"), line]
    assert top(findings) == (C.SERVICE_PORT_MISMATCH.value, "Service/hc-site")


def test_a_program_that_says_its_disk_is_full_points_at_its_volume() -> None:
    db, client = "StatefulSet/df-pg", "Deployment/df-app"
    full = f("LogSignature", db, agent="logs", signature="disk_full", count=2, recent=1, previous=True,
             sample="PANIC: could not write to file \"pg_wal/xlogtemp.52\": No space left on device")
    findings = crashing(db) + [edge(db, "PersistentVolumeClaim/data-df-pg-0", "mounts"), full,
                               service("df-pg", 5432), edge("Service/df-pg", db, "routesTo"),
                               edge(client, "Service/df-pg", "dependsOn", via=["PGHOST"])] + crashing(client)
    assert top(findings) == (C.STORAGE_FAILURE.value, "PersistentVolumeClaim/data-df-pg-0")


def test_a_program_that_rejects_its_command_line_has_a_bad_command() -> None:
    owner = "Deployment/tl-render"
    usage = f("LogSignature", owner, agent="logs", signature="bad_args", count=1, recent=1, previous=True,
              sample="flag provided but not defined: -config /etc/tl/config.yaml")
    assert top(crashing(owner) + [usage]) == (C.BAD_COMMAND.value, owner)


def test_a_peer_that_answers_in_another_protocol_is_a_service_port_that_reaches_the_wrong_listener() -> None:
    client, server = "Deployment/gp-cart", "Deployment/gp-price"
    line = f("LogSignature", client, agent="logs", signature="wrong_listener", host="gp-price", port=50051, count=9,
             recent=4, previous=False, sample="rpc error: code = Unimplemented desc = unexpected HTTP status code received from server: 404")
    findings = [healthy(client), healthy(server), service("gp-price", 50051), edge("Service/gp-price", server, "routesTo"),
                edge(client, "Service/gp-price", "dependsOn", via=["PRICE_ADDR"]), line]
    assert top(findings) == (C.SERVICE_PORT_MISMATCH.value, "Service/gp-price")


def test_a_changed_secret_read_only_if_present_leaves_a_setting_missing() -> None:
    owner = "Deployment/op-pay"
    changed = f("ConfigChanged", agent="changes", config_kind="Secret", name="op-pay-keys", used_by=[owner])
    uses = edge(owner, "Secret/op-pay-keys", "uses", source="env", env_names=["PSP_KEY"], optional_keys=["psp-key"])
    assert top(crashing(owner) + [changed, uses]) == (C.MISSING_CONFIG.value, "Secret/op-pay-keys")
    required = edge(owner, "Secret/op-pay-keys", "uses", source="env", env_names=["PSP_KEY"], optional_keys=[])
    assert top(crashing(owner) + [changed, required]) == (C.BAD_CONFIG_CHANGE.value, "Secret/op-pay-keys")


def test_credentials_presented_and_refused_put_the_pull_secret_first() -> None:
    def pulling(owner: str, **pull) -> list[Finding]:
        return [f("ContainerWaiting", owner, reason="ImagePullBackOff",
                  message='failed to fetch oauth token: unexpected status: 401 Unauthorized'),
                f("WorkloadUnavailable", owner, desired=2, available=0, ready=0, updated=2),
                *([f("PullSecrets", owner, agent="topology", **pull)] if pull else [])]

    # A Secret the pods present, unchanged, refused by the registry: its credentials are stale.
    assert top(pulling("Deployment/q7", secrets=["robot-x"], existing=["robot-x"])) == ("ImagePullAuth", "Secret/robot-x")
    # No credentials presented (or the Secret is not there): the workload's pull configuration.
    assert top(pulling("Deployment/q7")) == ("ImagePullAuth", "Deployment/q7")
    assert top(pulling("Deployment/q7", secrets=["robot-x"], existing=[])) == ("ImagePullAuth", "Deployment/q7")
    # A 403 to credentials presented, nothing about the pull changed: an expired token is a 403 too.
    forbidden = pulling("Deployment/q7", secrets=["robot-x"], existing=["robot-x"])
    forbidden[0] = f("ContainerWaiting", "Deployment/q7", reason="ImagePullBackOff",
                     message="unexpected status from HEAD request to https://r.example/v2/q7/manifests/1: 403 Forbidden")
    assert top(forbidden) == ("ImagePullAuth", "Secret/robot-x")


def test_requests_a_peer_rejects_point_at_the_peers_change_only_if_it_changed() -> None:
    def world(changed: bool) -> list[Finding]:
        found = [service("q7", 80), edge("Service/q7", "Deployment/q7", "routesTo"),
                 edge("Deployment/c3", "Service/q7", "dependsOn", via=["Q7_URL"]), healthy("Deployment/q7"),
                 healthy("Deployment/c3"),
                 f("LogSignature", "Deployment/c3", agent="logs", signature="peer_rejects", host="q7", count=4, recent=3,
                   previous=False, sample="HTTP 400 Bad Request from http://q7/v1/x")]
        if changed:
            found.append(f("ConfigChanged", agent="changes", config_kind="ConfigMap", name="q7-env", used_by=["Deployment/q7"]))
        return found

    assert top(world(True)) == ("BadConfigChange", "ConfigMap/q7-env")
    ranked = rank(world(False), "ns")
    assert not any(h.category == C.DEPENDENCY_FAILURE and h.confidence >= 0.6 for h in ranked)


def test_an_idle_worker_at_zero_that_nobody_uses_is_not_a_fault() -> None:
    def world(*extra: Finding) -> list[Finding]:
        return [f("WorkloadScaledToZero", "Deployment/w9", desired=0), service("w9-metrics", 9102),
                edge("Service/w9-metrics", "Deployment/w9", "routesTo"), healthy("Deployment/a1"), *extra]

    assert top(world())[0] == "NoFault"
    # Someone set the zero just now, or a client depends on what it serves: it hurts.
    assert top(world(f("ReplicasChanged", "Deployment/w9", agent="changes"))) == ("ScaledToZero", "Deployment/w9")
    assert top(world(edge("Deployment/a1", "Service/w9-metrics", "dependsOn", via=["W9_URL"]))) == \
        ("ScaledToZero", "Deployment/w9")


def test_a_container_that_keeps_exiting_refuses_its_probes_without_the_probe_being_wrong() -> None:
    probe = f("Event", "StatefulSet/k4", agent="events", reason="Unhealthy", type="Warning", count=5,
              message="Readiness probe failed: dial tcp 10.0.0.71:9092: connect: connection refused")
    ranked = rank([*crashing("StatefulSet/k4"), probe, f("ContainerNotReady", "StatefulSet/k4")], "ns")
    assert ranked[0].category != C.READINESS_PROBE_FAILURE
    running = [f("WorkloadUnavailable", "StatefulSet/k4", desired=2, available=0, ready=0, updated=2), probe,
               f("ContainerNotReady", "StatefulSet/k4")]
    assert top(running) == ("ReadinessProbeFailure", "StatefulSet/k4")  # running and refusing: the probe misses


def test_every_pod_ready_while_availability_waits_is_no_outage() -> None:
    rolling = [f("WorkloadUnavailable", "StatefulSet/c5", desired=3, available=2, ready=3, updated=1), healthy("Deployment/a1")]
    assert top(rolling)[0] == "NoFault"
    errored = [f("WorkloadUnavailable", "Deployment/b2", desired=3, available=0, ready=0, updated=3),
               f("ContainerNotReady", "Deployment/b2"),
               f("Event", "Deployment/b2", agent="events", reason="Unhealthy", type="Warning", count=31,
                 message='Readiness probe errored: strconv.Atoi: parsing "http": invalid syntax')]
    assert top(errored) == ("ReadinessProbeFailure", "Deployment/b2")  # the kubelet could not run the probe


def test_refusals_from_before_the_server_was_up_are_a_start_up_race() -> None:
    """A client started with its server is refused until the server listens; refusals that
    all came shortly before the server's first pod became Ready, and none since, say
    nothing about the Service's port. Refusals while the server serves still do."""
    client, server = "Deployment/partner-sync", "Deployment/partner-gateway"

    def world(last_refusal: str) -> list[Finding]:
        return [service("partner-gateway", 443), edge("Service/partner-gateway", server, "routesTo"),
                edge(client, "Service/partner-gateway", "dependsOn"), healthy(client),
                f("WorkloadHealthy", server, desired=1, available=1, serving_since="2026-12-07T03:04:59+00:00"),
                f("LogSignature", client, agent="logs", signature="connection_refused", host="partner-gateway", port=443,
                  count=1, recent=1, last_at=last_refusal)]

    assert top(world("2026-12-07T03:04:57")) == ("NoFault", "")
    assert top(world("2026-12-07T03:05:02")) == ("NoFault", "")  # Ready, but kube-proxy not there yet
    assert top(world("2026-12-07T03:05:30")) == ("ServicePortMismatch", "Service/partner-gateway")
    assert top(world("2026-02-17T09:02:12")) == ("ServicePortMismatch", "Service/partner-gateway")  # not a start-up
    # The server's rollout now crash-loops its new pod beside the old one that serves: that is
    # the server's own fault, and the client's start-up refusals do not make it a dependency's.
    rollout = world("2026-12-07T03:04:57") + [
        f("ContainerWaiting", server, reason="CrashLoopBackOff", restarts=4),
        f("LogSignature", server, agent="logs", signature="python_exception", count=6, recent=6, previous=True,
          sample="ModuleNotFoundError: No module named 'gateway.velocity'"),
        f("TemplateChange", server, agent="changes", fields=["env", "command"])]
    assert top(rollout)[1] == server and top(rollout)[0] != "DependencyFailure"


def test_a_canary_behind_its_own_service_does_not_stand_in_for_the_track_users_reach() -> None:
    stable, canary = "Deployment/pw-hook", "Deployment/pw-hook-canary"
    zero = f("WorkloadScaledToZero", stable, desired=0, available=0)
    findings = [zero, healthy(canary), service("pw-hook", 8080), service("pw-hook-canary", 8080),
                edge("Service/pw-hook", stable, "routesTo"), edge("Service/pw-hook-canary", canary, "routesTo"),
                edge(stable, canary, "twinOf"), edge(canary, stable, "twinOf")]
    used = [edge("Ingress/pw-hook", "Service/pw-hook", "dependsOn", via=["ingress"])]
    assert top(findings + used) == (C.SCALED_TO_ZERO.value, stable)
    # The same pair where the canary also stands behind the Service users reach: by design.
    shared = [edge("Service/pw-hook", canary, "routesTo")]
    assert top(findings + used + shared) == (C.NO_FAULT.value, "")


def test_a_service_whose_workload_was_deleted_is_a_lost_dependency_not_a_selector_typo() -> None:
    client = "Deployment/gw"
    findings = [f("ServiceSelectorMatchesNothing", agent="topology", service="Service/quota-svc", selector={"app": "quota"}),
                edge(client, "Service/quota-svc", "dependsOn", via=["address"]), service("quota-svc", 8081),
                f("ServingErrors", client, agent="logs", errors=4, requests=5), healthy(client)]
    assert top(findings)[0] == C.SERVICE_SELECTOR_MISMATCH.value
    deleted = f("WorkloadDeleted", agent="events", workload="Deployment/quota", name="quota", last="2026-01-01T00:00:00Z")
    assert top(findings + [deleted]) == (C.DEPENDENCY_FAILURE.value, "Service/quota-svc")


def test_a_peer_only_guessed_from_a_lines_wording_is_a_weak_lead_while_it_looks_healthy() -> None:
    client, server = "Deployment/edge", "Deployment/basket"
    line = f("LogSignature", client, agent="logs", signature="peer_error", host=None, port=None, count=4, recent=2,
             previous=False, sample='"GET /api/basket HTTP/1.1" 500 - 0 0 1')
    findings = [line, healthy(client), healthy(server), service("basket", 8080), edge("Service/basket", server, "routesTo"),
                edge(client, "Service/basket", "dependsOn", via=["address"]), service("other", 9000),
                edge(client, "Service/other", "dependsOn", via=["address"])]
    guessed = next(h for h in rank(findings, "ns") if h.resource == server)
    named = f("LogSignature", client, agent="logs", signature="peer_error", host="basket", port=8080, count=4, recent=2,
              previous=False, sample="GET http://basket:8080/api 500")
    confident = next(h for h in rank(findings + [named], "ns") if h.resource == server)
    assert guessed.confidence < confident.confidence


def test_of_several_roles_bound_and_none_granting_the_one_the_refused_line_speaks_of_comes_first() -> None:
    owner = "Deployment/rotor"
    line = f("LogSignature", owner, agent="logs", signature="forbidden", count=3, recent=2, previous=False,
             detail={"sa": "rotor", "verb": "get", "resource": "leases"},
             sample='E0318 leaderelection.go:332] error retrieving resource lock: leases "x" is forbidden')

    def binding(name: str, resources: list[str]) -> Finding:
        return f("RoleBinding", agent="topology", binding=f"RoleBinding/{name}", role=f"Role/{name}", role_exists=True,
                 subjects=[{"kind": "ServiceAccount", "name": "rotor"}],
                 rules=[{"apiGroups": [""], "resources": resources, "verbs": ["get", "list"]}])

    findings = [line, healthy(owner), binding("rotor", ["secrets"]), binding("rotor-leader-election", ["configmaps"])]
    assert top(findings) == (C.RBAC_DENIED.value, "Role/rotor-leader-election")


def test_a_batch_run_whose_memory_climbs_to_its_limit_needs_a_bigger_limit_not_a_leak_fix() -> None:
    def world(owner: str) -> list[Finding]:
        return [f("WorkloadUnavailable", owner, desired=1, available=0, ready=0, updated=1),
                f("ContainerTerminated", owner, reason="OOMKilled", exit_code=137, current=True),
                f("LogMemoryGrowing", owner, agent="logs", field="rss_mb", first=300, last=1900, readings=6)]

    assert top(world("Deployment/feeder")) == (C.MEMORY_LEAK.value, "Deployment/feeder")
    assert top(world("Job/feeder-batch")) == (C.MEMORY_LIMIT_TOO_LOW.value, "Job/feeder-batch")


def test_an_error_a_used_peer_logs_in_the_same_words_points_at_that_peers_change() -> None:
    def world(uses_it: bool) -> list[Finding]:
        found = [service("b9", 6432), edge("Service/b9", "Deployment/b9", "routesTo"), healthy("Deployment/b9"),
                 healthy("Deployment/a4"),
                 f("ConfigChanged", agent="changes", config_kind="ConfigMap", name="b9-ini", used_by=["Deployment/b9"]),
                 f("LogSignature", "Deployment/a4", agent="logs", signature="peer_rejects", host=None, count=5, recent=4,
                   previous=False, echo="Deployment/b9", sample="ERROR: widgets may not be frobbed in quiet mode")]
        if uses_it:
            found.append(edge("Deployment/a4", "Service/b9", "dependsOn", via=["B9_URL"]))
        return found

    assert top(world(True)) == ("BadConfigChange", "ConfigMap/b9-ini")
    # The same words from a program the client does not use are no lead at all.
    assert not any(h.resource in ("ConfigMap/b9-ini", "Deployment/b9") for h in rank(world(False), "ns"))


def test_a_probe_that_cannot_run_as_written_outranks_the_new_image_it_came_with() -> None:
    d = "Deployment/feed"
    rollout = f("TemplateChange", d, agent="changes", fields=["image"])
    errors = f("LogTemplates", d, agent="logs", error_lines=3, recent_error_lines=1, lines=12)
    killed = [f("WorkloadUnavailable", d, desired=3, available=1, ready=1, updated=1),
              f("ContainerWaiting", d, reason="CrashLoopBackOff", restarts=4),
              f("ContainerTerminated", d, reason="Error", exit_code=143, current=False),
              f("Event", d, agent="events", type="Normal", reason="Killing", count=4,
                message="Container feed failed liveness probe, will be restarted")]
    gone = f("Event", d, agent="events", type="Warning", reason="Unhealthy", count=9,
             message='Liveness probe errored: exec: "wget": executable file not found in $PATH: unknown')
    assert top([rollout, errors, *killed, gone]) == ("LivenessProbeFailure", d)
    # The same kills with a probe that runs and times out: the new version may hang; no lead either way.
    slow = gone.model_copy(update={"data": {**gone.data, "message": "Liveness probe failed: context deadline exceeded"}})
    assert top([rollout, errors, *killed, slow]) == ("ApplicationError", d)
    # A readiness probe the same rollout changed, which the program rejects (4xx), is the probe.
    changed = f("TemplateChange", d, agent="changes", fields=["image", "readinessProbe"])
    refused = f("Event", d, agent="events", type="Warning", reason="Unhealthy", count=7,
                message="Readiness probe failed: HTTP probe failed with statuscode: 401")
    not_ready = [f("WorkloadUnavailable", d, desired=3, available=3, ready=3, updated=1), f("ContainerNotReady", d)]
    assert top([changed, errors, *not_ready, refused]) == ("ReadinessProbeFailure", d)


def test_a_leak_the_program_reports_near_its_limit_is_a_leak() -> None:
    d = "Deployment/gateway"
    near = f("MemoryNearLimit", d, agent="metrics", ratio=0.93, growing=False, values=[9.1e8, 9.3e8])
    assert top([healthy(d), near])[0] == "MemoryLimitTooLow"
    detector = f("LogSignature", d, agent="logs", signature="leak", count=2, recent=1, previous=False,
                 sample="LEAK: ByteBuf.release() was not called before it's garbage-collected.")
    assert top([healthy(d), near, detector]) == ("MemoryLeak", d)
    oom = f("ContainerTerminated", d, reason="OOMKilled", exit_code=137, current=False)
    looping = f("ContainerWaiting", d, reason="CrashLoopBackOff", restarts=3)
    assert top([oom, looping])[0] == "MemoryLimitTooLow"
    assert top([oom, looping, detector]) == ("MemoryLeak", d)


def test_a_service_that_matches_nothing_matters_when_a_healthy_user_cannot_reach_it() -> None:
    web, svc = "Deployment/shop-web", "Service/catalog-search"
    broken = f("ServiceSelectorMatchesNothing", agent="topology", service=svc, selector={"release": "old"},
               near=["StatefulSet/search"])
    world = [healthy(web), healthy("StatefulSet/search"), service("catalog-search", 7700), broken,
             edge(web, svc, "dependsOn", via=["SEARCH_URL"])]
    assert top(world) == ("NoFault", "")  # a user that does not complain: a finding for the report
    # Refused once, a few lines before its last (a health check answered since): it still cannot reach it.
    refused = f("LogSignature", web, agent="logs", signature="connection_refused", host=None, port=7700, count=1, recent=0,
                previous=False, sample="Error: connect ECONNREFUSED 10.96.0.40:7700")
    assert top([*world, refused]) == ("ServiceSelectorMismatch", svc)
    elsewhere = refused.model_copy(update={"data": {**refused.data, "port": 5432}})  # another peer's port: no lead
    assert top([*world, elsewhere])[0] != "ServiceSelectorMismatch"
