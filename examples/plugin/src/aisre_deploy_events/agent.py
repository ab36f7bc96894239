"""The deploy-events agent: GET the configured URL, keep the deploys of this scope.

The endpoint answers JSON: ``{"events": [{"namespace": "shop", "workload": "Deployment/web",
"version": "2.4.1", "change": "image", "author": "ci", "time": "2026-12-07T12:00:00Z"}]}``
(a bare list is accepted too). The agent only reads and returns findings: aisre validates
them, names them after the agent, caps them and decides the agent's status itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from aisre.agents.base import AgentContext
from aisre.api.evidence import Finding
from aisre.api.meta import ResourceRef
from aisre.api.plugins import Needs, PluginMeta
from aisre.plugins import AgentPlugin

NAME = "deploy-events"
KIND = "DeployEvent"
MAX_BYTES = 1024 * 1024


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _owners(context: AgentContext) -> set[str] | None:
    """The workloads in scope as Kind/name; None when the scope is the whole namespace."""
    if context.scope.whole_namespace:
        return None
    return {f"{w.get('kind')}/{w['metadata']['name']}" for w in context.scope.workloads}


def findings_of(events: list[dict[str, Any]], context: AgentContext) -> list[Finding]:
    """The deploys of this scope's workloads, in its namespace and window."""
    owners = _owners(context)
    found = []
    for event in events:
        if not isinstance(event, dict):
            continue
        workload = str(event.get("workload") or "")
        kind, _, name = workload.partition("/")
        when = _time(event.get("time"))
        if not name or event.get("namespace") != context.scope.namespace:
            continue
        if owners is not None and workload not in owners:
            continue
        if when is not None and not context.window_start <= when <= context.now + dt.timedelta(minutes=1):
            continue
        version, change = str(event.get("version") or "?"), str(event.get("change") or "unknown")
        found.append(Finding(
            id=f"{workload}@{version}@{event.get('time')}", agent=NAME, kind=KIND,
            summary=f"{workload} was deployed at version {version} ({change} change) by {event.get('author') or 'unknown'}",
            resource=ResourceRef(kind=kind, name=name, namespace=context.scope.namespace), time=when,
            data={"owner": workload, "version": version, "change": change, "author": str(event.get("author") or "")}))
    return found


async def gather(context: AgentContext) -> list[Finding]:
    settings = context.plugin
    assert settings is not None and settings.url  # aisre checks needs.url before planning the agent
    headers = {"Authorization": f"Bearer {settings.secret}"} if settings.secret else {}
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(settings.url, headers=headers)
        response.raise_for_status()
        if len(response.content) > MAX_BYTES:
            raise ValueError(f"the deploy events endpoint answered {len(response.content)} bytes (cap {MAX_BYTES})")
        body = response.json()
    events = body.get("events", []) if isinstance(body, dict) else body
    return findings_of(events if isinstance(events, list) else [], context)


AGENT = AgentPlugin(
    PluginMeta(name=NAME, version="0.1.0", description="deploy events from a CI system's JSON endpoint",
               needs=Needs(url=True), cost_per_call_usd=0.0, rate_limit_per_minute=120, timeout_seconds=10,
               max_findings=20,
               # The planner picks it when a workload in scope hurts: pending, crashing, not ready.
               symptoms=("Pending", "Unschedulable", "CrashLoopBackOff", "Error", "Restarting", "NotReady",
                         "ImagePullBackOff", "ErrImagePull", "OOMKilled", "CreateContainerConfigError")),
    gather)
