"""NetworkPolicy semantics over pod labels: policies add up, DNS needs port 53."""

from __future__ import annotations

from aisre.kube import netpol

DENY_ALL_INGRESS = ("deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_WEB_TO_DB = ("allow-web", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]})


def test_a_deny_all_blocks_until_another_policy_admits_the_peer() -> None:
    web, db, batch = {"app": "web"}, {"app": "db"}, {"app": "batch"}
    assert netpol.blockers([DENY_ALL_INGRESS], web, db) == [("deny-all", "ingress")]
    assert netpol.blockers([DENY_ALL_INGRESS, ALLOW_WEB_TO_DB], web, db) == []  # policies add up
    # Not admitted by either: the allow-list a person would extend comes first.
    assert netpol.blockers([DENY_ALL_INGRESS, ALLOW_WEB_TO_DB], batch, db)[0] == ("allow-web", "ingress")


def test_an_egress_policy_without_port_53_leaves_its_pods_without_dns() -> None:
    egress_db_only = ("egress", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                                             "ports": [{"port": 5432, "protocol": "TCP"}]}]})
    dns = ("dns", {"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert netpol.blocks_dns([egress_db_only], {"app": "web"}) == ["egress"]
    assert netpol.blocks_dns([egress_db_only, dns], {"app": "web"}) == []
    assert netpol.blocks_dns([egress_db_only], {"app": "other"}) == []  # not selected, not isolated


def test_rule_ports_are_the_pods_ports_not_the_services() -> None:
    web, db = {"app": "web"}, {"app": "db"}
    service_ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    containers = [{"name": "db", "ports": [{"name": "http", "containerPort": 8080}]}]
    ports = netpol.destination_ports(service_ports, containers)
    assert ports == [(8080, "http", "TCP")]

    def allowing(*entries: dict) -> tuple[str, dict]:
        return ("allow", {"podSelector": {"matchLabels": db}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": web}}], "ports": list(entries)}]})

    assert netpol.blockers([allowing({"port": 80})], web, db, ports) == [("allow", "ingress")]  # the Service's port
    # Beside another allow-list that does not name the client, the rule meant for it comes first.
    others = ("from-ingress", {"podSelector": {"matchLabels": db}, "policyTypes": ["Ingress"],
                               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}]})
    assert [name for name, _ in netpol.blockers([others, DENY_ALL_INGRESS, allowing({"port": 80})], web, db, ports)] \
        == ["allow", "from-ingress", "deny-all"]
    assert netpol.blockers([allowing({"port": 8080})], web, db, ports) == []
    assert netpol.blockers([allowing({"port": "http"})], web, db, ports) == []  # by the container port's name
    assert netpol.blockers([allowing({"port": 8000, "endPort": 8100})], web, db, ports) == []
    assert netpol.blockers([allowing({"port": 8080, "protocol": "UDP"})], web, db, ports) == [("allow", "ingress")]
    # No port known (no Service, no declared ports): the peer decides alone, as before.
    assert netpol.blockers([allowing({"port": 80})], web, db) == []
    # A Service with several ports: blocked only when none of them is admitted.
    two = netpol.destination_ports([{"port": 80, "targetPort": 8080}, {"port": 9102, "targetPort": 9102}], [])
    assert two == [(8080, None, "TCP"), (9102, None, "TCP")]
    assert netpol.blockers([allowing({"port": 9102})], web, db, two) == []
