"""Helpers of the fleet's cluster tests: read a topic to its end, check a group's commits."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from aisre.fleet.kafka import KafkaSettings


@dataclasses.dataclass
class Record:
    key: str
    value: dict[str, Any] | bytes
    partition: int
    offset: int
    headers: dict[str, str]


def read_topic(bootstrap: str, topic: str, timeout: float = 15.0) -> list[Record]:
    """Every record of the topic up to its end now, partition by partition in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        wanted = {p for p in partitions if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        found: list[Record] = []
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    continue
                raw = m.value() or b""
                try:
                    value: dict[str, Any] | bytes = json.loads(raw)
                except ValueError:
                    value = raw
                found.append(Record((m.key() or b"").decode(), value, m.partition(), m.offset(),
                                    {k: v.decode() for k, v in m.headers() or []}))
                if m.offset() + 1 >= ends[m.partition()]:
                    wanted.discard(m.partition())
        assert not wanted, f"{topic}: partitions {wanted} not read to their end"
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def committed_to_the_end(bootstrap: str, settings: KafkaSettings, **config: Any) -> bool:
    """Whether the operator's consumer group committed every record of the external topic."""
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": f"aisre-{settings.tenant}", **config})
    try:
        parts = [TopicPartition(settings.topics.external, p) for p in range(settings.partitions)]
        ends = [group.get_watermark_offsets(p, timeout=5)[1] for p in parts]
        done = group.committed(parts, timeout=5)
        return all(end == 0 or c.offset == end for c, end in zip(done, ends, strict=True))
    finally:
        group.close()


def tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


