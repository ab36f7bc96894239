"""Operator configuration from the environment (the Helm chart sets these), with
defaults that work for ``aisre run`` on a laptop against the current kubeconfig.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from aisre.agents.base import PrometheusSettings

from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.graph_store import GraphSettings
from aisre.fleet.kafka import KafkaSettings
from aisre.operator.leader import LeaseSettings
from aisre.operator.notify_step import NotifySettings
from aisre.notify import RetryPolicy
from aisre.plugins import PluginConfig
from aisre.llm.settings import LLMConfig
from aisre.ranking.calibration import checked_knots


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class OperatorConfig:
    """How this operator instance runs."""

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    kubeconfig: str | None = None  # None: the default search, then in-cluster
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    peering_name: str | None = None  # None: standalone (a single replica, no leader election)
    # With peering: the leader Lease in operator_namespace (None: "<peering name>-leader") and its timing.
    leader_lease: str | None = None
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    instance: str = field(default_factory=lambda: os.environ.get("HOSTNAME", "aisre-dev"))
    # Detection: off leaves only Investigations a person creates.
    detection: bool = True
    exclude_namespaces: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
    operator_namespace: str = "aisre-system"  # where node-level Incidents live
    thresholds: Thresholds = field(default_factory=Thresholds)
    # The Alertmanager webhook's bearer token: a mounted Secret file, or namespace/name[:key] of a Secret.
    alertmanager_token_file: str | None = None
    alertmanager_token_secret: str | None = None
    # The pagers' webhooks (docs/pagers.md), the same way: PagerDuty's signing secret(s), one
    # a line, and the bearer token Opsgenie's webhook integration sends.
    pagerduty_secret_file: str | None = None
    pagerduty_secret_secret: str | None = None
    opsgenie_token_file: str | None = None
    opsgenie_token_secret: str | None = None
    # The identity remediation changes are made as (impersonated), e.g.
    # system:serviceaccount:aisre-system:aisre-executor; None: the operator's own (dev only).
    executor_user: str | None = field(default_factory=lambda: os.environ.get("AISRE_EXECUTOR_USER") or None)
    # Upper bound on an action's verification wait (the policy's timeout applies below it).
    max_verify_seconds: float | None = field(
        default_factory=lambda: float(os.environ["AISRE_MAX_VERIFY_SECONDS"]) if os.environ.get("AISRE_MAX_VERIFY_SECONDS") else None)
    # The HMAC key that marks what the operator decided (operator/signing_key.py): a mounted
    # Secret file (the chart's way), or namespace/name[:key] of a Secret read (or created) at start-up.
    signing_key_file: str | None = None
    signing_key_secret: str | None = None
    # A namespace's own RemediationPolicy cannot set minHealthyPercent below this; only a
    # policy in the operator's namespace can (docs/security.md).
    min_healthy_floor: int = 50
    # Investigations running at once; the others wait in a queue (condition Queued).
    max_concurrent_investigations: int = 8
    llm: LLMConfig = field(default_factory=LLMConfig)  # no API key: the LLM is never used
    prometheus: PrometheusSettings | None = None  # None: the metrics agent is not planned
    neo4j: GraphSettings | None = None  # None: memory is the embedded index only (docs/knowledge.md)
    # A cluster's own calibration map (aisre calibration refits it on people's verdicts); None: the suite's.
    calibration_knots: tuple[tuple[float, float], ...] | None = None
    notify: NotifySettings = field(default_factory=NotifySettings)  # NotificationRoutes' deliveries
    # Which plugins are on, and their settings (AISRE_PLUGINS_*; docs/plugins.md).
    plugins: PluginConfig = field(default_factory=PluginConfig)
    # Kafka for the fleet (AISRE_KAFKA_*; docs/fleet.md); None: nothing is published.
    kafka: KafkaSettings | None = None
    # Forecasts read TLS Secrets' tls.crt for their expiry (AISRE_FORECAST_TLS_SECRETS; needs
    # rbac.listSecrets): off, only cert-manager's Certificates are read (docs/forecasts.md).
    forecast_tls_secrets: bool = False

    @property
    def lease_name(self) -> str:
        return self.leader_lease or f"{self.peering_name or 'aisre'}-leader"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            namespaces=_csv(env.get("AISRE_NAMESPACES")),
            kubeconfig=env.get("KUBECONFIG") or None,
            http_host=env.get("AISRE_HTTP_HOST", cls.http_host),
            http_port=int(env.get("AISRE_HTTP_PORT", cls.http_port)),
            peering_name=env.get("AISRE_PEERING") or None,
            leader_lease=env.get("AISRE_LEADER_LEASE") or None,
            lease=LeaseSettings.from_env(env),
            log_level=env.get("AISRE_LOG_LEVEL", cls.log_level).upper(),
            log_format=env.get("AISRE_LOG_FORMAT", cls.log_format),
            instance=env.get("HOSTNAME", "aisre-dev"),
            detection=env.get("AISRE_DETECTION", "true").lower() not in ("0", "false", "no", "off"),
            exclude_namespaces=_csv(env.get("AISRE_EXCLUDE_NAMESPACES", ",".join(cls.exclude_namespaces))),
            operator_namespace=env.get("AISRE_OPERATOR_NAMESPACE") or env.get("POD_NAMESPACE") or cls.operator_namespace,
            thresholds=Thresholds.from_env(env),
            alertmanager_token_file=env.get("AISRE_ALERTMANAGER_TOKEN_FILE") or None,
            alertmanager_token_secret=env.get("AISRE_ALERTMANAGER_TOKEN_SECRET") or None,
            pagerduty_secret_file=env.get("AISRE_PAGERDUTY_SECRET_FILE") or None,
            pagerduty_secret_secret=env.get("AISRE_PAGERDUTY_SECRET_SECRET") or None,
            opsgenie_token_file=env.get("AISRE_OPSGENIE_TOKEN_FILE") or None,
            opsgenie_token_secret=env.get("AISRE_OPSGENIE_TOKEN_SECRET") or None,
            executor_user=env.get("AISRE_EXECUTOR_USER") or None,
            max_verify_seconds=float(env["AISRE_MAX_VERIFY_SECONDS"]) if env.get("AISRE_MAX_VERIFY_SECONDS") else None,
            signing_key_file=env.get("AISRE_SIGNING_KEY_FILE") or None,
            signing_key_secret=env.get("AISRE_SIGNING_KEY_SECRET") or None,
            min_healthy_floor=int(env.get("AISRE_MIN_HEALTHY_FLOOR", cls.min_healthy_floor)),
            max_concurrent_investigations=int(env.get("AISRE_MAX_CONCURRENT_INVESTIGATIONS",
                                                      cls.max_concurrent_investigations)),
            llm=LLMConfig.from_env(env),
            prometheus=prometheus_from_env(env),
            neo4j=neo4j_from_env(env),
            calibration_knots=knots_from_env(env),
            notify=notify_from_env(env),
            plugins=PluginConfig.from_env(env),
            kafka=KafkaSettings.from_env(env),
            forecast_tls_secrets=env.get("AISRE_FORECAST_TLS_SECRETS", "").lower() in ("1", "true", "yes", "on"),
        )


def notify_from_env(env: dict[str, str]) -> NotifySettings:
    """AISRE_GRAFANA_URL (put in every message; {namespace} and {incident} are filled in),
    AISRE_NOTIFY_TIMEOUT_SECONDS per request, AISRE_NOTIFY_ATTEMPTS per message,
    AISRE_NOTIFY_DEADLINE_SECONDS per Incident's delivery run."""
    default = NotifySettings()
    return NotifySettings(
        grafana_url=(env.get("AISRE_GRAFANA_URL") or "").strip() or None,
        timeout_s=float(env.get("AISRE_NOTIFY_TIMEOUT_SECONDS") or default.timeout_s),
        deadline_s=float(env.get("AISRE_NOTIFY_DEADLINE_SECONDS") or default.deadline_s),
        retry=RetryPolicy(attempts=int(env.get("AISRE_NOTIFY_ATTEMPTS") or default.retry.attempts)),
    )


