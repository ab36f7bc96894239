"""The operator's side of the fleet (docs/fleet.md): what it publishes and what it reads.

- Every Signal detection is told of (``Detector.on_signal``) goes to ``aisre.<tenant>.signals``,
  keyed by its dedupe key.
- Every Incident lifecycle change, derived from the Incident as its watch shows it, goes to
  ``.incidents`` keyed by the Incident's uid, once per change: once the broker acknowledged
  a change, its id is recorded on the Incident (annotation ``fleet.aisre.dev/<tenant>``), so
  an operator restarted later (or a new leader) does not publish it again.
- Every audit record goes to ``.audit``, keyed by the uid of the object it is about.
- With ``consume_external``, ``.external`` is read into detection like Alertmanager alerts
  (offsets committed once the Incident carrying a signal is written), and what is refused
  goes to ``.external.dlq`` with the reason.

Publishing is an ``offer`` to a bounded buffer: nothing here waits on Kafka. The state of
the buffer and the broker is a condition (``FleetPublishing``) on /readyz and metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import OrderedDict
from functools import partial
from typing import Any

import httpx
import structlog

from aisre import audit
from aisre.api.meta import GROUP, VERSION, ResourceRef
from aisre.api.signal import Signal
from aisre.fleet.consumer import ExternalConsumer
from aisre.fleet.envelope import changes_of, encode, published_annotation, published_changes, snapshot
from aisre.fleet.intake import Entity, signal_of
from aisre.fleet.kafka import KafkaSettings, ensure_topics
from aisre.fleet.publisher import Publisher, PublisherState
from aisre.operator.metrics import FLEET_BROKER_UP, FLEET_BUFFER, FLEET_BUFFER_CAPACITY, FLEET_ENVELOPES, FLEET_EXTERNAL

log = structlog.get_logger("aisre.fleet")

MAX_TRACKED_INCIDENTS = 10_000  # whose published changes are remembered (the oldest are forgotten)


async def record_published(client: httpx.AsyncClient, namespace: str, name: str, uid: str, annotation: str,
                           ids: list[str]) -> None:
    """Write the published change ids on the Incident (a merge patch of one annotation; the
    uid makes it fail on a namesake created since). One gone is nothing to record; one we may
    not write is logged and left (a restart then publishes its changes again)."""
    patch = {"metadata": {"uid": uid, "annotations": {annotation: json.dumps(ids, separators=(",", ":"))}}}
    response = await client.patch(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{name}", json=patch,
                                  headers={"Content-Type": "application/merge-patch+json"})
    if response.status_code == 403:
        log.warning("fleet: may not record the published changes on the Incident", incident=f"{namespace}/{name}")
    elif response.status_code not in (404, 409, 422):
        response.raise_for_status()


class FleetService:
    def __init__(self, settings: KafkaSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.client = client  # records what was published on the Incidents; None: remembered in memory only
        self.publisher: Publisher | None = None
        self.consumer: ExternalConsumer | None = None
        self.sent: OrderedDict[str, set[str]] = OrderedDict()  # Incident uid -> change ids offered or on record
        # Incident uid -> the change ids to record on it: those it says were published, and
        # those the broker acknowledged since; and which of them wait to be written.
        self.acknowledged: OrderedDict[str, list[str]] = OrderedDict()
        self.unrecorded: dict[str, tuple[str, str]] = {}  # uid -> (namespace, name)
        self.record_wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.topics_error: str | None = None
        self.topics_checked = asyncio.Event()  # created, found, or given up on
        self.counted = PublisherState(0, settings.buffer, 0, 0, 0, False)  # as of the last meter()
        self.external_counted = (0, 0)
        self.dropping = False  # envelopes were dropped since the meter before
        self.remove_audit_sink = lambda: None

    async def start(self) -> None:
        """Returns at once: the topics are checked in the background (a broker that is away
        must not hold up the operator's start; what is offered meanwhile waits in the buffer)."""
        self.loop = asyncio.get_running_loop()
        self.tasks.append(asyncio.create_task(self._ensure_topics(), name="fleet-topics"))
        if self.client is not None:
            self.tasks.append(asyncio.create_task(self._record_forever(), name="fleet-record-published"))
        self.publisher = Publisher(self.settings.client_config(), self.settings.buffer)
        self.remove_audit_sink = audit.add_sink(self.audit)
        FLEET_BUFFER_CAPACITY.labels(self.settings.tenant).set(self.settings.buffer)
        self.tasks.append(asyncio.create_task(self._meter(), name="fleet-metrics"))
        log.info("fleet publishing", bootstrap=self.settings.bootstrap, tenant=self.settings.tenant)

    async def _ensure_topics(self) -> None:
        for attempt in range(30):
            try:
                created = await asyncio.to_thread(ensure_topics, self.settings)
                if created:
                    log.info("fleet topics created", topics=created)
                self.topics_error = None
                self.topics_checked.set()
                return
            except Exception as error:  # the broker away, or no right to create them: they may exist
                self.topics_error = f"{type(error).__name__}: {error}"[:300]
                if attempt == 0:
                    log.warning("fleet topics not checked yet; trying again", error=self.topics_error)
                await asyncio.sleep(min(30.0, 2.0 ** attempt))
        log.warning("fleet topics not checked; create them if the operator may not", error=self.topics_error)
        self.topics_checked.set()

    def attach(self, detection: Any) -> None:
        """Publish what detection sees; read external signals into it (``DetectionService``)."""
        detection.detector.on_signal = self.signal
        if self.settings.consume_external and self.consumer is None:
            pipeline = detection.pipeline

            def owners(entity: Entity) -> tuple[ResourceRef, ...]:
                return pipeline.index.chain_from(entity.namespace, entity.kind, entity.name)

            def convert(value: bytes | None) -> Signal | str:
                return signal_of(value, owners, dt.datetime.now(dt.UTC), pipeline.allowed)

            self.consumer = ExternalConsumer(self.settings.client_config(), self.topics.external, self.topics.dead_letter,
                                             f"aisre-{self.settings.tenant}", convert, detection.alerts,
                                             settled=detection.settled)
            self.tasks.append(asyncio.create_task(self._consume(self.consumer), name="fleet-external-signals"))
            log.info("fleet reading external signals", topic=self.topics.external)

    async def _consume(self, consumer: ExternalConsumer) -> None:
        # A subscription to a topic that does not exist yet would wait for librdkafka's next
        # metadata refresh (minutes) once it does.
        await self.topics_checked.wait()
        await consumer.run()

    # --- what is published -----------------------------------------------------------

    def _offer(self, topic: str, key: str, type_: Any, data: dict[str, Any], acked: Any = None) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.offer(topic, key, encode(type_, self.settings.tenant, key, data), acked)
        except Exception as error:  # an odd value must not reach detection or an investigation
            log.warning("fleet envelope not encoded", topic=topic, error=f"{type(error).__name__}: {error}"[:300])

    def signal(self, signal: Signal) -> None:
        self._offer(self.topics.signals, signal.key, "signal", signal.model_dump(mode="json", exclude={"raw"}))

    def audit(self, record: dict[str, Any]) -> None:
        key = (record.get("object") or {}).get("uid") or record.get("id") or "audit"
        self._offer(self.topics.audit, key, "audit", record)

    def incident(self, event_type: str | None, body: dict[str, Any]) -> int:
        """The Incident's changes not yet published (by this operator, or by one before it,
        as the Incident records); returns how many were."""
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return 0
        on_record = published_changes(body, self.settings.tenant)
        sent = self.sent.setdefault(uid, set())
        sent.update(on_record)
        self.sent.move_to_end(uid)
        acknowledged = self.acknowledged.setdefault(uid, [])
        acknowledged += [c for c in on_record if c not in acknowledged]
        self.acknowledged.move_to_end(uid)
        for tracked in (self.sent, self.acknowledged):
            while len(tracked) > MAX_TRACKED_INCIDENTS:
                tracked.popitem(last=False)
        state = snapshot(body)
        deleted = event_type == "DELETED"
        changes = changes_of(body) if not deleted else [("deleted", "Deleted", {})]
        published = 0
        for change_id, change, about in changes:
            if change_id in sent:
                continue
            sent.add(change_id)
            # A deleted Incident has nowhere to record it.
            acked = None if deleted or self.client is None else partial(
                self._acked_from_thread, uid, meta.get("namespace") or "", meta.get("name") or "", change_id)
            self._offer(self.topics.incidents, uid, "incident", {**state, "change": change, "changeId": change_id, **about},
                        acked)
            published += 1
        if deleted:
            self.sent.pop(uid, None)
            self.acknowledged.pop(uid, None)
        return published

    # --- what was published, recorded on the Incidents ---------------------------------

    def _acked_from_thread(self, uid: str, namespace: str, name: str, change_id: str) -> None:
        """The broker acknowledged a change (the publisher's thread): record it, on the loop."""
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._acked, uid, namespace, name, change_id)
        except RuntimeError:  # the loop is closed: the operator is gone; a restart publishes it again
            pass

    def _acked(self, uid: str, namespace: str, name: str, change_id: str) -> None:
        ids = self.acknowledged.setdefault(uid, [])
        if change_id not in ids:
            ids.append(change_id)
        self.unrecorded[uid] = (namespace, name)
        self.record_wake.set()

    async def _record_forever(self) -> None:
        while True:
            await self.record_wake.wait()
            self.record_wake.clear()
            if not await self._record():
                await asyncio.sleep(2.0)  # the API server away: try again
                self.record_wake.set()

    async def _record(self) -> bool:
        """Write what waits to be recorded; False if some writes failed (they wait on)."""
        assert self.client is not None
        batch, self.unrecorded = self.unrecorded, {}
        annotation, ok = published_annotation(self.settings.tenant), True
        for uid, (namespace, name) in batch.items():
            ids = self.acknowledged.get(uid)
            if not ids:
                continue
            try:
                await record_published(self.client, namespace, name, uid, annotation, list(ids))
            except (httpx.HTTPError, OSError) as error:
                log.warning("fleet: published changes not recorded on the Incident yet", incident=f"{namespace}/{name}",
                            error=f"{type(error).__name__}: {error}"[:300])
                self.unrecorded.setdefault(uid, (namespace, name))
                ok = False
        return ok

    # --- how it goes -----------------------------------------------------------------

    async def _meter(self) -> None:
        while True:
            self.meter()
            await asyncio.sleep(1.0)

    def meter(self) -> PublisherState:
        assert self.publisher is not None
        now, tenant = self.publisher.state(), self.settings.tenant
        FLEET_BUFFER.labels(tenant).set(now.pending)
        FLEET_BROKER_UP.labels(tenant).set(0 if now.broker_down else 1)
        for outcome, before, after in (("published", self.counted.published, now.published),
                                       ("dropped", self.counted.dropped, now.dropped),
                                       ("failed", self.counted.failed, now.failed)):
            if after > before:
                FLEET_ENVELOPES.labels(tenant, outcome).inc(after - before)
        if self.consumer is not None:
            counts = self.consumer.counts
            stored, dead = self.external_counted
            FLEET_EXTERNAL.labels(tenant, "stored").inc(counts.stored - stored)
            FLEET_EXTERNAL.labels(tenant, "deadLettered").inc(counts.dead_lettered - dead)
            self.external_counted = (counts.stored, counts.dead_lettered)
        self.dropping = now.dropped > self.counted.dropped
        self.counted = now
        return now

    def state(self) -> dict[str, Any]:
        """For /readyz: the FleetPublishing condition, shaped like a status condition."""
        if self.publisher is None:
            return {"type": "FleetPublishing", "status": "False", "reason": "NotStarted", "message": ""}
        now = self.publisher.state()
        reason = "Dropping" if self.dropping and now.reason == "Publishing" else now.reason
        message = (f"{now.pending}/{now.capacity} waiting, {now.published} published, {now.dropped} dropped "
                   f"(buffer full), {now.failed} refused by the broker")
        if now.denied:  # the user must fix the credentials or the CA: their words first
            message = f"the broker refused our credentials or TLS: {now.denied}; {message}"
        out: dict[str, Any] = {"type": "FleetPublishing", "status": "True" if reason == "Publishing" else "False",
                               "reason": reason, "message": message, "tenant": self.settings.tenant,
                               "pending": now.pending, "dropped": now.dropped}
        if self.topics_error:
            out["topics"] = self.topics_error
        if self.consumer is not None:
            counts = self.consumer.counts
            out["external"] = {"stored": counts.stored, "deadLettered": counts.dead_lettered, "errors": counts.errors[-3:]}
        return out

    async def close(self) -> None:
        self.remove_audit_sink()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close, 5.0)
            self.meter()
        if self.client is not None:
            await asyncio.sleep(0)  # the acknowledgements of the last records, handed over from the publisher's thread
            try:
                await asyncio.wait_for(self._record(), 5.0)
            except TimeoutError:
                log.warning("fleet: the last published changes not recorded; a restart publishes them again")
            await self.client.aclose()
