"""What a plugin says about itself: the typed metadata every registered agent, fault
pattern, remediation action and notification sink carries (docs/plugins.md).

Built-ins and third-party plugins declare the same ``PluginMeta``; the registry
(``aisre.plugins``) reads it to decide whether a plugin can run (its ``needs``), how often
(``rate_limit_per_minute``), what a call costs, which symptoms make the planner pick an
agent and which RBAC verbs an action's change needs. Pure models: no I/O here.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$|^[a-z][a-zA-Z0-9]{0,39}$")


class PluginGroup(str, Enum):
    """The four registries, each an entry-point group of the same name."""

    AGENTS = "aisre.agents"
    PATTERNS = "aisre.patterns"
    ACTIONS = "aisre.actions"
    SINKS = "aisre.sinks"

    @property
    def short(self) -> str:
        return self.value.removeprefix("aisre.")


class Needs(BaseModel):
    """What a plugin needs before it can run; checked at load, cheapest first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus: bool = Field(default=False, description="A Prometheus (AISRE_PROMETHEUS_URL) must be configured.")
    url: bool = Field(default=False, description="An API URL must be configured in the plugin's settings (url).")
    secret: bool = Field(default=False, description="A Secret (a mounted file, settings secretFile) must be readable.")


class RbacRule(BaseModel):
    """One RBAC rule an action's change needs (the executor's identity must hold it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_group: str = ""
    resource: str
    verbs: tuple[str, ...]


class PluginMeta(BaseModel):
    """A plugin's metadata: the same for built-ins and third parties."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Unique within its group; the metric label and the name in configuration.")
    version: str = "0.0.0"
    description: str = ""
    needs: Needs = Field(default_factory=Needs)
    cost_per_call_usd: float = Field(default=0.0, ge=0.0, le=10.0)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000,
                                              description="Calls per minute across Investigations; None: unbounded.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=300,
                                          description="A call's own deadline (the Investigation's applies below it).")
    max_findings: int = Field(default=50, ge=1, le=200, description="Agents: findings kept per call.")
    symptoms: tuple[str, ...] = Field(
        default=(), description="Agents: symptoms of the scope that make the planner pick it (empty: always).")
    rbac: tuple[RbacRule, ...] = Field(default=(), description="Actions: what the executor's identity must be allowed.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"plugin name {value!r}: lowercase letters, digits and '-' (or camelCase), at most 40")
        return value


class PluginState(str, Enum):
    """Where a plugin stands after loading."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"  # configuration leaves it off
    FAILED = "FailedToLoad"  # importing it or reading its metadata raised
    UNMET = "PrerequisitesMissing"  # a need is not configured
