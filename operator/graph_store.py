"""The knowledge graph in Neo4j, from the operator's side (``AISRE_NEO4J_URI``): a bounded
queue of write batches drained by one writer task with the official async driver, and
similar-incident retrieval as Cypher.

Never in an Investigation's way: a write is queued and the Investigation goes on; a full
queue drops the oldest-to-come (counted); an outage marks the store down (/readyz, the
``aisre_graph_up`` metric) and retrieval falls back to the embedded memory. Writes are
idempotent (MERGE on stable keys), so a batch retried after an outage does no harm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import neo4j
import structlog

from aisre.knowledge.graph import CONSTRAINTS, SIMILAR, Batches, similar_parameters
from aisre.knowledge.memory import MIN_SIMILARITY, Case, Match, explanation
from aisre.operator.metrics import NEO4J_QUEUE, NEO4J_UP, NEO4J_WRITE_SECONDS, NEO4J_WRITES

log = structlog.get_logger(__name__)
QUEUE_SIZE = 1000
QUERY_TIMEOUT_S = 2.0
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # backoff while Neo4j is down


@dataclass(frozen=True)
class GraphSettings:
    uri: str
    user: str | None = None
    password: str | None = None
    database: str | None = None


class GraphStore:
    def __init__(self, settings: GraphSettings, queue_size: int = QUEUE_SIZE) -> None:
        self.settings = settings
        auth = (settings.user or "neo4j", settings.password) if settings.password else None
        # Notifications off: on an empty graph every similarity query would log a warning per
        # label or property not yet written, once per Investigation.
        self.driver = neo4j.AsyncGraphDatabase.driver(settings.uri, auth=auth, connection_timeout=5.0,
                                                      notifications_min_severity="OFF")
        self.queue: asyncio.Queue[Batches] = asyncio.Queue(maxsize=queue_size)
        self.up: bool | None = None  # None until the first contact
        self.last_error = ""
        self._schema = False
        self._task: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        """For /readyz: up, down (and why) or not yet contacted; the writes waiting."""
        state = "up" if self.up else "down" if self.up is False else "connecting"
        return {"state": state, "queued": self.queue.qsize(), **({"error": self.last_error} if self.up is False else {})}

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="neo4j-writer")

    async def close(self, grace: float = 5.0) -> None:
        """Stop writing: what is queued gets ``grace`` seconds (a restart must not lose the
        last Investigations while Neo4j answers), then the writer and the driver stop."""
        if self._task is not None and self.up and not self._task.done():
            await self.flush(grace)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.driver.close()

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued is written; False if that took longer than ``timeout``."""
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    def submit(self, batches: Batches) -> bool:
        """Queue one Investigation's rows; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(batches)
        except asyncio.QueueFull:
            NEO4J_WRITES.labels("dropped").inc()
            return False
        NEO4J_QUEUE.set(self.queue.qsize())
        return True

    def _mark(self, up: bool, error: str = "") -> None:
        if up != self.up:
            (log.info if up else log.warning)("neo4j " + ("up" if up else "down"), uri=self.settings.uri, error=error[:300])
        self.up, self.last_error = up, error[:300]
        NEO4J_UP.set(1 if up else 0)

    async def _write(self, batches: Batches) -> None:
        async def work(tx: neo4j.AsyncManagedTransaction) -> None:
            for statement, rows in batches.statements:
                if rows:
                    await (await tx.run(statement, rows=rows)).consume()

        async with self.driver.session(database=self.settings.database) as session:
            if not self._schema:
                for constraint in CONSTRAINTS:
                    await (await session.run(constraint)).consume()
                self._schema = True
            await session.execute_write(work)

    async def _drain(self) -> None:
        failures = 0
        while True:
            batches = await self.queue.get()
            while True:
                started = time.perf_counter()
                try:
                    await self._write(batches)
                except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as error:
                    self._mark(False, f"{type(error).__name__}: {error}")
                    NEO4J_WRITES.labels("failed").inc()
                    await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                    failures += 1
                    continue  # MERGE makes the retry harmless
                failures = 0
                self._mark(True)
                NEO4J_WRITES.labels("written").inc()
                NEO4J_WRITE_SECONDS.observe(time.perf_counter() - started)
                break
            self.queue.task_done()
            NEO4J_QUEUE.set(self.queue.qsize())

    async def similar(self, case: Case, limit: int = 3, minimum: float = MIN_SIMILARITY) -> list[Match] | None:
        """The most similar past incidents, by Cypher over the graph; None when Neo4j cannot
        answer in time (the caller falls back to the embedded memory)."""
        try:
            records, _, _ = await asyncio.wait_for(self.driver.execute_query(
                SIMILAR, similar_parameters(case, limit, minimum), database_=self.settings.database,
                routing_=neo4j.RoutingControl.READ), QUERY_TIMEOUT_S)
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError, TimeoutError) as error:
            self._mark(False, f"{type(error).__name__}: {error}")
            return None
        self._mark(True)
        return [_match(record.data()) for record in records]


def _match(row: dict[str, Any]) -> Match:
    concluded = row["concludedAt"]
    when = concluded.to_native() if hasattr(concluded, "to_native") else dt.datetime.fromisoformat(str(concluded))
    actions = tuple(tuple(a.split(":", 1)) for a in row.get("actions") or [] if ":" in a)
    case = Case(uid=row["uid"], namespace=row["namespace"], name=row["name"], concluded_at=when, category=row["category"],
                kind=row.get("kind") or "", resource=row.get("resource") or "", identity=tuple(row.get("identity") or ()),
                actions=actions)  # type: ignore[arg-type]
    why = explanation(row["category"], case.kind if row.get("sameKind") else None, row.get("sharedIdentity") or [],
                      row.get("shared") or [], row.get("union"))
    return Match(case, float(row["similarity"]), why)
