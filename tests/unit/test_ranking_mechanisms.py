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
