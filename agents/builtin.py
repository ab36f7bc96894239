"""The built-in evidence agents as plugins: each agent's entry point (``aisre.agents`` in
pyproject) names one of these, with the same metadata a third-party agent declares.

Not an agent itself: it only wraps their entry points (the independence contract covers
the agent modules, which never import each other). Symptoms empty: the default plan
always considers the agent (the planner's own rules may still leave it out).
"""

from __future__ import annotations

from aisre.agents import changes, events, logs, metrics, topology, workloads
from aisre.api.plugins import Needs, PluginMeta
from aisre.plugins.protocols import AgentPlugin

VERSION = "builtin"

WORKLOADS = AgentPlugin(PluginMeta(name="workloads", version=VERSION, description="pod and controller states, "
                                   "restarts, scheduling, readiness"), workloads.gather)
EVENTS = AgentPlugin(PluginMeta(name="events", version=VERSION, description="Kubernetes Events of the scope"), events.gather)
LOGS = AgentPlugin(PluginMeta(name="logs", version=VERSION, description="container logs and their signatures"), logs.gather)
CHANGES = AgentPlugin(PluginMeta(name="changes", version=VERSION, description="rollouts and config changes"), changes.gather)
TOPOLOGY = AgentPlugin(PluginMeta(name="topology", version=VERSION, description="Services, endpoints, dependencies"),
                       topology.gather)
METRICS = AgentPlugin(PluginMeta(name="metrics", version=VERSION, description="Prometheus series of the scope",
                                 needs=Needs(prometheus=True)), metrics.gather)
