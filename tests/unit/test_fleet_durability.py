"""What the fleet owes across crashes and restarts, without a broker: detection says which
external signals are on record (their offsets may be committed), the consumer commits per
partition up to the first record still owed, and the operator skips the lifecycle changes an
Incident records as published."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import deque
from typing import Any

from confluent_kafka import TopicPartition

from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource, signal_key
from aisre.fleet.consumer import ExternalConsumer
from aisre.fleet.envelope import published_annotation, published_changes
from aisre.fleet.kafka import KafkaSettings
from aisre.operator.detection.detector import Detector, Open
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.fleet_step import FleetService

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def external(ingest_id: str, firing: bool = True) -> Signal:
    return Signal(source=SignalSource.EXTERNAL, reason="ProbeFailing", time=NOW, firing=firing, origin="probes",
                  object=ResourceRef(kind="Deployment", name="web", namespace="shop"), uid=f"external/{ingest_id}",
                  key=signal_key("external", ingest_id))


def open_incident(detector: Detector) -> list[Any]:
    assert detector.decide(NOW) == []  # a candidate: it settles first
    return detector.decide(NOW + dt.timedelta(seconds=Thresholds().settle + 1))


def test_an_external_signal_is_settled_once_the_incident_carrying_it_is_written() -> None:
    detector = Detector(Thresholds(), "aisre-system")
    a, b = external("a"), external("b")
    assert detector.alert(a)
    assert detector.settled([a.key]) == set(), "held in memory only"
    [opened] = open_incident(detector)
    assert isinstance(opened, Open) and opened.tracked.source == "external" and opened.tracked.origin == "probes"
    assert detector.settled([a.key]) == set(), "the Incident is not written yet"
    detector.written(opened.tracked)
    assert detector.settled([a.key]) == {a.key}
    assert detector.alert(b)
    assert detector.settled([a.key, b.key]) == {a.key}, "a later signal waits for the next write"
    assert detector.alert(external("b", firing=False))
    assert detector.settled([b.key]) == {b.key}, "cleared: nothing left to store"


def test_a_redelivery_after_a_restart_is_settled_by_the_incident_written_before() -> None:
    first = Detector(Thresholds(), "aisre-system")
    a = external("a")
    first.alert(a)
    [opened] = open_incident(first)
    first.written(opened.tracked)
    adopted = opened.tracked  # as store.tracked_from reads it back: the keys it counted, nothing unwritten
    restarted = Detector(Thresholds(), "aisre-system")
    restarted.adopt(adopted)
    restarted.alert(a)  # delivered again: its offset was not committed before the crash
    assert restarted.settled([a.key]) == {a.key}
    assert restarted.decide(NOW + dt.timedelta(seconds=30)) == [], "folded into the Incident it was counted in"


def test_signals_whose_namespace_refuses_the_incident_are_not_waited_for() -> None:
    detector = Detector(Thresholds(), "aisre-system")
    a = external("a")
    detector.alert(a)
    [opened] = open_incident(detector)
    detector.drop(opened.tracked, NOW, namespace_gone=True)
    assert detector.settled([a.key]) == {a.key}


class Committing:
    def __init__(self) -> None:
        self.commits: list[list[tuple[int, int]]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(sorted((tp.partition, tp.offset) for tp in offsets))


def test_the_consumer_commits_each_partition_up_to_the_first_record_still_owed() -> None:
    owed = {"k1", "k3"}
    consumer = ExternalConsumer({"bootstrap.servers": "nowhere:1"}, "t", "t.dlq", "g", lambda _: "refused", lambda _: [],
                                settled=lambda keys: {k for k in keys if k not in owed})
    # partition 0: 10 (no signal: dead-lettered), 11 (k1, owed), 12 (k2); partition 1: 5 (k3, owed); 2: 7 (k4)
    consumer.waiting = {0: deque([(10, None), (11, "k1"), (12, "k2")]),
                        1: deque([(5, "k3")]),
                        2: deque([(7, "k4")])}
    kafka = Committing()
    asyncio.run(consumer._commit(kafka))  # type: ignore[arg-type]
    assert kafka.commits == [[(0, 11), (2, 8)]]
    owed.clear()
    asyncio.run(consumer._commit(kafka))  # type: ignore[arg-type]
    assert kafka.commits[-1] == [(0, 13), (1, 6)] and consumer.counts.committed == 5
    consumer.dlq.purge()


def test_changes_an_incident_records_as_published_are_not_published_again() -> None:
    fleet = FleetService(KafkaSettings(bootstrap="nowhere:1", tenant="eu"))
    offered: list[str] = []
    fleet._offer = lambda topic, key, type_, data, acked=None: offered.append(data["changeId"])  # type: ignore[method-assign]
    body: dict[str, Any] = {
        "metadata": {"uid": "u-1", "namespace": "shop", "name": "i",
                     "annotations": {published_annotation("eu"): json.dumps(["opened"]),
                                     published_annotation("us"): json.dumps(["opened", "resolved"])}},
        "status": {"state": "Resolved", "resolvedAt": "2030-01-01T00:00:00Z"}}
    assert published_changes(body, "eu") == ["opened"] and published_changes(body, "nowhere") == []
    assert fleet.incident("ADDED", body) == 1 and offered == ["resolved"], "another tenant's record is not ours"
    fleet._acked("u-1", "shop", "i", "resolved")
    assert fleet.acknowledged["u-1"] == ["opened", "resolved"] and fleet.unrecorded == {"u-1": ("shop", "i")}
