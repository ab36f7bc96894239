"""The fleet across operator crashes and restarts, on the real broker and API server: an
external signal's offset is committed only once the Incident carrying it is written (a
crash before redelivers it, and its ingest id folds the redelivery into one Incident), and
an Incident's lifecycle changes are published once across a restart of the operator."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from aisre.api import GROUP, VERSION
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.fleet.consumer import ExternalConsumer
from aisre.fleet.envelope import encode
from aisre.fleet.kafka import KafkaSettings, ensure_topics
from aisre.operator.detection import store
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import deployment
from fleet_helpers import committed_to_the_end, read_topic, tenant
from remediation_helpers import get, wait

# Long resolve window: an adopted Incident must not resolve while a restarted operator's
# consumer joins its group (held alerts are in memory: only the redelivery brings them back).
THRESHOLDS = dataclasses.replace(Thresholds.compressed(), resolve_after=120.0)


def incidents(kubectl: Any, ns: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "incidents", "-n", ns, "-o", "json").stdout)["items"]


def external(port: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["fleet"].get("external") or {}


def test_an_external_signal_is_committed_once_its_incident_is_written_and_a_crash_before_redelivers_it(
        kubeconfig: Path, kubectl: Any, kafka: str, own_namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = own_namespace
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment("checkout", replicas=1)))
    settings = KafkaSettings(bootstrap=kafka, tenant=tenant("durable"), consume_external=True)
    ensure_topics(settings)
    data = {"ingest_id": "probe-checkout-1", "reason": "CheckoutProbeFailing", "severity": "high",
            "entity": {"namespace": ns, "kind": "Deployment", "name": "checkout"}}
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True})
    producer.produce(settings.topics.external, key=b"probe-checkout-1",
                     value=encode("signal", "synthetic-probes", "probe-checkout-1", data))
    assert producer.flush(10) == 0

    def operator(port: int) -> OperatorThread:
        return OperatorThread(kubeconfig, port, namespaces=(ns,), detection=True, operator_namespace=ns,
                              thresholds=THRESHOLDS, kafka=settings)

    # 1. The operator reads the signal, but its Incident cannot be written (the API server
    # refuses the store step): the offset stays uncommitted however long it runs.
    tried: list[str] = []

    async def refused(_client: Any, tracked: Any, *_: Any) -> None:
        tried.append(tracked.name)
        raise httpx.ConnectError("injected: the Incident's write fails")

    monkeypatch.setattr(store, "create", refused)
    port = free_port()
    with operator(port):
        wait(lambda: external(port).get("stored") == 1, 30, "the signal read into detection")
        wait(lambda: len(tried) >= 3, 30, "the Incident's write tried (and failed) three times")
        assert not committed_to_the_end(kafka, settings), "committed before the signal was stored"
    monkeypatch.undo()
    assert incidents(kubectl, ns) == []

    # 2. The next operator gets it again and writes its Incident, then "crashes" before it
    # commits (its commits do nothing).
    async def no_commit(self: ExternalConsumer, _: Any) -> None:
        return None

    monkeypatch.setattr(ExternalConsumer, "_commit", no_commit)
    port = free_port()
    with operator(port):
        [written] = wait(lambda: incidents(kubectl, ns), 30, "the Incident from the redelivered signal")
    monkeypatch.undo()
    assert not committed_to_the_end(kafka, settings)

    # 3. A third operator: the record comes a third time; the Incident written before carries
    # its ingest id, so nothing new opens and the offset is committed.
    port = free_port()
    with operator(port):
        wait(lambda: external(port).get("stored") == 1, 30, "the redelivered signal read")
        wait(lambda: committed_to_the_end(kafka, settings), 20, "the offset committed once the signal is on record")
        time.sleep(2 * THRESHOLDS.settle + 1)  # a second Incident would have had its settle time
        [now] = incidents(kubectl, ns)
        table = kubectl("get", "incidents", "-n", ns, "-o", "wide").stdout
    assert now["metadata"]["uid"] == written["metadata"]["uid"]
    spec = now["spec"]
    assert spec["occurrences"] == 1, "three deliveries of one ingest id are one signal"
    assert (spec["source"], spec.get("origin")) == ("external", "synthetic-probes"), spec
    header, row = table.splitlines()[:2]

    def column(name: str) -> str:  # kubectl aligns each column's values under its header
        return row[header.index(f" {name} ") + 1:].split()[0]

    assert column("SOURCE") == "external" and column("ORIGIN") == "synthetic-probes", table


def test_each_lifecycle_change_is_published_once_across_an_operator_restart(
        kubeconfig: Path, kubectl: Any, kafka: str, own_namespace: str) -> None:
    ns = own_namespace
    settings = KafkaSettings(bootstrap=kafka, tenant=tenant("restart"))
    ensure_topics(settings)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": "ledger-slow"},
            "spec": {"title": "ledger is slow", "source": "manual", "severity": "high", "investigate": False,
                     "resource": {"kind": "Deployment", "name": "ledger"}}}
    annotation = f"fleet.{GROUP}/{settings.tenant}"

    def operator() -> OperatorThread:
        return OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=False, operator_namespace=ns,
                              kafka=settings)

    def recorded() -> list[str]:
        return json.loads((get(kubectl, "incident", "ledger-slow", ns)["metadata"].get("annotations") or {})
                          .get(annotation) or "[]")

    with operator():
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
        kubectl("patch", "incident", "ledger-slow", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"state": "Identified", "rootCause": {"category": "BadConfigChange", "confidence": 0.8,
                                                             "resource": {"kind": "ConfigMap", "name": "ledger"}}}}))
        wait(lambda: len(recorded()) == 2, 20, "the two published changes recorded on the Incident")
    uid = get(kubectl, "incident", "ledger-slow", ns)["metadata"]["uid"]
    assert recorded() == ["opened", "identified:BadConfigChange:ConfigMap/ledger"]

    with operator():  # a new operator on the same cluster: it sees the Incident afresh
        kubectl("patch", "incident", "ledger-slow", "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"state": "Resolved", "resolvedAt": "2030-01-01T00:00:00Z"}}))
        wait(lambda: "resolved" in recorded(), 20, "the resolution published and recorded")
    ids = [r.value["data"]["changeId"] for r in read_topic(kafka, settings.topics.incidents)  # type: ignore[index]
           if r.key == uid]
    assert ids == ["opened", "identified:BadConfigChange:ConfigMap/ledger", "resolved"], ids
