"""The plugin registries: built-ins from aisre's own entry points, third-party plugins off
until configured, failures and missing prerequisites reported (never raised), every call
metered and bounded, and a third-party agent reduced to validated, capped findings."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from aisre.api.evidence import Finding
from aisre.api.plugins import Needs, PluginGroup, PluginMeta, PluginState
from aisre.api.taxonomy import ActionType, AgentName
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.scope import Scope
from aisre.plugins import AgentPlugin, PatternPlugin, PluginConfig, PluginSettings, load, meter, registry, reload
from aisre.ranking.candidate import Candidate

ROOT = Path(__file__).resolve().parents[2]
MODULE = "aisre_test_plugins_fixture"


@dataclass
class Dist:
    name: str
    version: str = "1.2.3"


@dataclass
class Entry:
    """An entry point as importlib.metadata gives it (name, group, dist, load)."""

    name: str
    group: str
    attr: str
    dist: Dist

    def load(self) -> Any:
        module = __import__(MODULE)
        return getattr(module, self.attr)


async def _deploys(context: Any) -> list[dict[str, Any]]:
    return [{"id": f"d{i}", "agent": "spoofed", "kind": "DeployEvent", "summary": f"deploy {i}",
             "data": {"service": "web"}} for i in range(5)] + [{"kind": 42}]


def _pattern(ix: Any) -> list[Any]:
    deploys = list(ix.kind("DeployEvent"))
    return [Candidate(C.BAD_IMAGE, "Deployment/web", 3.0, "a deploy broke it", [f.id for f in deploys], ""),
            Candidate(C.BAD_IMAGE, "Deployment/ghost", 0.5, "cites nothing real", ["nope"], ""),
            "not a candidate"]


def _broken_pattern(ix: Any) -> list[Any]:
    raise RuntimeError("pattern bug")


def _fixture_module() -> types.ModuleType:
    module = types.ModuleType(MODULE)
    module.DEPLOYS = AgentPlugin(PluginMeta(name="deploys", version="1.2.3", max_findings=3, cost_per_call_usd=0.25,
                                            rate_limit_per_minute=2, symptoms=("CrashLoopBackOff",),
                                            needs=Needs(url=True)), _deploys)
    module.ALWAYS = AgentPlugin(PluginMeta(name="always", needs=Needs(secret=True)), _deploys)
    module.PATTERN = PatternPlugin(PluginMeta(name="deploy-broke"), _pattern)
    module.BROKEN = PatternPlugin(PluginMeta(name="broken-pattern"), _broken_pattern)
    module.WRONG_NAME = AgentPlugin(PluginMeta(name="other"), _deploys)
    module.NOT_AN_AGENT = object()
    module.BAD_META = types.SimpleNamespace(meta={"name": "bad-meta", "cost_per_call_usd": -1}, gather=_deploys)
    module.SINK = types.SimpleNamespace(meta=PluginMeta(name="pager-x"), send=lambda *a: None)
    return module


@pytest.fixture
def fixture_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, MODULE, _fixture_module())
    third = Dist("acme-aisre-plugins")
    extra = {
        PluginGroup.AGENTS.value: [Entry("deploys", "", "DEPLOYS", third), Entry("always", "", "ALWAYS", third),
                                   Entry("wrongname", "", "WRONG_NAME", third), Entry("notagent", "", "NOT_AN_AGENT", third),
                                   Entry("bad-meta", "", "BAD_META", third), Entry("missing", "", "NO_SUCH", third),
                                   Entry("dormant", "", "DEPLOYS", third)],
        PluginGroup.PATTERNS.value: [Entry("deploy-broke", "", "PATTERN", third),
                                     Entry("broken-pattern", "", "BROKEN", third)],
        PluginGroup.SINKS.value: [Entry("pager-x", "", "SINK", third)],
    }

    def discover(group: str) -> list[Any]:
        from importlib.metadata import entry_points

        return list(entry_points(group=group)) + extra.get(group, [])

    def configure(**env: str) -> Any:
        return reload(PluginConfig.from_env(env), discover)

    yield configure
    reload(PluginConfig())


def test_the_builtins_load_from_aisres_own_entry_points() -> None:
    found = load(PluginConfig())
    names = {group: {p.name for p in found.of(group)} for group in PluginGroup}
    assert names[PluginGroup.AGENTS] == {a.value for a in AgentName}
    assert names[PluginGroup.ACTIONS] == {a.value for a in ActionType}
    assert names[PluginGroup.SINKS] == {"slack", "slackWebhook", "teams", "pagerDuty", "opsgenie", "webhook"}
    assert names[PluginGroup.PATTERNS] == {"builtin"}
    assert all(p.builtin and p.enabled for p in found.all())
    # What pyproject declares is what is installed (the package's own metadata was rebuilt).
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert {g: set(v) for g, v in declared.items()} == {g.value: names[g] for g in PluginGroup}
    from aisre.ranking.patterns import PATTERNS
    assert found.get(PluginGroup.PATTERNS, "builtin").obj is PATTERNS and len(PATTERNS) > 10


def test_builtin_metadata_is_typed_and_says_what_it_needs() -> None:
    found = load(PluginConfig())
    assert found.get(PluginGroup.AGENTS, "metrics").meta.needs.prometheus
    rules = found.get(PluginGroup.ACTIONS, "deletePod").meta.rbac
    assert [(r.resource, r.verbs) for r in rules] == [("pods", ("get", "delete"))]
    assert all(p.meta.rbac for p in found.of(PluginGroup.ACTIONS))
    with pytest.raises(ValueError):
        PluginMeta(name="Bad Name!")


def test_third_party_plugins_are_off_until_configured_and_failures_are_reported(fixture_plugins: Any) -> None:
    found = fixture_plugins()
    deploys = found.get(PluginGroup.AGENTS, "deploys")
    assert deploys.state == PluginState.DISABLED and "AISRE_PLUGINS_ENABLED" in deploys.reason
    assert deploys.obj is None  # not even imported
    found = fixture_plugins(AISRE_PLUGINS_ENABLED="*", AISRE_PLUGINS_DISABLED="agents:dormant,scale",
                            AISRE_PLUGINS_SETTINGS=json.dumps({"deploys": {"url": "http://127.0.0.1:9/x"}}))
    states = {p.name: (p.state, p.reason) for p in found.all()}
    assert states["deploys"][0] == PluginState.ENABLED
    assert states["dormant"] == (PluginState.DISABLED, "turned off by AISRE_PLUGINS_DISABLED")
    assert states["scale"][0] == PluginState.DISABLED  # a built-in can be turned off
    assert states["always"][0] == PluginState.UNMET and "needs a Secret" in states["always"][1]
    assert states["wrongname"][0] == PluginState.FAILED and "metadata names 'other'" in states["wrongname"][1]
    assert states["notagent"] == (PluginState.FAILED, "an agent needs an async gather(context)")
    assert states["bad-meta"][0] == PluginState.FAILED and "bad metadata" in states["bad-meta"][1]
    assert states["missing"][0] == PluginState.FAILED and "AttributeError" in states["missing"][1]
    assert states["pager-x"][0] == PluginState.ENABLED
    ready = found.readiness()
    assert ready["counts"]["FailedToLoad"] == 4 and ready["counts"]["PrerequisitesMissing"] == 1
    assert {p["name"] for p in ready["notRunning"]} >= {"always", "wrongname", "dormant", "scale"}
    # The metric: counts by state, and one series per plugin not running.
    assert REGISTRY.get_sample_value("aisre_plugins", {"group": "agents", "state": "FailedToLoad"}) == 4
    assert REGISTRY.get_sample_value("aisre_plugin_not_enabled",
                                     {"group": "agents", "plugin": "always", "state": "PrerequisitesMissing"}) == 1
    # Without the url it needs, the agent does not run either.
    found = fixture_plugins(AISRE_PLUGINS_ENABLED="deploys")
    assert found.get(PluginGroup.AGENTS, "deploys").state == PluginState.UNMET


def test_a_plugins_secret_is_read_from_its_file(fixture_plugins: Any, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    found = fixture_plugins(AISRE_PLUGINS_ENABLED="always",
                            AISRE_PLUGINS_SETTINGS=json.dumps({"always": {"secretFile": str(secret)}}))
    plugin = found.get(PluginGroup.AGENTS, "always")
    assert plugin.enabled and plugin.settings.secret == "s3cret" and "s3cret" not in repr(plugin.settings)
    found = fixture_plugins(AISRE_PLUGINS_ENABLED="always",
                            AISRE_PLUGINS_SETTINGS=json.dumps({"always": {"secretFile": str(tmp_path / "absent")}}))
    assert "cannot read its Secret" in found.get(PluginGroup.AGENTS, "always").reason


def test_malformed_settings_stop_the_operator_with_the_reason() -> None:
    with pytest.raises(ValueError, match="AISRE_PLUGINS_SETTINGS"):
        PluginConfig.from_env({"AISRE_PLUGINS_SETTINGS": "[1, 2]"})
    config = PluginConfig.from_env({"AISRE_PLUGINS_SETTINGS": json.dumps({"x": {"namespaces": ["shop-*"], "k": 1}})})
    assert config.settings["x"].allows("shop-eu") and not config.settings["x"].allows("payments")
    assert config.settings["x"].extra == {"k": 1}


def _scope(reason: str | None, namespace: str = "shop") -> Scope:
    state = {"waiting": {"reason": reason}} if reason else {"running": {}}
    return Scope(namespace=namespace, description="namespace",
                 pods=[{"status": {"phase": "Running", "containerStatuses": [{"state": state, "restartCount": 2}]}}])


def test_the_planner_picks_a_plugin_agent_by_its_symptoms_and_reports_the_broken(fixture_plugins: Any) -> None:
    from aisre.operator.planner import plan, symptoms_of

    fixture_plugins(AISRE_PLUGINS_ENABLED="*", AISRE_PLUGINS_SETTINGS=json.dumps(
        {"deploys": {"url": "http://127.0.0.1:9/x", "namespaces": ["shop"]}}))
    assert symptoms_of(_scope("CrashLoopBackOff")) >= {"CrashLoopBackOff", "Restarting", "ContainerStarted"}
    planned, skipped = plan(None, _scope("CrashLoopBackOff"))
    assert "deploys" in [p.name for p in planned] and "symptoms CrashLoopBackOff" in planned[-1].reason
    assert skipped["always"].startswith("plugin PrerequisitesMissing: needs a Secret")
    assert skipped["wrongname"].startswith("plugin FailedToLoad")
    planned, skipped = plan(None, _scope(None))
    assert "deploys" not in [p.name for p in planned] and "none of its symptoms" in skipped["deploys"]
    planned, skipped = plan(None, _scope("CrashLoopBackOff", namespace="payments"))
    assert skipped["deploys"] == "not turned on for namespace payments"
    # Built-ins keep their rules; a disabled built-in asked for by name says why.
    fixture_plugins(AISRE_PLUGINS_DISABLED="events")
    planned, skipped = plan(["events", "workloads"], _scope(None))
    assert [p.name for p in planned] == ["workloads"] and "AISRE_PLUGINS_DISABLED" in skipped["events"]


def _context(scope: Scope) -> Any:
    from aisre.agents.base import AgentContext

    now = dt.datetime.now(dt.UTC)
    return AgentContext(reader=None, scope=scope, window_start=now - dt.timedelta(hours=1), now=now)  # type: ignore[arg-type]


async def test_a_plugin_agent_returns_validated_capped_findings_only(fixture_plugins: Any) -> None:
    from aisre.operator import investigation

    fixture_plugins(AISRE_PLUGINS_ENABLED="deploys,always",
                    AISRE_PLUGINS_SETTINGS=json.dumps({"deploys": {"url": "http://h/x"}}))
    before = REGISTRY.get_sample_value("aisre_plugin_calls_total",
                                       {"group": "agents", "plugin": "deploys", "outcome": "success"}) or 0
    cost_before = REGISTRY.get_sample_value("aisre_plugin_cost_usd_total", {"group": "agents", "plugin": "deploys"}) or 0
    result = await investigation.run_agent("deploys", _context(_scope("CrashLoopBackOff")), deadline=5.0)
    assert result.status == "SUCCESS" and len(result.findings) == 3  # capped at meta.max_findings
    assert all(f.agent == "deploys" and f.id.startswith("dep-") for f in result.findings)  # not "spoofed"
    assert "1 findings refused" in result.message and "2 findings over the cap of 3" in result.truncated[0]
    assert result.cost_usd == 0.25
    assert REGISTRY.get_sample_value("aisre_plugin_calls_total",
                                     {"group": "agents", "plugin": "deploys", "outcome": "success"}) == before + 1
    assert REGISTRY.get_sample_value("aisre_plugin_cost_usd_total",
                                     {"group": "agents", "plugin": "deploys"}) == cost_before + 0.25
    # Its rate limit: 2 a minute.
    await investigation.run_agent("deploys", _context(_scope("CrashLoopBackOff")), deadline=5.0)
    limited = await investigation.run_agent("deploys", _context(_scope("CrashLoopBackOff")), deadline=5.0)
    assert limited.status == "NO_DATA" and "rate limit of 2 calls a minute" in limited.message
    assert REGISTRY.get_sample_value("aisre_plugin_calls_total",
                                     {"group": "agents", "plugin": "deploys", "outcome": "rate_limited"}) >= 1
    # A plugin that is not running: NO_DATA with the reason, never an exception.
    unmet = await investigation.run_agent("always", _context(_scope(None)), deadline=1.0)
    assert unmet.status == "NO_DATA" and "needs a Secret" in unmet.message


async def test_a_plugin_agent_is_bounded_by_the_deadline_and_cannot_crash_the_investigation(
        fixture_plugins: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aisre.operator import investigation

    found = fixture_plugins(AISRE_PLUGINS_ENABLED="deploys", AISRE_PLUGINS_SETTINGS=json.dumps({"deploys": {"url": "u"}}))

    async def slow(context: Any) -> list[Finding]:
        await asyncio.sleep(5)
        return []

    async def returns_status(context: Any) -> dict[str, Any]:
        return {"status": {"state": "Completed"}}

    plugin = found.get(PluginGroup.AGENTS, "deploys")
    monkeypatch.setattr(plugin, "obj", AgentPlugin(plugin.meta, slow))
    timed_out = await investigation.run_agent("deploys", _context(_scope(None)), deadline=0.2)
    assert timed_out.status == "ERROR" and "timed out" in timed_out.message and timed_out.latency_seconds < 1
    assert REGISTRY.get_sample_value("aisre_plugin_calls_total",
                                     {"group": "agents", "plugin": "deploys", "outcome": "timeout"}) >= 1
    monkeypatch.setattr(plugin, "obj", AgentPlugin(plugin.meta, returns_status))
    refused = await investigation.run_agent("deploys", _context(_scope(None)), deadline=1.0)
    assert refused.status == "ERROR" and "returns an AgentResult or findings" in refused.message


def test_plugin_patterns_are_fenced_and_builtins_still_rank(fixture_plugins: Any) -> None:
    from aisre.ranking.evidence import EvidenceIndex
    from aisre.ranking.rank import rank
    from aisre.ranking.registry import candidates

    fixture_plugins(AISRE_PLUGINS_ENABLED="patterns:*")
    deploy = Finding(id="dep-1", agent="deploys", kind="DeployEvent", summary="deploy", data={"service": "web"})
    found = candidates(EvidenceIndex([deploy], "shop"))
    mine = [c for c in found if c.pattern == "deploy-broke"]
    assert [(c.resource, c.score, c.evidence_ids) for c in mine] == [("Deployment/web", 1.0, ["dep-1"])]
    assert REGISTRY.get_sample_value("aisre_plugin_calls_total",
                                     {"group": "patterns", "plugin": "broken-pattern", "outcome": "error"}) >= 1
    assert any(h.resource == "Deployment/web" for h in rank([deploy], "shop"))


def test_a_disabled_action_is_not_in_the_catalog_and_the_policy_chain_denies_it(fixture_plugins: Any) -> None:
    from aisre.remediation.actions import CATALOG
    from aisre.remediation.policy import ACTION_NOT_INSTALLED, check_action_installed

    assert "scale" in CATALOG and CATALOG[ActionType.SCALE].kinds == {"Deployment", "StatefulSet"}
    fixture_plugins(AISRE_PLUGINS_DISABLED="actions:scale")
    assert "scale" not in CATALOG and ActionType.SCALE not in dict(CATALOG.items())
    action = types.SimpleNamespace(type=ActionType.SCALE)
    verdict = check_action_installed(types.SimpleNamespace(action=action, installed=frozenset(CATALOG)))  # type: ignore[arg-type]
    assert verdict is not None and verdict.reason == ACTION_NOT_INSTALLED and verdict.decision.value == "Denied"
    assert check_action_installed(types.SimpleNamespace(action=action, installed=None)) is None  # type: ignore[arg-type]


def test_an_action_outside_the_apis_taxonomy_is_not_loaded() -> None:
    module = types.ModuleType("aisre_test_action_fixture")
    from aisre.remediation.actions import SCALE
    module.EVICT = types.SimpleNamespace(**{k: getattr(SCALE, k) for k in ("plan", "verify", "revert", "applied")},
                                         meta=PluginMeta(name="evictAll"))
    sys.modules["aisre_test_action_fixture"] = module
    try:
        entry = types.SimpleNamespace(name="evictAll", dist=Dist("acme"), load=lambda: module.EVICT)
        found = load(PluginConfig(enabled=frozenset({"*"})),
                     lambda group: [entry] if group == PluginGroup.ACTIONS.value else [])
    finally:
        del sys.modules["aisre_test_action_fixture"]
    plugin = found.get(PluginGroup.ACTIONS, "evictAll")
    assert plugin.state == PluginState.UNMET and "not an action type of the API" in plugin.reason


async def test_a_disabled_sink_fails_its_delivery_with_the_reason(fixture_plugins: Any) -> None:
    from aisre.notify import deliver
    from aisre.notify.base import RetryPolicy

    fixture_plugins(AISRE_PLUGINS_DISABLED="sinks:webhook")
    sink = types.SimpleNamespace(type="webhook", name="hook")
    plan = types.SimpleNamespace(sink=sink, route="r", event="Opened", digest="d")
    done = await deliver(None, plan, None, None, {}, RetryPolicy(attempts=1), lambda: dt.datetime.now(dt.UTC))  # type: ignore[arg-type]
    assert done.record["result"] == "Failed" and "turned off by AISRE_PLUGINS_DISABLED" in done.record["error"]


def test_plugin_labels_are_a_bounded_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter, "_labelled", {})
    names = [meter.label("agents", f"p{i}") for i in range(meter.MAX_LABELLED + 5)]
    assert names[: meter.MAX_LABELLED] == [f"p{i}" for i in range(meter.MAX_LABELLED)]
    assert set(names[meter.MAX_LABELLED:]) == {"other"} and meter.label("agents", "p0") == "p0"


def test_rate_limit_is_a_sliding_minute() -> None:
    limit = meter.RateLimit(2)
    assert limit.take(0.0) and limit.take(1.0) and not limit.take(59.0) and limit.take(60.5)
    assert all(meter.RateLimit(None).take(float(i)) for i in range(1000))


async def test_readyz_lists_plugins_that_are_not_running(fixture_plugins: Any) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from aisre.operator.http import build_app

    fixture_plugins(AISRE_PLUGINS_ENABLED="always")
    ready = asyncio.Event()
    ready.set()
    async with TestClient(TestServer(build_app(ready))) as client:
        response = await client.get("/readyz")
        body = await response.json()
    assert response.status == 200 and body["status"] == "ready"
    always = next(p for p in body["plugins"]["notRunning"] if p["name"] == "always")
    assert always["state"] == "PrerequisitesMissing" and "needs a Secret" in always["reason"]


def test_aisre_plugins_lists_what_is_installed_enabled_and_why_not(fixture_plugins: Any, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from aisre import cli
    from aisre import plugins as plugins_package

    monkeypatch.setenv("AISRE_PLUGINS_DISABLED", "actions:cordonNode")
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "GROUP" in out and "WHY NOT" in out
    line = next(line for line in out.splitlines() if "cordonNode" in line)
    assert "Disabled" in line and "turned off by AISRE_PLUGINS_DISABLED" in line
    assert cli.main(["plugins", "--json", "--group", "agents"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in listed} == {a.value for a in AgentName} and listed[0]["group"] == "agents"
    metrics = next(p for p in listed if p["name"] == "metrics")
    assert metrics["needs"]["prometheus"] is True
    # --check: a plugin that should run and cannot makes it fail.
    real_load = plugins_package.load
    monkeypatch.setattr(plugins_package, "load", lambda config: fixture_plugins(AISRE_PLUGINS_ENABLED="always"))
    assert cli.main(["plugins", "--check", "--group", "agents"]) == 1
    assert "PrerequisitesMissing" in capsys.readouterr().out
    monkeypatch.setattr(plugins_package, "load", real_load)
    monkeypatch.setenv("AISRE_PLUGINS_SETTINGS", "not json")
    assert cli.main(["plugins"]) == 2


def test_the_process_registry_is_loaded_once() -> None:
    assert registry() is registry()
    assert PluginSettings().allows("anything")
