"""The one seam to Kafka: connection settings (TLS, SASL) as librdkafka configuration, and
topic creation. confluent-kafka (librdkafka) does the protocol, its retries and the
idempotent producer; everything here is configuration and a bounded admin call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from aisre.errors import KafkaAccessDenied
from aisre.fleet.envelope import Topics, check_tenant

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# librdkafka's errors that say the broker refused who we are or how we talk, not that it is away.
ACCESS_ERRORS = (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
                 KafkaError._UNSUPPORTED_FEATURE)


def access_denied(error: KafkaError) -> bool:
    return error.code() in ACCESS_ERRORS


def list_topics(client_config: dict[str, Any], timeout: float = 10.0) -> ClusterMetadata:
    """The cluster's topics. A broker that refuses our credentials or TLS raises
    KafkaAccessDenied with its words at once (librdkafka alone would retry them until the
    timeout and then say only that the request timed out); no broker in ``timeout``: TimeoutError."""
    denied: list[str] = []

    def error_cb(error: KafkaError) -> None:
        if access_denied(error):
            denied.append(error.str())

    admin = AdminClient({**client_config, "error_cb": error_cb})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as error:
            admin.poll(0)  # serves error_cb
            if denied:
                raise KafkaAccessDenied(f"the Kafka broker at {client_config.get('bootstrap.servers')} refused the "
                                        f"connection: {denied[0]}") from error
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Kafka broker answered at {client_config.get('bootstrap.servers')} in "
                                   f"{timeout:g} s: {error}") from error


@dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is and how to talk to it. Secrets come from files (a mounted Secret)
    or the environment (the chart maps a Secret's keys into it)."""

    bootstrap: str
    tenant: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ca_file: str | None = None  # PEM of the CA that signed the brokers' certificates
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    buffer: int = 10_000  # envelopes held for the broker at most; beyond it they are dropped and counted
    partitions: int = 3  # of the topics aisre creates
    replication: int = -1  # of the topics aisre creates; -1: the broker's default
    consume_external: bool = False  # read aisre.<tenant>.external into detection
    extra: dict[str, str] = field(default_factory=dict)  # further librdkafka settings, as given

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"security protocol {self.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
        if self.buffer < 1:
            raise ValueError("the fleet buffer holds at least one envelope")

    @property
    def topics(self) -> Topics:
        return Topics(self.tenant)

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings every client of ours shares."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol.lower(),
                                  "client.id": f"aisre-{self.tenant}",
                                  # librdkafka's log lines through Python's logging, not straight to stderr
                                  "logger": logging.getLogger("aisre.fleet.librdkafka")}
        if self.sasl_mechanism:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username or "",
                           "sasl.password": self.sasl_password or ""})
        for key, path in (("ssl.ca.location", self.ca_file), ("ssl.certificate.location", self.cert_file),
                          ("ssl.key.location", self.key_file)):
            if path:
                config[key] = path
        config.update(self.extra)
        return config

    @classmethod
    def from_env(cls, env: dict[str, str]) -> KafkaSettings | None:
        """AISRE_KAFKA_BOOTSTRAP (unset: no Kafka), AISRE_FLEET_TENANT (default: the cluster id
        AISRE_CLUSTER_NAME, else "default"), AISRE_KAFKA_SECURITY_PROTOCOL, AISRE_KAFKA_SASL_MECHANISM,
        AISRE_KAFKA_SASL_USERNAME, AISRE_KAFKA_SASL_PASSWORD (or _FILE), AISRE_KAFKA_CA_FILE,
        AISRE_KAFKA_CERT_FILE, AISRE_KAFKA_KEY_FILE, AISRE_KAFKA_BUFFER, AISRE_KAFKA_PARTITIONS,
        AISRE_KAFKA_REPLICATION, AISRE_KAFKA_CONSUME_EXTERNAL=true."""
        bootstrap = (env.get("AISRE_KAFKA_BOOTSTRAP") or "").strip()
        if not bootstrap:
            return None
        password_file = env.get("AISRE_KAFKA_SASL_PASSWORD_FILE")
        password = Path(password_file).read_text().strip() if password_file else env.get("AISRE_KAFKA_SASL_PASSWORD")
        return cls(
            bootstrap=bootstrap,
            tenant=(env.get("AISRE_FLEET_TENANT") or env.get("AISRE_CLUSTER_NAME") or "default").strip(),
            security_protocol=(env.get("AISRE_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=env.get("AISRE_KAFKA_SASL_MECHANISM") or None,
            sasl_username=env.get("AISRE_KAFKA_SASL_USERNAME") or None, sasl_password=password or None,
            ca_file=env.get("AISRE_KAFKA_CA_FILE") or None, cert_file=env.get("AISRE_KAFKA_CERT_FILE") or None,
            key_file=env.get("AISRE_KAFKA_KEY_FILE") or None,
            buffer=int(env.get("AISRE_KAFKA_BUFFER") or cls.buffer),
            partitions=int(env.get("AISRE_KAFKA_PARTITIONS") or cls.partitions),
            replication=int(env.get("AISRE_KAFKA_REPLICATION") or cls.replication),
            consume_external=(env.get("AISRE_KAFKA_CONSUME_EXTERNAL") or "").lower() in ("1", "true", "yes", "on"),
        )


def ensure_topics(settings: KafkaSettings, timeout: float = 10.0) -> list[str]:
    """Create the tenant's topics that do not exist; returns those created. A broker that
    refuses (no ACL to create) raises KafkaException: the topics must then exist already;
    one that refuses our credentials, KafkaAccessDenied."""
    existing = set(list_topics(settings.client_config(), timeout).topics)
    admin = AdminClient(settings.client_config())
    wanted = [t for t in settings.topics.all() if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics([NewTopic(t, num_partitions=settings.partitions, replication_factor=settings.replication)
                                   for t in wanted], request_timeout=timeout)
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another replica made it first
                raise
    return created
