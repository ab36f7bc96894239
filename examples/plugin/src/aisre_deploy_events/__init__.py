"""aisre-deploy-events: an example aisre plugin package.

``agent.AGENT`` (entry point ``aisre.agents`` ``deploy-events``) reads a JSON HTTP endpoint
of deploy events and returns one ``DeployEvent`` finding per deploy of a workload in the
Investigation's scope and window. ``pattern.PATTERN`` (``aisre.patterns``
``deploy-broke-it``) proposes "the deploy broke it" for a workload that hurts now and was
deployed shortly before. See aisre's docs/plugins.md for the walk-through.
"""

__version__ = "0.1.0"
