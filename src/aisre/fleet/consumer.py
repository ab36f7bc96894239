"""The consumer of external signals: records in, Signals stored, then offsets committed.

Each batch is read (in a thread: librdkafka's poll blocks), turned into Signals or refusal
reasons (``intake.signal_of``), the Signals handed to ``store`` (detection's intake, on the
caller's event loop), the refused records written to the dead-letter topic with their
reason (headers ``aisre-reason``, ``aisre-topic``, ``aisre-partition``, ``aisre-offset``) and
acknowledged by the broker; only then are the batch's offsets committed. A crash anywhere
before the commit redelivers the batch, and the Signals' keys (the ingest ids) make the
second delivery fold into the first. When the dead-letter writes fail, nothing is committed
and the consumer starts again from the last commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer

from aisre.api.signal import Signal

log = structlog.get_logger("aisre.fleet")

Convert = Callable[[bytes | None], Signal | str]
Store = Callable[[list[Signal]], list[Signal]]  # returns the Signals it refused


@dataclass
class ConsumerCounts:
    stored: int = 0
    dead_lettered: int = 0
    refused: int = 0  # valid, but detection holds as many alerts as it may (dead-lettered too)
    batches: int = 0
    errors: list[str] = field(default_factory=list)  # the latest few, for /readyz


class DeadLetterFailed(RuntimeError):
    """The dead-letter topic did not take a batch's refused records: nothing is committed."""


class ExternalConsumer:
    def __init__(self, client_config: dict[str, Any], topic: str, dead_letter: str, group: str,
                 convert: Convert, store: Store, batch: int = 500, poll_seconds: float = 0.2) -> None:
        self.client_config = client_config
        self.topic = topic
        self.dead_letter = dead_letter
        self.group = group
        self.convert = convert
        self.store = store
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.counts = ConsumerCounts()
        self.consumer: Consumer | None = None
        # librdkafka's consumer is not to be closed while a poll runs in another thread: a
        # cancelled step leaves its poll running in the worker thread; the close waits for it.
        self.busy = threading.Lock()
        self.dlq = Producer({**client_config, "enable.idempotence": True, "linger.ms": 0})

    def _open(self) -> Consumer:
        consumer = Consumer({**self.client_config, "group.id": self.group, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", "enable.partition.eof": False})
        consumer.subscribe([self.topic])
        return consumer

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

    def _note(self, error: str) -> None:
        log.warning("external signals: batch not taken; retrying from the last commit", error=error[:300])
        self.counts.errors = [*self.counts.errors[-4:], error[:300]]

    async def step(self) -> int:
        """One batch: read, store, dead-letter, commit. Returns how many records it read."""
        consumer = self.consumer
        assert consumer is not None
        messages: list[Message] = await asyncio.to_thread(self._locked, consumer.consume, self.batch, self.poll_seconds)
        records = [m for m in messages if m.error() is None]
        for message in messages:
            if message.error() is not None and message.error().code() != KafkaError._PARTITION_EOF:
                self._note(str(message.error()))
        if not records:
            return 0
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
        await asyncio.to_thread(self._locked, consumer.commit, asynchronous=False)
        self.counts.stored += len(signals) - len(refused)
        self.counts.refused += len(refused)
        self.counts.dead_lettered += len(letters)
        self.counts.batches += 1
        return len(records)

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
