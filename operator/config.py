"""Operator configuration from the environment (the Helm chart sets these), with
defaults that work for ``aisre run`` on a laptop against the current kubeconfig.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aisre.llm.settings import LLMConfig


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class OperatorConfig:
    """How this operator instance runs."""

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    kubeconfig: str | None = None  # None: the default search, then in-cluster
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    peering_name: str | None = None  # None: standalone (a single replica)
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    instance: str = field(default_factory=lambda: os.environ.get("HOSTNAME", "aisre-dev"))
    llm: LLMConfig = field(default_factory=LLMConfig)  # no API key: the LLM is never used

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            namespaces=_csv(env.get("AISRE_NAMESPACES")),
            kubeconfig=env.get("KUBECONFIG") or None,
            http_host=env.get("AISRE_HTTP_HOST", cls.http_host),
            http_port=int(env.get("AISRE_HTTP_PORT", cls.http_port)),
            peering_name=env.get("AISRE_PEERING") or None,
            log_level=env.get("AISRE_LOG_LEVEL", cls.log_level).upper(),
            log_format=env.get("AISRE_LOG_FORMAT", cls.log_format),
            instance=env.get("HOSTNAME", "aisre-dev"),
            llm=LLMConfig.from_env(env),
        )
