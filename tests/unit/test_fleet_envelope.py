"""The fleet's record format, topic names, lifecycle changes, intake of external signals and
the fleet view's fold: pure parts, no broker."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource
from aisre.fleet.envelope import FLEET_SCHEMA, Envelope, Topics, changes_of, encode, snapshot
from aisre.fleet.intake import MAX_RECORD, signal_of
from aisre.fleet.kafka import KafkaSettings
from aisre.fleet.view import fold, rows, table

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def incident(**status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": "u-1", "namespace": "shop", "name": "checkout-crash", "creationTimestamp": "2026-12-07T11:00:00Z"},
            "spec": {"title": "Deployment/checkout: CrashLoopBackOff", "severity": "high", "source": "detection",
                     "resource": {"kind": "Deployment", "name": "checkout", "namespace": "shop"}},
            "status": status}


def test_topics_are_per_tenant_and_a_tenant_is_a_plain_name() -> None:
    topics = Topics("eu-prod-1")
    assert topics.all() == ("aisre.eu-prod-1.signals", "aisre.eu-prod-1.incidents", "aisre.eu-prod-1.audit",
                            "aisre.eu-prod-1.external", "aisre.eu-prod-1.external.dlq")
    for bad in ("EU", "a.b", "", "-x", "x" * 64):
        with pytest.raises(ValueError):
            Topics(bad)


def test_an_encoded_envelope_reads_back_with_its_schema_version() -> None:
    raw = encode("signal", "eu", "k1", {"reason": "OOMKilled"}, NOW)
    envelope = Envelope.model_validate(json.loads(raw))
    assert (envelope.schema_version, envelope.type, envelope.tenant, envelope.key) == (FLEET_SCHEMA, "signal", "eu", "k1")
    assert envelope.time == NOW and envelope.data == {"reason": "OOMKilled"}


def test_lifecycle_changes_follow_the_incident_and_each_has_a_stable_id() -> None:
    assert [c[1] for c in changes_of(incident(state="Open"))] == ["Opened"]
    root = {"category": "BadConfig", "resource": {"kind": "ConfigMap", "name": "cfg"}, "summary": "a key is wrong",
            "confidence": 0.9}
    action = {"id": "a1", "type": "rollback", "target": {"kind": "Deployment", "name": "checkout"}, "decision": "Execute",
              "startedAt": "2026-12-07T11:05:00Z", "result": "Succeeded"}
    resolved = incident(state="Resolved", rootCause=root, remediations=[action], resolvedAt="2026-12-07T11:10:00Z")
    found = changes_of(resolved)
    assert [c[1] for c in found] == ["Opened", "RootCauseIdentified", "ActionDecided", "ActionExecuted", "ActionVerified",
                                     "Resolved"]
    assert [c[0] for c in found] == ["opened", "identified:BadConfig:ConfigMap/cfg", "decided:a1:Execute", "executed:a1",
                                     "verified:a1:Succeeded", "resolved"]
    assert found == changes_of(resolved)  # derived again: the same ids
    # Another root cause after a re-investigation is a change of its own.
    other = incident(rootCause={**root, "category": "OOMKilled"})
    assert "identified:OOMKilled:ConfigMap/cfg" in [c[0] for c in changes_of(other)]


def test_a_snapshot_carries_what_the_fleet_view_shows() -> None:
    root = {"category": "BadConfig", "summary": "a key is wrong", "confidence": 0.9}
    got = snapshot(incident(state="Identified", rootCause=root, investigationRef={"name": "inv-1"}))
    assert got["uid"] == "u-1" and got["severity"] == "high" and got["rootCause"]["summary"] == "a key is wrong"
    assert got["investigation"] == "inv-1" and got["openedAt"] == "2026-12-07T11:00:00Z"


def external(**data: Any) -> bytes:
    body = {"ingest_id": "synthetic-42", "reason": "ErrorBudgetBurn", "severity": "high",
            "entity": {"namespace": "shop", "kind": "Deployment", "name": "checkout"}, **data}
    return encode("signal", "probe", "synthetic-42", body, NOW)


OWNERS = (ResourceRef(kind="Deployment", name="checkout", namespace="shop"),)


def test_an_external_signal_becomes_a_signal_keyed_by_its_ingest_id() -> None:
    got = signal_of(external(), lambda _: OWNERS, NOW)
    assert isinstance(got, Signal)
    assert got.source == SignalSource.EXTERNAL and got.object.display() == "Deployment/checkout"
    assert got.owners == OWNERS and got.firing and got.severity.value == "high"
    again = signal_of(external(message="other words"), lambda _: OWNERS, NOW + dt.timedelta(seconds=5))
    assert isinstance(again, Signal) and again.key == got.key  # redelivered or resent: one signal
    other = signal_of(external(ingest_id="synthetic-43"), lambda _: OWNERS, NOW)
    assert isinstance(other, Signal) and other.key != got.key
    cleared = signal_of(external(firing=False), lambda _: OWNERS, NOW)
    assert isinstance(cleared, Signal) and not cleared.firing


@pytest.mark.parametrize("value, why", [
    (None, "tombstone"),
    (b"{not json", "not JSON"),
    (b'{"schema_version": "aisre.fleet/v0", "type": "signal", "tenant": "x", "key": "k", "time": "2026-01-01T00:00:00Z", "data": {}}',
     "not a fleet envelope: schema_version"),
    (encode("audit", "x", "k", {}), "only signal records"),
    (external(entity={"namespace": "Shop!", "kind": "Deployment", "name": "x"}), "entity.namespace"),
    (external(entity={"namespace": "shop", "kind": "ConfigMap", "name": "x"}), "entity.kind"),
    (external(ingest_id=""), "ingest_id"),
    (external(surprise=1), "surprise"),
    (b"x" * (MAX_RECORD + 1), "larger than"),
])
def test_a_bad_record_is_refused_with_its_reason(value: bytes | None, why: str) -> None:
    got = signal_of(value, lambda _: (), NOW)
    assert isinstance(got, str) and why in got


def test_a_namespace_the_operator_does_not_watch_is_refused() -> None:
    got = signal_of(external(), lambda _: (), NOW, namespace_allowed=lambda ns: ns != "shop")
    assert isinstance(got, str) and "not watched" in got


def record(tenant: str, key: str, change: str, **data: Any) -> Envelope:
    return Envelope(type="incident", tenant=tenant, key=key, time=NOW, data={"change": change, **data})


def test_the_fleet_view_keeps_the_latest_record_per_tenant_and_key_and_shows_the_open_ones() -> None:
    base = {"namespace": "shop", "name": "checkout-crash", "severity": "high", "openedAt": "2026-12-07T11:00:00Z"}
    envelopes = [
        record("eu", "u-1", "Opened", **base, state="Open"),
        record("eu", "u-1", "RootCauseIdentified", **base, state="Identified",
               rootCause={"category": "BadConfig", "resource": {"kind": "ConfigMap", "name": "cfg"}, "confidence": 0.87}),
        record("us", "u-1", "Opened", **{**base, "severity": "critical", "openedAt": "2026-12-07T11:59:30Z"}, state="Open"),
        record("us", "u-2", "Opened", **base, state="Open"),
        record("us", "u-2", "Resolved", **base, state="Resolved"),
        record("us", "u-3", "Opened", **base, state="Open"),
        record("us", "u-3", "Deleted", **base, state="Open"),
    ]
    found = rows(fold(envelopes))
    assert [(r.cluster, r.severity, r.state) for r in found] == [("us", "critical", "Open"), ("eu", "high", "Identified")]
    assert found[1].root_cause == "BadConfig (ConfigMap/cfg)" and found[1].confidence == 0.87
    text = table(found, NOW)
    assert text.splitlines()[0].split() == ["SEVERITY", "CLUSTER", "NAMESPACE", "NAME", "STATE", "ROOT", "CAUSE",
                                            "CONFIDENCE", "AGE"]
    assert "30s" in text.splitlines()[1] and "1h" in text.splitlines()[2] and "0.87" in text


def test_kafka_settings_come_from_the_environment_with_tls_and_sasl(tmp_path: Any) -> None:
    assert KafkaSettings.from_env({}) is None
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    settings = KafkaSettings.from_env({"AISRE_KAFKA_BOOTSTRAP": "kafka:9093", "AISRE_FLEET_TENANT": "eu-prod",
                                       "AISRE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "AISRE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                       "AISRE_KAFKA_SASL_USERNAME": "aisre", "AISRE_KAFKA_SASL_PASSWORD_FILE": str(password),
                                       "AISRE_KAFKA_CA_FILE": "/etc/kafka/ca.crt", "AISRE_KAFKA_BUFFER": "500",
                                       "AISRE_KAFKA_CONSUME_EXTERNAL": "true"})
    assert settings is not None and settings.buffer == 500 and settings.consume_external
    config = settings.client_config()
    assert config["security.protocol"] == "sasl_ssl" and config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == "/etc/kafka/ca.crt" and config["bootstrap.servers"] == "kafka:9093"
    with pytest.raises(ValueError):
        KafkaSettings.from_env({"AISRE_KAFKA_BOOTSTRAP": "k:1", "AISRE_KAFKA_SECURITY_PROTOCOL": "tls"})
    with pytest.raises(ValueError):
        KafkaSettings.from_env({"AISRE_KAFKA_BOOTSTRAP": "k:1", "AISRE_FLEET_TENANT": "Prod.EU"})


def test_the_fleet_cli_says_what_is_missing(monkeypatch: Any, capsys: Any) -> None:
    from aisre.cli import main

    monkeypatch.delenv("AISRE_KAFKA_BOOTSTRAP", raising=False)
    assert main(["fleet", "incidents"]) == 1
    assert "give --bootstrap" in capsys.readouterr().err
    assert main(["fleet", "incidents", "--bootstrap", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert "no Kafka broker answered at 127.0.0.1:1" in capsys.readouterr().err
