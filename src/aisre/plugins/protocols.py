"""The protocols plugins implement, the same for built-ins and third parties.

    agent     AgentPlugin(meta, gather): ``async gather(context: AgentContext)`` returns an
              ``AgentResult`` or an iterable of ``Finding``. The context is read-only (a
              ``ClusterReader``, the scope, the window, ``context.plugin``: its settings). Of a
              third-party agent only the findings are kept: validated with the ``Finding``
              model, renamed to the agent, re-identified and capped (``meta.max_findings``).
    pattern   PatternPlugin(meta, detect): ``detect(index: EvidenceIndex)`` yields ``Candidate``
              values (a bare callable, or a list of them, is a pattern library).
    action    an ``ActionModule`` (``aisre.remediation.actions``) with ``meta``; it is only
              ever run by the executor, after the whole policy chain, as the executor's identity.
    sink      SinkPlugin(meta, send): ``async send(client, sink, notice, plan, secret)``.

The objects are plain frozen dataclasses so that a plugin package needs nothing but these
and ``PluginMeta`` from aisre.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aisre.api.plugins import PluginMeta


@dataclass(frozen=True)
class AgentPlugin:
    meta: PluginMeta
    gather: Callable[[Any], Any]


@dataclass(frozen=True)
class PatternPlugin:
    meta: PluginMeta
    detect: Callable[[Any], Any]


@dataclass(frozen=True)
class SinkPlugin:
    meta: PluginMeta
    send: Callable[..., Any]
