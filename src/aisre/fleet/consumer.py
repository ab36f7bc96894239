"""The consumer of external signals: records in, Signals stored, then offsets committed.

Each batch is read (in a thread: librdkafka's poll blocks), turned into Signals or refusal
reasons (``intake.signal_of``), the Signals handed to ``store`` (detection's intake, on the
caller's event loop), the refused records written to the dead-letter topic with their
reason (headers ``aisre-reason``, ``aisre-topic``, ``aisre-partition``, ``aisre-offset``) and
acknowledged by the broker.

A record's offset is committed only once its signal is on record: ``settled`` (detection)
says which signal keys an Incident written to the API server carries, or are owed nothing
more (a clear, a duplicate of a stored one). Detection holds a signal for its settle time
before the Incident is written, so reading goes on meanwhile: per partition, the offsets
read and not yet settled wait in order, and each step commits the longest settled prefix.
A crash anywhere before the commit redelivers those records, and the Signals' keys (the
ingest ids) make the second delivery fold into what is stored. When the dead-letter
writes fail, nothing is committed and the consumer starts again from the last commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from aisre.api.signal import Signal
from aisre.fleet.kafka import access_denied

log = structlog.get_logger("aisre.fleet")

Convert = Callable[[bytes | None], Signal | str]
Store = Callable[[list[Signal]], list[Signal]]  # returns the Signals it refused
Settled = Callable[[list[str]], set[str]]  # of these signal keys, those on record (or owed nothing more)
MAX_WAITING = 100_000  # records read and not yet on record, at most: beyond, reading pauses


@dataclass
class ConsumerCounts:
    stored: int = 0
    dead_lettered: int = 0
    refused: int = 0  # valid, but detection holds as many alerts as it may (dead-lettered too)
    batches: int = 0
    committed: int = 0  # records whose offsets were committed (their signals on record)
    errors: list[str] = field(default_factory=list)  # the latest few, for /readyz


class DeadLetterFailed(RuntimeError):
    """The dead-letter topic did not take a batch's refused records: nothing is committed."""


