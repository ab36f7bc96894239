"""aisre: an SRE inside the cluster.

The import root of the project. Subpackages, from the top of the layering down
(the contract is checked by import-linter, see pyproject.toml):

- ``aisre.cli``          the ``aisre`` console script;
- ``aisre.operator``     Kopf handlers, settings, the HTTP server (from ``operator/``);
- ``aisre.agents``       evidence agents (from ``agents/``);
- ``aisre.remediation``  the policy chain and the action catalog (from ``remediation/``);
- ``aisre.api``          the typed models every layer shares: CRDs, taxonomy, conditions.
"""

__version__ = "0.1.0"
