"""aisre.agents: evidence agents, one module each, each with one async entry point that
returns an AgentResult. Agents never import each other, nor aisre.remediation."""
