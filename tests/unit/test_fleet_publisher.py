"""The bounded publisher and the operator's fleet hooks, with librdkafka's producer replaced
by one that holds records until told to deliver them (the real one is in
tests/cluster/test_fleet.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from aisre import audit
from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource
from aisre.fleet.kafka import KafkaSettings
from aisre.fleet.publisher import Publisher
from aisre.operator.detection.detector import Detector
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.fleet_step import FleetService


class Held:
    def __init__(self, topic: str, key: bytes, value: bytes, callback: Callable[..., None]) -> None:
        self.topic_, self.key_, self.value_, self.callback = topic, key, value, callback

    def topic(self) -> str:
        return self.topic_


class HoldingProducer:
    """Queues like librdkafka (BufferError beyond its limit); delivers on ``deliver``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.held: list[Held] = []
        self.delivered: list[Held] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]) -> None:
        if len(self.held) >= self.config["queue.buffering.max.messages"]:
            raise BufferError("Local: Queue full")
        self.held.append(Held(topic, key, value, on_delivery))

    def poll(self, timeout: float) -> int:
        time.sleep(timeout / 10)
        return 0

    def purge(self) -> None:
        self.held = []

    def flush(self, timeout: float) -> int:
        return len(self.held)

    def close(self) -> bool:
        return True

    def deliver(self, error: KafkaError | None = None) -> None:
        held, self.held = self.held, []
        for message in held:
            message.callback(error, message)
            self.delivered.append(message)


def publisher(capacity: int) -> tuple[Publisher, HoldingProducer]:
    made: list[HoldingProducer] = []
    pub = Publisher({"bootstrap.servers": "nowhere:1"}, capacity, producer=lambda c: made.append(HoldingProducer(c)) or made[-1])
    return pub, made[0]


def test_the_producer_is_idempotent_and_waits_out_an_outage_in_a_bounded_buffer() -> None:
    pub, producer = publisher(3)
    try:
        assert producer.config["enable.idempotence"] is True and producer.config["message.timeout.ms"] == 0
        assert producer.config["queue.buffering.max.messages"] == 3
        assert [pub.offer("t", f"k{i}", b"v") for i in range(5)] == [True, True, True, False, False]
        state = pub.state()
        assert (state.pending, state.dropped, state.published, state.reason) == (3, 2, 0, "Backpressure")
        producer.deliver()  # the broker is back: what waited goes out, in order
        assert [m.key_ for m in producer.delivered] == [b"k0", b"k1", b"k2"]
        assert pub.state().pending == 0 and pub.state().published == 3
        assert pub.offer("t", "k5", b"v")  # room again
    finally:
        pub.closed.set()


def test_librdkafka_refusing_for_good_is_counted_as_failed_and_broker_down_is_reported() -> None:
    pub, producer = publisher(10)
    try:
        pub.offer("t", "k", b"v")
        producer.deliver(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        assert pub.state().failed == 1 and pub.state().pending == 0
        pub._error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        assert pub.state().reason == "BrokerUnreachable"
        pub.offer("t", "k", b"v")
    finally:
        assert pub.close(timeout=0.1) == 1  # one never acknowledged: reported as left, and purged
        assert producer.held == []


def signal(key: str, reason: str = "CrashLoopBackOff") -> Signal:
    return Signal(source=SignalSource.POD, reason=reason, time=dt.datetime.now(dt.UTC),
                  object=ResourceRef(kind="Pod", name="p", namespace="shop"), uid="pod-1", key=key)


def test_detection_tells_of_each_signal_an_object_newly_shows_and_of_every_alert() -> None:
    detector = Detector(Thresholds(), "aisre-system")
    told: list[str] = []
    detector.on_signal = lambda s: told.append(s.key)
    detector.observe("pod-1", [signal("a")])
    detector.observe("pod-1", [signal("a")])  # the same observation again: nothing new
    detector.observe("pod-1", [signal("a"), signal("b", "OOMKilled")])
    detector.observe("pod-1", [])
    detector.observe("pod-1", [signal("a")])  # back after it cleared: new again
    detector.alert(signal("c", "HighLatency").model_copy(update={"source": SignalSource.ALERTMANAGER}))
    assert told == ["a", "b", "a", "c"]


def fleet_with_holding_producer(capacity: int = 100) -> tuple[FleetService, HoldingProducer]:
    fleet = FleetService(KafkaSettings(bootstrap="nowhere:1", tenant="eu", buffer=capacity))
    fleet.publisher, producer = publisher(capacity)
    return fleet, producer


def sent(producer: HoldingProducer) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.topic_, m.key_.decode(), json.loads(m.value_)) for m in producer.held]


def test_each_incident_change_is_published_once_keyed_by_the_incident_uid() -> None:
    fleet, producer = fleet_with_holding_producer()
    try:
        body: dict[str, Any] = {"metadata": {"uid": "u-9", "namespace": "shop", "name": "i"}, "spec": {"severity": "high"},
                                "status": {"state": "Open"}}
        assert fleet.incident("ADDED", body) == 1
        assert fleet.incident("MODIFIED", body) == 0  # a status write that is no lifecycle change
        body["status"] = {"state": "Identified", "rootCause": {"category": "BadConfig", "summary": "s", "confidence": 0.8}}
        assert fleet.incident("MODIFIED", body) == 1
        body["status"]["state"] = "Resolved"
        assert fleet.incident("MODIFIED", body) == 1
        assert fleet.incident("DELETED", body) == 1
        records = sent(producer)
        assert {(t, k) for t, k, _ in records} == {("aisre.eu.incidents", "u-9")}
        assert [r["data"]["change"] for _, _, r in records] == ["Opened", "RootCauseIdentified", "Resolved", "Deleted"]
        assert records[1][2]["data"]["rootCause"]["summary"] == "s" and records[0][2]["tenant"] == "eu"
    finally:
        fleet.publisher.closed.set()  # type: ignore[union-attr]


def test_signals_and_audit_records_go_to_their_topics_and_a_full_buffer_never_blocks() -> None:
    fleet, producer = fleet_with_holding_producer(capacity=2)

    async def main() -> None:
        fleet.remove_audit_sink = audit.add_sink(fleet.audit)
        fleet.signal(signal("k-1"))
        audit.emit("RootCauseChosen", actor="aisre", obj={"kind": "Incident", "uid": "u-1"}, reason="because")
        began = time.monotonic()
        for n in range(1000):
            fleet.signal(signal(f"k-{n}"))
        assert time.monotonic() - began < 1.0
        fleet.remove_audit_sink()

    try:
        asyncio.run(main())
        records = sent(producer)
        assert [(t, k) for t, k, _ in records] == [("aisre.eu.signals", "k-1"), ("aisre.eu.audit", "u-1")]
        assert records[0][2]["data"]["reason"] == "CrashLoopBackOff" and records[1][2]["data"]["decision"] == "RootCauseChosen"
        assert fleet.publisher is not None and fleet.publisher.state().dropped == 1000
        fleet.meter()
        assert fleet.state()["reason"] == "Backpressure" and fleet.state()["status"] == "False"
    finally:
        fleet.publisher.closed.set()  # type: ignore[union-attr]
