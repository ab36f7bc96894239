"""A bounded publisher: the watches and investigations hand it envelopes and never wait.

``offer`` puts a record in librdkafka's queue and returns at once. The queue *is* the
buffer: its size is bounded (``buffer`` records), a record stays in it until the broker
acknowledged it, and librdkafka retries without a deadline (``message.timeout.ms=0``), so
a broker outage loses nothing while fewer than ``buffer`` records wait. Beyond that, a
record is dropped at once, counted and logged (once per second at most). The producer is
idempotent (``enable.idempotence``: no duplicates and per-partition order through its
retries), records are keyed, so per key they stay in order.

A thread of its own serves librdkafka's callbacks (``poll``): delivery reports keep the
count of what waits, and the error callback says when no broker answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer

from aisre.fleet.kafka import access_denied

log = structlog.get_logger("aisre.fleet")

BACKPRESSURE = 0.8  # of the buffer in use: reported as backpressure


@dataclass(frozen=True)
class PublisherState:
    """What the publisher says about itself (a metric each, and the FleetPublishing condition)."""

    pending: int  # offered, not yet acknowledged by the broker
    capacity: int
    published: int  # acknowledged
    dropped: int  # refused because the buffer was full
    failed: int  # refused by the broker for good (too large, no such topic, not authorized)
    broker_down: bool
    denied: str | None = None  # the broker refused our credentials or TLS: its words

    @property
    def reason(self) -> str:
        """The condition's reason: CamelCase, the worst that holds."""
        if self.denied:
            return "AccessDenied"
        if self.broker_down:
            return "BrokerUnreachable"
        if self.pending >= self.capacity * BACKPRESSURE:
            return "Backpressure"
        return "Publishing"


class Publisher:
    def __init__(self, client_config: dict[str, Any], capacity: int,
                 producer: Callable[[dict[str, Any]], Producer] = Producer) -> None:
        self.capacity = capacity
        self.producer = producer({
            **client_config,
            "enable.idempotence": True,  # implies acks=all and bounded in-flight requests
            "message.timeout.ms": 0,  # no deadline: a record waits out an outage in the buffer
            "queue.buffering.max.messages": capacity,
            "linger.ms": 5,
            "compression.type": "lz4",
            "error_cb": self._error,
        })
        self.lock = threading.Lock()
        self.pending = self.published = self.dropped = self.failed = 0
        self.broker_down = False
        self.denied: str | None = None
        self.last_drop_log = 0.0
        self.closed = threading.Event()
        self.closing = False
        self.poller = threading.Thread(target=self._poll, name="fleet-publisher", daemon=True)
        self.poller.start()

    def offer(self, topic: str, key: str, value: bytes, acked: Callable[[], None] | None = None) -> bool:
        """Queue one record; False when the buffer is full (it is dropped and counted).
        ``acked`` is called (in the publisher's thread) once the broker acknowledged it."""
        with self.lock:
            if self.pending >= self.capacity:
                self._drop(topic)
                return False
            self.pending += 1
        try:
            self.producer.produce(topic, value=value, key=key.encode(), on_delivery=self._delivered if acked is None
                                  else lambda error, message: self._delivered(error, message, acked))
        except BufferError:  # librdkafka's own count agrees the buffer is full
            with self.lock:
                self.pending -= 1
                self._drop(topic)
            return False
        return True

    def _drop(self, topic: str) -> None:  # under the lock
        self.dropped += 1
        now = time.monotonic()
        if now - self.last_drop_log >= 1.0:
            self.last_drop_log = now
            log.warning("fleet buffer full: envelope dropped", topic=topic, capacity=self.capacity, dropped=self.dropped)

    def _delivered(self, error: KafkaError | None, message: Message, acked: Callable[[], None] | None = None) -> None:
        with self.lock:
            self.pending -= 1
            if error is None:
                self.published += 1
                self.broker_down, self.denied = False, None
            else:
                self.failed += 1
        if error is None and acked is not None:
            acked()
        if error is not None and not self.closing:
            log.error("fleet envelope refused by the broker", topic=message.topic(), error=str(error)[:300])

    def _error(self, error: KafkaError) -> None:
        if access_denied(error):  # retried by librdkafka, but only the user can fix it: say so once
            if self.denied is None:
                log.error("fleet: the Kafka broker refused our credentials or TLS; envelopes wait in the buffer",
                          error=error.str()[:300])
            self.denied = error.str()[:300]
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self.broker_down:
                log.warning("fleet: no Kafka broker answers; envelopes wait in the buffer", pending=self.pending)
            self.broker_down = True
        elif error.fatal():
            log.error("fleet producer failed for good", error=str(error)[:300])

    def _poll(self) -> None:
        while not self.closed.is_set():
            self.producer.poll(0.1)

    def state(self) -> PublisherState:
        with self.lock:
            return PublisherState(self.pending, self.capacity, self.published, self.dropped, self.failed, self.broker_down,
                                  self.denied)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` for the buffer to empty; returns how many still wait."""
        deadline = time.monotonic() + timeout
        while self.state().pending and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.state().pending

    def close(self, timeout: float = 5.0) -> int:
        """Deliver what waits (up to ``timeout``), then stop; returns how many were left (lost:
        librdkafka would otherwise go on trying to reach the broker after the operator stopped)."""
        left = self.flush(timeout)
        self.closing = True
        if left:
            log.warning("fleet publisher closed with envelopes undelivered", left=left)
            self.producer.purge()
            self.producer.flush(1.0)  # serves the purged records' reports
        self.closed.set()
        self.poller.join(2.0)
        self.producer.close()  # its threads stop trying the broker (nothing is left to flush)
        return left
