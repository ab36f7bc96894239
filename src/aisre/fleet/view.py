"""The fleet view: every tenant's open Incidents, read from the incidents topics.

Each incident record carries the Incident as it was at that change, so the latest record
of each key (the Incident's uid) is all the view needs: it reads every ``aisre.*.incidents``
topic from the beginning to its end (high watermark) as it was when the read began, keeps the
latest record per tenant and key, and shows those not resolved or deleted. ``fold`` and
``rows`` are pure; ``read_incidents`` is the Kafka part.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import ValidationError

from aisre.fleet.envelope import INCIDENTS_TOPIC, Envelope
from aisre.fleet.kafka import list_topics

CLOSED = ("Resolved", "Deleted")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def fold(envelopes: list[Envelope]) -> dict[tuple[str, str], Envelope]:
    """The latest record per (tenant, Incident uid), in the order read (a key's records
    are on one partition, in order)."""
    latest: dict[tuple[str, str], Envelope] = {}
    for envelope in envelopes:
        if envelope.type == "incident":
            latest[(envelope.tenant, envelope.key)] = envelope
    return latest


@dataclass(frozen=True)
class Row:
    severity: str
    cluster: str
    namespace: str
    name: str
    state: str
    root_cause: str
    confidence: float | None
    opened_at: dt.datetime | None
    title: str

    def age(self, now: dt.datetime) -> str:
        if self.opened_at is None:
            return "?"
        seconds = max(0, int((now - self.opened_at).total_seconds()))
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        return {"severity": self.severity, "cluster": self.cluster, "namespace": self.namespace, "name": self.name,
                "state": self.state, "rootCause": self.root_cause or None, "confidence": self.confidence,
                "openedAt": self.opened_at.isoformat() if self.opened_at else None, "age": self.age(now),
                "title": self.title}


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def rows(latest: dict[tuple[str, str], Envelope]) -> list[Row]:
    """The open Incidents, most severe first, then oldest first."""
    out = []
    for (tenant, _), envelope in latest.items():
        data = envelope.data
        if data.get("change") in CLOSED or data.get("state") == "Resolved":
            continue
        root = data.get("rootCause") or {}
        resource = root.get("resource") or {}
        cause = f"{root.get('category')}" + (f" ({resource.get('kind')}/{resource.get('name')})" if resource else "") \
            if root.get("category") else ""
        confidence = root.get("confidence")
        out.append(Row(severity=str(data.get("severity") or "medium"), cluster=tenant,
                       namespace=str(data.get("namespace") or ""), name=str(data.get("name") or ""),
                       state=str(data.get("state") or "Open"), root_cause=cause,
                       confidence=float(confidence) if confidence is not None else None,
                       opened_at=_time(data.get("openedAt")), title=str(data.get("title") or "")))
    far_past = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(out, key=lambda r: (SEVERITY_RANK.get(r.severity, 9), r.opened_at or far_past, r.cluster, r.name))


def table(found: list[Row], now: dt.datetime) -> str:
    """Like ``kubectl get incidents -A``, with the cluster."""
    header = ("SEVERITY", "CLUSTER", "NAMESPACE", "NAME", "STATE", "ROOT CAUSE", "CONFIDENCE", "AGE")
    lines = [header] + [(r.severity, r.cluster, r.namespace, r.name, r.state, r.root_cause or "<none>",
                         f"{r.confidence:.2f}" if r.confidence is not None else "<none>", r.age(now)) for r in found]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def read_incidents(client_config: dict[str, Any], timeout: float = 10.0) -> tuple[list[Envelope], list[str]]:
    """Every record of every tenant's incidents topic up to its end when the read began,
    and the records that were not envelopes (why, one line each)."""
    metadata = list_topics(client_config, timeout)
    partitions = [TopicPartition(name, p) for name, topic in sorted(metadata.topics.items())
                  if INCIDENTS_TOPIC.match(name) for p in sorted(topic.partitions)]
    if not partitions:
        return [], []
    consumer = Consumer({**client_config, "group.id": f"aisre-fleet-view-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in partitions}
        wanted = [tp for tp in partitions if ends[(tp.topic, tp.partition)] > 0]
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in wanted])
        done: set[tuple[str, int]] = set()
        found: list[Envelope] = []
        bad: list[str] = []
        deadline = time.monotonic() + timeout
        while len(done) < len(wanted) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                where = (message.topic() or "", message.partition() or 0)
                try:
                    found.append(Envelope.model_validate(json.loads(message.value() or b"null")))
                except (ValueError, ValidationError) as error:
                    bad.append(f"{where[0]}[{where[1]}]@{message.offset()}: {str(error).splitlines()[0][:200]}")
                if (message.offset() or 0) + 1 >= ends[where]:
                    done.add(where)
        if len(done) < len(wanted):
            raise TimeoutError(f"read {len(done)} of {len(wanted)} incidents partitions to their end in {timeout:g} s")
        return found, bad
    finally:
        consumer.close()


def show(client_config: dict[str, Any], output: str = "table", timeout: float = 10.0,
         now: dt.datetime | None = None) -> tuple[str, list[str]]:
    """What ``aisre fleet incidents`` prints (a table, or JSON), and the records it skipped."""
    found, bad = read_incidents(client_config, timeout)
    open_rows = rows(fold(found))
    now = now or dt.datetime.now(dt.UTC)
    if output == "json":
        return json.dumps({"items": [r.as_json(now) for r in open_rows]}, indent=2), bad
    return (table(open_rows, now) if open_rows else "No open incidents in the fleet."), bad


def client_config_from(bootstrap: str | None, env: dict[str, str]) -> dict[str, Any]:
    """The CLI's connection: --bootstrap, else AISRE_KAFKA_BOOTSTRAP, with the operator's
    TLS/SASL variables (AISRE_KAFKA_*)."""
    from aisre.fleet.kafka import KafkaSettings

    settings = KafkaSettings.from_env({**env, **({"AISRE_KAFKA_BOOTSTRAP": bootstrap} if bootstrap else {}),
                                       "AISRE_FLEET_TENANT": "fleet-view"})
    if settings is None:
        raise ValueError("no Kafka: give --bootstrap HOST:PORT or set AISRE_KAFKA_BOOTSTRAP")
    return {**settings.client_config(), "client.id": "aisre-fleet-view"}
