"""aisre.remediation: the ordered policy chain (pure functions, deny by default) and the
typed action catalog. Never imports aisre.agents."""
