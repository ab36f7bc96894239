"""The fleet through the broker's SASL_SSL listener (hack/kafka.sh start --secure: TLS with a
CA made by keytool, SASL SCRAM-SHA-512): settings read from the AISRE_KAFKA_* environment as
the operator and the CLI read them; topics created, envelopes published, external signals
consumed and committed, and the fleet view read, all through it. Wrong credentials or a
missing CA fail at once with the broker's reason, not after a timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest

from aisre.cli import main as cli
from aisre.errors import KafkaAccessDenied
from aisre.fleet.consumer import ExternalConsumer
from aisre.fleet.envelope import encode
from aisre.fleet.intake import signal_of
from aisre.fleet.kafka import KafkaSettings, ensure_topics
from aisre.fleet.publisher import Publisher
from fleet_helpers import committed_to_the_end, tenant
from remediation_helpers import wait


def secure_settings(env: dict[str, str], **changes: str) -> KafkaSettings:
    settings = KafkaSettings.from_env({**env, **changes})
    assert settings is not None
    return settings


def test_publish_consume_and_read_the_fleet_view_through_tls_and_sasl(
        kafka_secure: dict[str, str], capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    name = tenant("secure")
    settings = secure_settings(kafka_secure, AISRE_FLEET_TENANT=name, AISRE_KAFKA_CONSUME_EXTERNAL="true")
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism == "SCRAM-SHA-512"
    assert ensure_topics(settings) == list(settings.topics.all()), "topics created through the secure listener"

    publisher = Publisher(settings.client_config(), settings.buffer)
    try:
        incident = {"uid": "uid-secure-1", "namespace": "shop", "name": "checkout-slow", "severity": "high",
                    "state": "Open", "openedAt": "2030-01-01T00:00:00Z", "change": "Opened", "changeId": "opened"}
        assert publisher.offer(settings.topics.incidents, "uid-secure-1", encode("incident", name, "uid-secure-1", incident))
        data = {"ingest_id": "probe-secure-1", "reason": "ProbeFailing",
                "entity": {"namespace": "shop", "kind": "Service", "name": "web"}}
        assert publisher.offer(settings.topics.external, "probe-secure-1", encode("signal", "probes", "probe-secure-1", data))
        assert publisher.flush(20) == 0 and publisher.state().published == 2, publisher.state()
    finally:
        publisher.close()

    stored: list[str] = []

    def store(signals: list[Any]) -> list[Any]:
        stored.extend(s.key for s in signals)
        return []

    async def consume() -> None:
        consumer = ExternalConsumer(settings.client_config(), settings.topics.external, settings.topics.dead_letter,
                                    f"aisre-{name}", lambda v: signal_of(v, lambda _: (), dt.datetime.now(dt.UTC)), store)
        consumer.consumer = await asyncio.to_thread(consumer._open)
        try:
            deadline = time.monotonic() + 30
            while not stored and time.monotonic() < deadline:
                await consumer.step()
        finally:
            await consumer._reopen()

    asyncio.run(consume())
    assert len(stored) == 1
    wait(lambda: committed_to_the_end(kafka_secure["AISRE_KAFKA_BOOTSTRAP"], settings,
                                      **{k: v for k, v in settings.client_config().items() if k != "logger"}),
         20, "the offset committed through the secure listener")

    # The CLI reads the same variables.
    for key, value in kafka_secure.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert cli(["fleet", "incidents", "-o", "json"]) == 0
    items = [i for i in json.loads(capsys.readouterr().out)["items"] if i["cluster"] == name]
    assert [(i["namespace"], i["name"]) for i in items] == [("shop", "checkout-slow")]


@pytest.mark.parametrize("wrong", ["password", "ca"])
def test_wrong_credentials_or_ca_fail_at_once_with_the_brokers_reason(
        kafka_secure: dict[str, str], wrong: str, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ({"AISRE_KAFKA_SASL_PASSWORD_FILE": "", "AISRE_KAFKA_SASL_PASSWORD": "not-the-password"} if wrong == "password"
           else {"AISRE_KAFKA_CA_FILE": ""})  # the system's CAs: they never signed the test CA
    settings = secure_settings(kafka_secure, AISRE_FLEET_TENANT=tenant("denied"), **bad)
    began = time.monotonic()
    with pytest.raises(KafkaAccessDenied) as denied:
        ensure_topics(settings, timeout=20)
    took = time.monotonic() - began
    assert took < 10, f"took {took:.1f} s: a refusal must not wait out the timeout"
    said = str(denied.value)
    assert ("Authentication failed" in said and "SCRAM-SHA-512" in said if wrong == "password"
            else "certificate verify failed" in said), said
    assert denied.value.reason == "KafkaAccessDenied"

    # The publisher says so in its state (the operator's FleetPublishing condition) and keeps what it holds.
    publisher = Publisher(settings.client_config(), 10)
    try:
        assert publisher.offer(settings.topics.signals, "k", b"{}")
        state = wait(lambda: publisher.state() if publisher.state().denied else None, 15, "the refusal reported")
        assert state.reason == "AccessDenied" and state.pending == 1, state
    finally:
        publisher.close(timeout=0.5)

    # The CLI: exit 1 with the reason, at once.
    for key, value in {**kafka_secure, **bad}.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    began = time.monotonic()
    assert cli(["fleet", "incidents", "--timeout", "20"]) == 1
    assert time.monotonic() - began < 10
    assert "refused the connection" in capsys.readouterr().err