def knots_from_env(env: dict[str, str]) -> tuple[tuple[float, float], ...] | None:
    """AISRE_CALIBRATION_KNOTS: a JSON list of [score, confidence] pairs (what aisre calibration
    prints); a malformed one stops the operator at start with the reason."""
    raw = (env.get("AISRE_CALIBRATION_KNOTS") or "").strip()
    if not raw:
        return None
    try:
        return tuple(checked_knots(json.loads(raw)))
    except (ValueError, TypeError) as error:
        raise ValueError(f"AISRE_CALIBRATION_KNOTS: {error}") from error


def neo4j_from_env(env: dict[str, str]) -> GraphSettings | None:
    """AISRE_NEO4J_URI (unset: no knowledge graph), AISRE_NEO4J_USER, the password from
    AISRE_NEO4J_PASSWORD_FILE (a mounted Secret, the chart's way) or AISRE_NEO4J_PASSWORD,
    AISRE_NEO4J_DATABASE (default: the server's)."""
    uri = (env.get("AISRE_NEO4J_URI") or "").strip()
    if not uri:
        return None
    password_file = env.get("AISRE_NEO4J_PASSWORD_FILE")
    password = Path(password_file).read_text().strip() if password_file else env.get("AISRE_NEO4J_PASSWORD") or None
    return GraphSettings(uri=uri, user=env.get("AISRE_NEO4J_USER") or None, password=password,
                         database=env.get("AISRE_NEO4J_DATABASE") or None)


def prometheus_from_env(env: dict[str, str]) -> PrometheusSettings | None:
    """AISRE_PROMETHEUS_URL (unset: no metrics agent); auth by AISRE_PROMETHEUS_BEARER_TOKEN_FILE
    (e.g. a projected ServiceAccount token) or AISRE_PROMETHEUS_USERNAME / _PASSWORD;
    AISRE_PROMETHEUS_INSECURE_SKIP_VERIFY=true; AISRE_PROMETHEUS_TIMEOUT seconds per query."""
    url = (env.get("AISRE_PROMETHEUS_URL") or "").strip()
    if not url:
        return None
    token_file = env.get("AISRE_PROMETHEUS_BEARER_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file else None
    return PrometheusSettings(
        url=url.rstrip("/"), bearer_token=token, username=env.get("AISRE_PROMETHEUS_USERNAME") or None,
        password=env.get("AISRE_PROMETHEUS_PASSWORD") or None,
        verify_tls=env.get("AISRE_PROMETHEUS_INSECURE_SKIP_VERIFY", "").lower() not in ("1", "true", "yes"),
        query_timeout_s=float(env.get("AISRE_PROMETHEUS_TIMEOUT", "5")),
    )
