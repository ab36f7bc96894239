"""aisre.operator: the Kopf side of aisre.

``main`` builds the settings and serves the operator and its HTTP endpoints;
``handlers`` holds the (thin) Kopf handlers, one function call each; the decisions they
call live in plain modules beside them (``acceptance``) so they are tested without a
cluster. This package may import everything below it (agents, remediation, api), and
nothing imports it but the CLI.

This file is installed as ``aisre/operator/__init__.py``. In the checkout the folder has
no ``__init__.py`` on purpose: a regular package named ``operator`` at the checkout's root
would shadow the standard library's module for anything run from there.
"""
