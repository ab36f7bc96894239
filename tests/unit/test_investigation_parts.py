"""Pure parts of an investigation: template diffs, selectors, the plan, recommended
actions, and the Markdown report."""

from __future__ import annotations

from aisre.agents.changes import diff_templates
from aisre.api.evidence import Finding
from aisre.api.taxonomy import ActionType, AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.scope import Scope, labels_match
from aisre.operator.planner import plan
from aisre.operator.recommend import recommend
from aisre.report import render_investigation


def _template(image: str, env: dict[str, str], probe_path: str = "/healthz") -> dict:
    return {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{
        "name": "app", "image": image, "env": [{"name": k, "value": v} for k, v in env.items()],
        "readinessProbe": {"httpGet": {"path": probe_path, "port": 8080}}}]}}


def test_template_diff_names_the_changed_fields() -> None:
    before = _template("r/app:1", {"A": "1"})
    after = _template("r/app:2", {"A": "2"}, "/ready")
    changes = diff_templates(before, after)
    assert set(changes) == {"containers[app].image", "containers[app].env", "containers[app].readinessProbe"}
    assert changes["containers[app].image"] == {"before": "r/app:1", "after": "r/app:2"}
    assert diff_templates(before, before) == {}


def test_label_selector_semantics() -> None:
    labels = {"app": "web", "tier": "front"}
    assert labels_match({}, labels)
    assert labels_match({"matchLabels": {"app": "web"}}, labels)
    assert not labels_match({"matchLabels": {"app": "api"}}, labels)
    assert labels_match({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}, labels)
    assert not labels_match({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels)
    assert labels_match({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, labels)
    assert not labels_match(None, labels)


def test_plan_drops_logs_when_nothing_started_and_plans_metrics_only_with_prometheus() -> None:
    pending = Scope(namespace="ns", description="namespace", pods=[{"status": {"phase": "Pending"}}])
    planned, skipped = plan(None, pending)
    assert AgentName.LOGS not in {p.name for p in planned} and AgentName.LOGS in skipped
    running = Scope(namespace="ns", description="namespace",
                    pods=[{"status": {"containerStatuses": [{"state": {"running": {}}}]}}])
    planned, skipped = plan(["workloads", "metrics"], running)
    assert [p.name for p in planned] == [AgentName.WORKLOADS]
    assert "no Prometheus configured" in skipped[AgentName.METRICS]
    planned, skipped = plan(None, running)
    assert AgentName.METRICS not in {p.name for p in planned}
    planned, skipped = plan(None, running, metrics=True)
    assert AgentName.METRICS in {p.name for p in planned} and AgentName.METRICS not in skipped


def test_recommendations_come_from_the_catalog() -> None:
    change = Finding(id="c1", agent="changes", kind="TemplateChange", summary="", data={"owner": "Deployment/web", "fields": ["image"]})
    actions = recommend(C.BAD_IMAGE, "Deployment/web", "ns", [change], ["c1"])
    assert [a.type for a in actions] == [ActionType.ROLLBACK.value]
    assert actions[0].target.name == "web" and actions[0].evidence_ids == ["c1"]
    oom = Finding(id="o1", agent="workloads", kind="ContainerTerminated", summary="",
                  data={"owner": "Deployment/web", "reason": "OOMKilled", "container": "app"})
    actions = recommend(C.MEMORY_LIMIT_TOO_LOW, "Deployment/web", "ns", [oom], ["o1"])
    assert actions[0].type == ActionType.SET_RESOURCES.value and actions[0].parameters["container"] == "app"
    assert recommend(C.NODE_FAILURE, "Node/n1", "ns", [], [])[0].target.namespace is None
    assert recommend(C.NO_FAULT, "", "ns", [], []) == []
    # Without a rollout to undo, a rollback is not offered.
    assert recommend(C.APPLICATION_ERROR, "Deployment/web", "ns", [], []) == []


def test_report_renders_status_with_evidence_ids() -> None:
    obj = {
        "metadata": {"name": "inv", "namespace": "shop"},
        "spec": {"target": {"kind": "Deployment", "name": "web"}, "question": "why?"},
        "status": {
            "state": "Completed", "target": "Deployment/web",
            "rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.93,
                          "summary": "the image cannot be pulled"},
            "hypotheses": [{"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.93,
                            "summary": "the image | cannot be pulled", "evidenceIds": ["wor-1"]}],
            "evidence": [{"id": "wor-1", "agent": "workloads", "kind": "ContainerWaiting", "summary": "ImagePullBackOff"}],
            "agents": [{"name": "workloads", "status": "SUCCESS", "latencySeconds": 0.01, "findings": 1, "message": ""}],
        },
    }
    text = render_investigation(obj)
    assert "# Investigation shop/inv" in text
    assert "**BadImage** on `Deployment/web` (confidence 0.93)" in text
    assert "| 1 | BadImage | Deployment/web | 0.93 | wor-1 | the image \\| cannot be pulled |" in text
    assert "| wor-1 | workloads | ContainerWaiting | ImagePullBackOff |" in text


def test_config_values_name_dependencies_only_as_hosts() -> None:
    from aisre.agents.base import mentions_host as _mentions

    assert _mentions("DATABASE_URL", "postgresql://orders@orders-db:5432/orders", "orders-db", "shop")
    assert not _mentions("DATABASE_URL", "postgresql://orders@orders-db:5432/orders", "orders", "shop")
    assert not _mentions("POSTGRES_DB", "orders", "orders", "shop")
    assert _mentions("REDIS_HOST", "redis-cache", "redis-cache", "shop")
    assert _mentions("REDIS_ADDR", "redis-cache:6379", "redis-cache", "shop")
    assert _mentions("UPSTREAMS", "http://cart.shop.svc.cluster.local/api", "cart", "shop")
    assert _mentions("ARG", "--broker=events-broker:9092", "events-broker", "shop")
    assert not _mentions("GREETING", "welcome to the cart", "cart", "shop")


def test_a_mounted_config_file_names_its_hosts_in_its_own_settings() -> None:
    from aisre.agents.topology import _config_pairs

    envoy = "clusters:\n- endpoints: [{address: {socket_address: {address: quota, port_value: 8081}}}]\n"
    pairs = _config_pairs({"envoy.yaml": envoy, "app.properties": "cache.host = \"sessions\"\ngreeting=welcome\n"})
    assert ("address", "quota") in pairs and ("cache.host", "sessions") in pairs
    assert ("envoy.yaml", envoy) in pairs  # the file itself, as before


async def test_a_failing_or_slow_agent_costs_only_its_evidence(monkeypatch) -> None:
    import asyncio

    from aisre.operator import investigation

    async def broken(context):
        raise RuntimeError("agent bug")

    async def slow(context):
        await asyncio.sleep(5)

    monkeypatch.setitem(investigation.AGENTS, AgentName.LOGS, broken)
    monkeypatch.setitem(investigation.AGENTS, AgentName.EVENTS, slow)
    failed = await investigation.run_agent(AgentName.LOGS, None, deadline=1.0)
    assert failed.status == "ERROR" and "agent bug" in failed.message
    timed_out = await investigation.run_agent(AgentName.EVENTS, None, deadline=0.2)
    assert timed_out.status == "ERROR" and "timed out after 0.2 s" in timed_out.message
    assert timed_out.latency_seconds < 1.0


def test_a_rollout_that_makes_two_workloads_run_one_program_is_seen() -> None:
    from aisre.agents.changes import same_program

    def template(image: str, command: list[str] | None = None) -> dict:
        container = {"name": "main", "image": image, **({"command": command} if command else {})}
        return {"spec": {"containers": [container]}}

    web = ("Deployment/web", template("registry.local/app:2.0"))
    before, after = template("registry.local/app:1.9", ["run-jobs"]), template("registry.local/app:2.0")
    assert [(c, o) for c, o, *_ in same_program(before, after, [web])] == [("main", "Deployment/web")]
    # A new image for both, each keeping its own command, is an ordinary release.
    assert same_program(before, template("registry.local/app:2.0", ["run-jobs"]), [web]) == []
    # Two names for one program from the start (a canary, blue/green) is not a change.
    assert same_program(template("registry.local/app:1.9"), after, [web]) == []


def test_an_env_change_of_digests_only_is_a_restart_not_a_config_change() -> None:
    def template(env: list[dict[str, str]]) -> dict:
        return {"spec": {"containers": [{"name": "w", "image": "a", "env": env}]}}

    base = [{"name": "MODE", "value": "fast"}]
    checksum = {"name": "STAMP_W_CONFIGMAP", "value": "4c1f0d8e2b7a9e35c6d1f0a8b2e4c7d9f1a3b5c6"}
    changes = diff_templates(template(base), template(base + [checksum]))
    assert set(changes) == {"restartedAt"} and "STAMP_W_CONFIGMAP" in changes["restartedAt"]["via"]
    # A digest changed alongside a real setting: the env changed.
    changed = diff_templates(template(base), template([{"name": "MODE", "value": "slow"}, checksum]))
    assert set(changed) == {"containers[w].env"}


def test_an_object_of_a_list_already_read_is_answered_without_a_round_trip() -> None:
    import asyncio

    import httpx

    from aisre.kube.reader import ClusterReader

    paths: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/deployments"):
            return httpx.Response(200, json={"items": [{"metadata": {"name": "web", "labels": {"app": "web"}}}],
                                             "metadata": {}})
        return httpx.Response(404, json={"message": "not found"})

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve), base_url="https://api") as client:
            reader = ClusterReader(client)
            assert await reader.get("deployments", "web", "ns") is None  # nothing listed yet: asked
            await reader.list("deployments", "ns")
            assert (await reader.get("deployments", "web", "ns"))["metadata"]["labels"] == {"app": "web"}
            assert await reader.get("deployments", "gone", "ns") is None
            await reader.get("deployments", "web", "other")  # another namespace: asked

    asyncio.run(scenario())
    assert paths == ["/apis/apps/v1/namespaces/ns/deployments/web", "/apis/apps/v1/namespaces/ns/deployments",
                     "/apis/apps/v1/namespaces/other/deployments/web"]
