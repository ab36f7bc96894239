"""The example plugin on its own: the agent against a loopback JSON endpoint, the pattern
on its findings, and (once installed) its entry points as aisre's registry loads them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution

import pytest

from aisre.agents.base import AgentContext
from aisre.api.evidence import Finding
from aisre.api.plugins import PluginGroup, PluginState
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.scope import Scope
from aisre.plugins import PluginConfig, PluginSettings, load
from aisre.ranking.evidence import EvidenceIndex
from aisre_deploy_events.agent import AGENT, findings_of, gather
from aisre_deploy_events.pattern import PATTERN
from aisre_deploy_events.testing import EventsServer

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _events() -> list[dict]:
    return [
        {"namespace": "shop", "workload": "Deployment/web", "version": "2.0", "change": "image", "author": "ci",
         "time": "2026-12-07T11:50:00Z"},
        {"namespace": "shop", "workload": "Deployment/web", "version": "1.9", "change": "config", "time": "2026-12-07T11:10:00Z"},
        {"namespace": "shop", "workload": "Deployment/api", "version": "7", "time": "2026-12-07T11:55:00Z"},
        {"namespace": "other", "workload": "Deployment/web", "version": "3", "time": "2026-12-07T11:55:00Z"},
        {"namespace": "shop", "workload": "Deployment/web", "version": "0.1", "time": "2026-12-01T00:00:00Z"},  # too old
        "garbage",
    ]


@pytest.fixture
def endpoint() -> Iterator[EventsServer]:
    with EventsServer(_events()) as server:
        yield server


def _context(url: str | None = None, whole: bool = False, secret: str | None = None) -> AgentContext:
    web = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "uid": "u1"}}
    scope = Scope(namespace="shop", description="Deployment/web", workloads=[web], whole_namespace=whole)
    return AgentContext(reader=None, scope=scope, window_start=NOW - dt.timedelta(hours=1), now=NOW,  # type: ignore[arg-type]
                        plugin=PluginSettings(url=url, secret=secret))


async def test_the_agent_reads_the_deploys_of_its_scope(endpoint: EventsServer) -> None:
    found = await gather(_context(endpoint.url, secret="t0ken"))
    assert endpoint.calls == ["Bearer t0ken"]  # the Secret, as a bearer token
    assert [(f.data["owner"], f.data["version"]) for f in found] == [("Deployment/web", "2.0"), ("Deployment/web", "1.9")]
    assert all(f.kind == "DeployEvent" and f.resource and f.resource.namespace == "shop" for f in found)
    whole = findings_of(_events(), _context(whole=True))
    assert {f.data["owner"] for f in whole} == {"Deployment/web", "Deployment/api"}


def _impacted(owner: str) -> Finding:
    return Finding(id="wor-1", agent="workloads", kind="PodUnschedulable", summary="unschedulable",
                   data={"owner": owner, "reason": "Unschedulable"})


def test_the_pattern_blames_the_last_deploy_of_a_workload_that_hurts() -> None:
    deploys = findings_of(_events(), _context())
    candidates = list(PATTERN.detect(EvidenceIndex([*deploys, _impacted("Deployment/web")], "shop")))
    assert [(c.category, c.resource) for c in candidates] == [(C.BAD_IMAGE, "Deployment/web")]
    assert deploys[0].id in candidates[0].evidence_ids and "wor-1" in candidates[0].evidence_ids
    assert list(PATTERN.detect(EvidenceIndex(deploys, "shop"))) == []  # healthy: a deploy is just a deploy


def test_the_metadata_says_what_the_agent_needs() -> None:
    assert AGENT.meta.needs.url and "CrashLoopBackOff" in AGENT.meta.symptoms
    assert PATTERN.meta.name == "deploy-broke-it"


def test_installed_entry_points_load_in_aisres_registry(endpoint: EventsServer) -> None:
    try:
        distribution("aisre-deploy-events")
    except PackageNotFoundError:
        pytest.skip("the example is not installed (pip install examples/plugin)")
    off = load(PluginConfig())
    assert off.get(PluginGroup.AGENTS, "deploy-events").state == PluginState.DISABLED
    on = load(PluginConfig.from_env({"AISRE_PLUGINS_ENABLED": "deploy-events,deploy-broke-it"}))
    assert on.get(PluginGroup.AGENTS, "deploy-events").state == PluginState.UNMET  # no url yet
    on = load(PluginConfig.from_env({"AISRE_PLUGINS_ENABLED": "deploy-events,deploy-broke-it",
                                     "AISRE_PLUGINS_SETTINGS": json.dumps({"deploy-events": {"url": endpoint.url}})}))
    agent, pattern = on.get(PluginGroup.AGENTS, "deploy-events"), on.get(PluginGroup.PATTERNS, "deploy-broke-it")
    assert agent.enabled and pattern.enabled and agent.distribution == "aisre-deploy-events"
    assert agent.obj is AGENT and pattern.obj is PATTERN
