"""Calling a third-party agent: read-only, findings only, bounded.

A third-party agent gets the same ``AgentContext`` as a built-in (a ``ClusterReader``
that can only read, its own settings in ``context.plugin``) and no way to write status or
act: whatever it returns, only its findings are kept. Each is validated with the
``Finding`` model, renamed to the agent, given an id of the agent's own (so it can never
pass for a built-in's evidence) and capped at ``meta.max_findings``; the status, latency
and cost are decided here, not by the plugin. Called by ``investigation.run_agent``,
which also applies the rate limit, the deadline and the meter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from aisre.agents.base import AgentContext
from aisre.api.evidence import AgentResult, Finding, finding_id
from aisre.api.investigation import AgentStatus
from aisre.plugins import Plugin

MAX_FINDINGS = 200  # whatever a plugin declares, never more than this


def _items(raw: Any) -> tuple[Iterable[Any], str]:
    if isinstance(raw, AgentResult):
        return raw.findings, raw.message
    if isinstance(raw, BaseModel) or raw is None or isinstance(raw, (str, bytes, dict)):
        raise TypeError(f"an agent returns an AgentResult or findings, not {type(raw).__name__}")
    return raw, ""


def _finding(plugin: Plugin, item: Any) -> Finding:
    data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
    own = str(data.get("id") or json.dumps(data, sort_keys=True, default=str))
    data["agent"] = plugin.name
    data["id"] = finding_id(plugin.name, str(data.get("kind", "")), own)
    data["summary"] = str(data.get("summary", ""))[:1000]
    return Finding.model_validate(data)


def findings_only(plugin: Plugin, raw: Any) -> AgentResult:
    """The plugin's answer reduced to what it may say: validated, capped findings."""
    items, message = _items(raw)
    cap = min(plugin.meta.max_findings, MAX_FINDINGS)
    kept: dict[str, Finding] = {}
    invalid = over = 0
    for item in items:
        try:
            finding = _finding(plugin, item)
        except (ValidationError, TypeError, ValueError):
            invalid += 1
            continue
        if finding.id in kept:
            continue
        if len(kept) >= cap:
            over += 1
            continue
        kept[finding.id] = finding
    truncated = [f"{plugin.name}: {over} findings over the cap of {cap}"] if over else []
    notes = [message[:300]] if message else []
    if invalid:
        notes.append(f"{invalid} findings refused (not valid Finding objects)")
    return AgentResult(agent=plugin.name, status=AgentStatus.SUCCESS if kept else AgentStatus.NO_DATA,
                       findings=list(kept.values()), message="; ".join(notes), truncated=truncated)


async def call(plugin: Plugin, context: AgentContext, timeout: float) -> AgentResult:
    """Run the plugin's gather under ``timeout`` with its own settings; findings only."""
    own = AgentContext(reader=context.reader, scope=context.scope, window_start=context.window_start, now=context.now,
                       bounds=context.bounds, prometheus=context.prometheus if plugin.meta.needs.prometheus else None,
                       plugin=plugin.settings)
    raw = await asyncio.wait_for(plugin.obj.gather(own), timeout=timeout)
    return findings_only(plugin, raw)
