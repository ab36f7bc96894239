"""The fleet on a real Kafka broker (hack/kafka.sh: Apache Kafka in KRaft mode on loopback)
and the real API server: two operators (two tenants) publish each Incident's lifecycle once
per change, in order, to their own topics, and `aisre fleet incidents` shows both; a broker
restart mid-stream loses nothing the buffer holds and keeps per-key order; a poison record
lands in the dead-letter topic while a good external signal opens one Incident, its
redelivery absorbed by the ingest id, and the offsets are committed after."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from aisre.api import GROUP, VERSION
from aisre.api.signal import signal_key
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.cli import main as cli
from aisre.fleet.consumer import ExternalConsumer
from aisre.fleet.envelope import FLEET_SCHEMA, Topics, encode
from aisre.fleet.intake import signal_of
from aisre.fleet.kafka import KafkaSettings, ensure_topics
from aisre.fleet.publisher import Publisher
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import OWN_PREFIX, REPO, deployment, temporary_namespace, wait_pods
from fleet_helpers import Record, committed_to_the_end, read_topic, tenant
from remediation_helpers import get, wait

THRESHOLDS = dataclasses.replace(Thresholds.compressed(), resolve_after=3.0)


def incident(name: str, workload: str) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name},
                       "spec": {"title": f"{workload} pods pending", "source": "manual", "severity": "high",
                                "resource": {"kind": "Deployment", "name": workload}}})


def changes(records: list[Record], uid: str) -> list[str]:
    return [r.value["data"]["change"] for r in records if r.key == uid]  # type: ignore[index]


def fleet_view(bootstrap: str, capsys: Any, *output: str) -> str:
    capsys.readouterr()
    assert cli(["fleet", "incidents", "--bootstrap", bootstrap, *output]) == 0
    return str(capsys.readouterr().out)


def test_two_tenants_publish_each_lifecycle_change_once_in_order_and_the_fleet_view_shows_both(
        kubeconfig: Path, kubectl: Any, kafka: str, own_namespace: str, capsys: Any) -> None:
    a, b = tenant("east"), tenant("west")
    with temporary_namespace(kubectl, OWN_PREFIX) as other:
        spaces = {a: own_namespace, b: other}
        for ns in spaces.values():
            kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("ledger", cpu="64")))
        for ns in spaces.values():
            wait_pods(kubectl, ns, "app=ledger", lambda pods: any(
                any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])) for p in pods))
        operators = [OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns,
                                    kafka=KafkaSettings(bootstrap=kafka, tenant=t)) for t, ns in spaces.items()]
        with operators[0], operators[1]:
            for ns in spaces.values():
                kubectl("apply", "-n", ns, "-f", "-", input=incident("ledger-pending", "ledger"))
            uids = {t: get(kubectl, "incident", "ledger-pending", ns)["metadata"]["uid"] for t, ns in spaces.items()}
            for t, ns in spaces.items():
                wait(lambda: (get(kubectl, "incident", "ledger-pending", ns).get("status") or {}).get("rootCause"),
                     90, f"{t}: a root cause")
                wait(lambda: "RootCauseIdentified" in changes(read_topic(kafka, Topics(t).incidents), uids[t]), 20,
                     f"{t}: the root cause published")

            # The fleet view: both clusters' open Incidents, with their root cause.
            items = json.loads(fleet_view(kafka, capsys, "-o", "json"))["items"]
            mine = {i["cluster"]: i for i in items if i["cluster"] in spaces}
            assert set(mine) == {a, b}
            for t, ns in spaces.items():
                assert mine[t]["namespace"] == ns and mine[t]["name"] == "ledger-pending"
                assert mine[t]["severity"] == "high" and mine[t]["rootCause"].startswith("InsufficientResources")
                assert 0 < mine[t]["confidence"] <= 1 and mine[t]["age"]
            table = fleet_view(kafka, capsys)
            assert table.splitlines()[0].split()[:4] == ["SEVERITY", "CLUSTER", "NAMESPACE", "NAME"]
            assert any(a in line and own_namespace in line for line in table.splitlines())
            assert any(b in line and other in line for line in table.splitlines())

            # a resolves: its Resolved record follows; the view then shows b alone.
            kubectl("patch", "incident", "ledger-pending", "-n", own_namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"state": "Resolved", "resolvedAt": "2030-01-01T00:00:00Z"}}))
            wait(lambda: "Resolved" in changes(read_topic(kafka, Topics(a).incidents), uids[a]), 30, "the resolution published")
            time.sleep(2)  # any duplicate a later status write would cause has time to arrive
            table = fleet_view(kafka, capsys)
            assert not any(a in line for line in table.splitlines()) and any(b in line for line in table.splitlines())

    for t in spaces:
        records = read_topic(kafka, Topics(t).incidents)
        assert {r.key for r in records} == {uids[t]}, "each operator publishes its own Incidents only, keyed by uid"
        assert len({r.partition for r in records}) == 1, "one key, one partition: its order holds"
        envelopes = [r.value for r in records]
        assert all(e["schema_version"] == FLEET_SCHEMA and e["tenant"] == t and e["type"] == "incident"  # type: ignore[index]
                   for e in envelopes)
        ids = [e["data"]["changeId"] for e in envelopes]  # type: ignore[index]
        assert len(ids) == len(set(ids)), f"a change published twice: {ids}"
        said = changes(records, uids[t])
        assert said[:2] == ["Opened", "RootCauseIdentified"], said
        assert set(said) <= {"Opened", "RootCauseIdentified", "ActionDecided", "ActionExecuted", "ActionVerified", "Resolved"}
        summary = next(e["data"]["rootCause"]["summary"] for e in envelopes  # type: ignore[index]
                       if e["data"]["change"] == "RootCauseIdentified")  # type: ignore[index]
        assert summary, "the Investigation's summary travels with the record"
        audits = read_topic(kafka, Topics(t).audit)
        assert "RootCauseChosen" in {r.value["data"]["decision"] for r in audits}  # type: ignore[index]
        assert all(r.value["tenant"] == t for r in audits)  # type: ignore[index]
    assert changes(read_topic(kafka, Topics(a).incidents), uids[a])[-1] == "Resolved"
    assert "Resolved" not in changes(read_topic(kafka, Topics(b).incidents), uids[b])


def broker(command: str) -> None:  # our own broker, as the kafka fixture started it (with its secure listener)
    subprocess.run(["bash", str(REPO / "hack" / "kafka.sh"), command, *(["--secure"] if command == "start" else [])],
                   check=True, timeout=120, capture_output=True)


@pytest.mark.skipif(bool(os.environ.get("AISRE_TEST_KAFKA_BOOTSTRAP")), reason="restarts the broker: only our own")
def test_a_broker_restart_mid_stream_loses_nothing_within_the_buffer_and_keeps_per_key_order(kafka: str) -> None:
    settings = KafkaSettings(bootstrap=kafka, tenant=tenant("restart"), buffer=20_000)
    ensure_topics(settings)
    topic, keys, total = settings.topics.signals, 25, 3000
    publisher = Publisher(settings.client_config(), settings.buffer)

    def offer(numbers: range) -> None:
        for n in numbers:
            assert publisher.offer(topic, f"key-{n % keys}", encode("signal", settings.tenant, f"key-{n % keys}", {"n": n}))

    try:
        offer(range(0, 1000))
        assert publisher.flush(30) == 0
        broker("stop")
        try:
            offer(range(1000, 2000))  # the broker is away: they wait in the buffer
            wait(lambda: publisher.state().broker_down, 20, "the outage noticed")
            assert publisher.state().pending == 1000 and publisher.state().dropped == 0
        finally:
            broker("start")
        offer(range(2000, total))
        assert publisher.flush(60) == 0, publisher.state()
    finally:
        publisher.close()
    records = read_topic(kafka, topic)
    numbers = [r.value["data"]["n"] for r in records]  # type: ignore[index]
    assert sorted(numbers) == list(range(total)), "every record once: none lost, none twice (idempotent producer)"
    for key in {r.key for r in records}:
        mine = [r.value["data"]["n"] for r in records if r.key == key]  # type: ignore[index]
        assert mine == sorted(mine), f"{key}: out of order"


def test_a_poison_record_is_dead_lettered_and_a_good_external_signal_opens_one_incident(
        kubeconfig: Path, kubectl: Any, kafka: str, own_namespace: str) -> None:
    ns = own_namespace
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("checkout", replicas=1)))
    settings = KafkaSettings(bootstrap=kafka, tenant=tenant("ext"), consume_external=True)
    topics = settings.topics
    good = {"ingest_id": "synthetic-probe-7", "reason": "CheckoutProbeFailing", "severity": "high", "message": "p95 4 s",
            "entity": {"namespace": ns, "kind": "Deployment", "name": "checkout"}}
    port = free_port()
    with OperatorThread(kubeconfig, port, namespaces=(ns,), detection=True, operator_namespace=ns, thresholds=THRESHOLDS,
                        kafka=settings):
        producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
        sent = time.monotonic()
        for key, value in ((b"poison", b"\x00\x01 not json"),
                           (b"bad", encode("signal", "probe", "bad", {**good, "ingest_id": "x", "entity": {
                               "namespace": ns, "kind": "ConfigMap", "name": "settings"}})),
                           (b"synthetic-probe-7", encode("signal", "probe", "synthetic-probe-7", good)),
                           (b"synthetic-probe-7", encode("signal", "probe", "synthetic-probe-7", good))):  # redelivered
            producer.produce(topics.external, key=key, value=value)
        producer.flush(10)

        def opened() -> list[dict[str, Any]]:
            return json.loads(kubectl("get", "incidents", "-n", ns, "-o", "json").stdout)["items"]

        [found] = wait(opened, 30, "an Incident from the external signal")
        latency = time.monotonic() - sent
        letters = wait(lambda: read_topic(kafka, topics.dead_letter) or None, 20, "the dead letters")
        wait(lambda: committed_to_the_end(kafka, settings), 20, "the external topic's offsets committed")
        readyz = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        time.sleep(1.5)  # the redelivered copy had its chance to open a second Incident
        assert len(opened()) == 1
    spec = found["spec"]
    assert spec["resource"]["kind"] == "Deployment" and spec["resource"]["name"] == "checkout", spec
    assert [(s["source"], s["reason"]) for s in spec["signals"]] == [("external", "CheckoutProbeFailing")]
    assert spec["occurrences"] == 1, "the redelivered record folded into the first (same ingest id)"
    assert sorted(r.key for r in letters) == ["bad", "poison"]
    reasons = {r.key: r.headers["aisre-reason"] for r in letters}
    assert reasons["poison"].startswith("not JSON") and "entity.kind" in reasons["bad"], reasons
    assert all(r.headers["aisre-topic"] == topics.external and r.value != b"" for r in letters)
    assert readyz["fleet"]["external"]["stored"] == 2 and readyz["fleet"]["external"]["deadLettered"] == 2, readyz
    assert readyz["fleet"]["type"] == "FleetPublishing" and readyz["fleet"]["status"] == "True", readyz
    published = [r for r in read_topic(kafka, topics.signals) if r.value["data"]["source"] == "external"]  # type: ignore[index]
    assert published and all(r.value["data"]["reason"] == "CheckoutProbeFailing" for r in published)  # type: ignore[index]
    print(f"external signal on Kafka -> Incident: {latency:.2f} s")




def test_offsets_are_committed_only_after_the_signals_are_stored_so_a_crash_redelivers(kafka: str) -> None:
    settings = KafkaSettings(bootstrap=kafka, tenant=tenant("crash"))
    ensure_topics(settings)
    topics = settings.topics
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    for n in range(5):
        data = {"ingest_id": f"id-{n}", "reason": "ProbeFailing", "entity": {"namespace": "shop", "kind": "Service",
                                                                            "name": "web"}}
        producer.produce(topics.external, key=f"id-{n}", value=encode("signal", "probe", f"id-{n}", data))
    producer.flush(10)

    def convert(value: bytes | None) -> Any:
        return signal_of(value, lambda _: (), dt.datetime.now(dt.UTC))

    class Crash(Exception):
        pass

    def crashing(signals: list[Any]) -> list[Any]:
        raise Crash("the operator died while storing")

    stored: list[str] = []

    def storing(signals: list[Any]) -> list[Any]:
        stored.extend(s.key for s in signals)
        return []

    async def run(store: Any) -> None:
        consumer = ExternalConsumer(settings.client_config(), topics.external, topics.dead_letter, f"aisre-{settings.tenant}",
                                    convert, store)
        consumer.consumer = await asyncio.to_thread(consumer._open)
        try:
            deadline = time.monotonic() + 20
            read = 0
            while read < 5 and time.monotonic() < deadline:
                read += await consumer.step()
        finally:
            await consumer._reopen()

    with pytest.raises(Crash):
        asyncio.run(run(crashing))
    asyncio.run(run(storing))  # the next operator: the whole batch again, nothing was committed
    assert len(stored) == 5 and len(set(stored)) == 5
    assert set(stored) == {signal_key("external", f"id-{n}") for n in range(5)}, \
        "the same ingest ids, the same keys: detection folds the redelivered batch into what it holds"


def test_kafka_away_never_holds_up_detection_and_is_reported(kubeconfig: Path, kubectl: Any, own_namespace: str) -> None:
    ns, port = own_namespace, free_port()
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("ledger", cpu="64")))
    began = time.monotonic()
    with OperatorThread(kubeconfig, port, namespaces=(ns,), detection=True, operator_namespace=ns, thresholds=THRESHOLDS,
                        kafka=KafkaSettings(bootstrap=nowhere, tenant=tenant("away"), buffer=3)):
        assert time.monotonic() - began < 15, "the operator's start waited for Kafka"
        found = wait(lambda: [i for i in json.loads(kubectl("get", "incidents", "-n", ns, "-o", "json").stdout)["items"]
                              if (i.get("status") or {}).get("rootCause")], 90, "an Incident investigated without Kafka")
        assert found[0]["status"]["rootCause"]["category"] == "InsufficientResources"

        def reported() -> dict[str, Any] | None:
            fleet = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["fleet"]
            return fleet if fleet["reason"] == "BrokerUnreachable" and fleet["dropped"] > 0 else None

        fleet = wait(reported, 30, "the outage on /readyz")
        assert fleet["status"] == "False" and fleet["pending"] == 3, fleet

        def dropped() -> float:  # the metrics follow the publisher's counts each second
            for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
                if line.startswith("aisre_fleet_envelopes_total") and f'tenant="{fleet["tenant"]}"' in line \
                        and 'outcome="dropped"' in line:
                    return float(line.split()[-1])
            return 0.0

        wait(dropped, 10, "the dropped envelopes counted in aisre_fleet_envelopes_total")