class ExternalConsumer:
    def __init__(self, client_config: dict[str, Any], topic: str, dead_letter: str, group: str,
                 convert: Convert, store: Store, settled: Settled | None = None, batch: int = 500,
                 poll_seconds: float = 0.2, max_waiting: int = MAX_WAITING) -> None:
        self.client_config = client_config
        self.topic = topic
        self.dead_letter = dead_letter
        self.group = group
        self.convert = convert
        self.store = store
        self.settled: Settled = settled or set  # None: what ``store`` took is on record already
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.max_waiting = max_waiting
        # Per partition, the records read and not committed, in offset order: (offset, the
        # key of the signal it must wait for, or None: nothing to wait for).
        self.waiting: dict[int, deque[tuple[int, str | None]]] = {}
        self.paused = False
        self.counts = ConsumerCounts()
        self.consumer: Consumer | None = None
        # librdkafka's consumer is not to be closed while a poll runs in another thread: a
        # cancelled step leaves its poll running in the worker thread; the close waits for it.
        self.busy = threading.Lock()
        self.dlq = Producer({**client_config, "enable.idempotence": True, "linger.ms": 0})

    def _open(self) -> Consumer:
        consumer = Consumer({**self.client_config, "group.id": self.group, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", "enable.partition.eof": False, "error_cb": self._error})
        self.waiting, self.paused = {}, False  # what was read before comes again to this one
        consumer.subscribe([self.topic], on_revoke=self._revoked)
        return consumer

    def _revoked(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:  # their uncommitted records go to the partitions' next owner
            self.waiting.pop(partition.partition, None)

    async def run(self) -> None:
        """Until cancelled. A failure of one batch (the broker away) is logged and retried
        from the last commit."""
        try:
            while True:
                try:
                    if self.consumer is None:
                        self.consumer = await asyncio.to_thread(self._open)
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._note(f"{type(error).__name__}: {error}")
                    await self._reopen()
                    await asyncio.sleep(1.0)
        finally:
            await self._reopen()
            await asyncio.to_thread(self.dlq.flush, 5.0)
            self.dlq.purge()  # what the broker did not take in 5 s is read again from the uncommitted offsets
            await asyncio.to_thread(self.dlq.close)

    async def _reopen(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await asyncio.to_thread(self._locked, consumer.close)  # uncommitted records come again to the next one

    def _locked(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.busy:
            return call(*args, **kwargs)

    def _error(self, error: KafkaError) -> None:
        """librdkafka retries a refusal of our credentials or TLS forever: say it (once per change)."""
        said = f"the broker refused our credentials or TLS: {error.str()}"[:300]
        if access_denied(error) and said not in self.counts.errors[-1:]:
            log.error("external signals: the Kafka broker refused our credentials or TLS", error=error.str()[:300])
            self.counts.errors = [*self.counts.errors[-4:], said]

    def _note(self, error: str) -> None:
        log.warning("external signals: batch not taken; retrying from the last commit", error=error[:300])
        self.counts.errors = [*self.counts.errors[-4:], error[:300]]

    async def step(self) -> int:
        """One batch: read, store, dead-letter, then commit what is on record. Returns how
        many records it read."""
        consumer = self.consumer
        assert consumer is not None
        await self._pace(consumer)
        messages: list[Message] = await asyncio.to_thread(self._locked, consumer.consume, self.batch, self.poll_seconds)
        records = [m for m in messages if m.error() is None]
        for message in messages:
            if message.error() is not None and message.error().code() != KafkaError._PARTITION_EOF:
                self._note(str(message.error()))
        if records:
            await self._take(records)
        await self._commit(consumer)
        return len(records)

    async def _take(self, records: list[Message]) -> None:
        taken: list[tuple[Message, Signal]] = []
        letters: list[tuple[Message, str]] = []
        for message in records:
            found = self.convert(message.value())
            if isinstance(found, str):
                letters.append((message, found))
            else:
                taken.append((message, found))
        signals = [signal for _, signal in taken]
        refused = {id(signal) for signal in (self.store(signals) if signals else [])}
        letters += [(message, "detection holds as many alerts as it may; send it again later")
                    for message, signal in taken if id(signal) in refused]
        if letters:
            await asyncio.to_thread(self._dead_letter, letters)
        owed = {id(message): signal.key for message, signal in taken if id(signal) not in refused}
        for message in records:
            self.waiting.setdefault(message.partition(), deque()).append((message.offset(), owed.get(id(message))))
        self.counts.stored += len(signals) - len(refused)
        self.counts.refused += len(refused)
        self.counts.dead_lettered += len(letters)
        self.counts.batches += 1

    async def _commit(self, consumer: Consumer) -> None:
        """Commit, per partition, the offsets up to the first record whose signal is not on record yet."""
        keys = list({key for waiting in self.waiting.values() for _, key in waiting if key is not None})
        done = self.settled(keys) if keys else set()
        offsets, count = [], 0
        for partition, waiting in self.waiting.items():
            last = None
            while waiting and (waiting[0][1] is None or waiting[0][1] in done):
                last = waiting.popleft()[0]
                count += 1
            if last is not None:
                offsets.append(TopicPartition(self.topic, partition, last + 1))
        if offsets:
            await asyncio.to_thread(self._locked, consumer.commit, offsets=offsets, asynchronous=False)
            self.counts.committed += count

    async def _pace(self, consumer: Consumer) -> None:
        """Reading pauses while too many records wait for their signals to be on record (the
        poll goes on: it keeps the consumer in its group)."""
        waiting = sum(len(w) for w in self.waiting.values())
        if waiting >= self.max_waiting and not self.paused:
            log.warning("external signals: reading paused until detection has stored what it read", waiting=waiting)
            await asyncio.to_thread(self._locked, lambda: consumer.pause(consumer.assignment()))
            self.paused = True
        elif waiting < self.max_waiting // 2 and self.paused:
            await asyncio.to_thread(self._locked, lambda: consumer.resume(consumer.assignment()))
            self.paused = False

    def _dead_letter(self, letters: list[tuple[Message, str]]) -> None:
        failed: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failed.append(str(error))

        for message, reason in letters:
            log.info("external signal dead-lettered", reason=reason[:200], partition=message.partition(),
                     offset=message.offset())
            self.dlq.produce(self.dead_letter, value=message.value(), key=message.key(), on_delivery=delivered, headers=[
                ("aisre-reason", reason.encode()), ("aisre-topic", (message.topic() or "").encode()),
                ("aisre-partition", str(message.partition()).encode()), ("aisre-offset", str(message.offset()).encode())])
        left = self.dlq.flush(10.0)
        if left or failed:
            raise DeadLetterFailed(f"{left} dead letters undelivered, {len(failed)} refused: {failed[:1]}")
