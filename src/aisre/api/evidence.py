"""What agents return: findings with ids, and how the agent fared.

A ``Finding`` is one observation with a stable id (cited by hypotheses, reports and the
LLM); ``kind`` says what sort of observation it is and ``data`` carries its structured
detail, which fault patterns read. An ``AgentResult`` is one agent's whole answer: an
agent that fails returns ERROR with a message, it never raises into the investigation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aisre.api.investigation import AgentStatus
from aisre.api.meta import ResourceRef


# The log signatures (``aisre.agents.log_signatures``) that say the peer a line names
# cannot be reached, or answers and refuses the client; ranking follows both to the peer.
NETWORK_SIGNATURES = ("connection_refused", "timeout", "dns_failure")
REFUSAL_SIGNATURES = ("auth_failure", "tls_failure", "too_many_connections", "no_servers", "peer_full", "peer_error",
                      "wrong_listener", "peer_rejects")
PEER_SIGNATURES = NETWORK_SIGNATURES + REFUSAL_SIGNATURES


def finding_id(agent: str, kind: str, *parts: str) -> str:
    """A stable, short id from structured fields: the same observation gets the same id."""
    digest = hashlib.sha1("\x1f".join((agent, kind, *parts)).encode()).hexdigest()[:10]
    return f"{agent[:3]}-{digest}"


class Finding(BaseModel):
    """One observation an agent made."""

    model_config = ConfigDict(frozen=True)

    id: str
    agent: str
    kind: str
    summary: str
    resource: ResourceRef | None = None
    time: dt.datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AgentResult(BaseModel):
    """One agent's answer: findings, status, latency and cost."""

    agent: str
    status: AgentStatus
    findings: list[Finding] = Field(default_factory=list)
    latency_seconds: float = 0.0
    cost_usd: float = 0.0
    message: str = ""
    truncated: list[str] = Field(default_factory=list)
