"""Plugins: the four registries (``aisre.agents``, ``aisre.patterns``, ``aisre.actions``,
``aisre.sinks``), each a Python entry-point group that aisre's own built-ins are declared in
too (pyproject's ``[project.entry-points.*]``), and the meter every plugin call goes through.

``registry`` loads the groups once per process, applies configuration (``AISRE_PLUGINS_*``)
and checks prerequisites: a plugin that fails to load or lacks one is kept with its reason
(shown on ``/readyz``, in ``aisre_plugins`` and in every Investigation's per-agent status),
never raised. ``meter`` counts calls, errors, latency and cost per plugin and holds the rate
limits. Who calls plugins: the investigation (agents), ranking (patterns), the action catalog
and notifications; this package imports none of them (entry points are loaded by name).
"""

from aisre.plugins.meter import MeteredCall, RateLimit, metered, refused
from aisre.plugins.protocols import AgentPlugin, PatternPlugin, SinkPlugin
from aisre.plugins.registry import (
    Plugin,
    PluginConfig,
    PluginSettings,
    Registry,
    load,
    registry,
    reload,
)

__all__ = ["AgentPlugin", "MeteredCall", "PatternPlugin", "SinkPlugin", "Plugin", "PluginConfig", "PluginSettings", "RateLimit", "Registry", "load", "metered",
           "refused", "registry", "reload"]
