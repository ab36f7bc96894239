"""Knowledge-graph write throughput: concluded Investigations (as ``aisre bench --statuses``
wrote them) written to a real Neo4j through the operator's own writer (GraphStore: its
bounded queue, one transaction per Investigation, MERGE on stable keys), each status under
``--copies`` fresh uids, as a busy cluster would send them.

  python bench/graph_writes.py STATUSES_DIR --neo4j-url bolt://127.0.0.1:7688 [--copies 5] [--json OUT]

Prints Investigations written per second, the mean write time per Investigation's
transaction and the rows (nodes and relationships to MERGE) per Investigation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path

from aisre.knowledge.graph import investigation_batches
from aisre.knowledge.memory import case_of_investigation
from aisre.operator.graph_store import GraphSettings, GraphStore
from aisre.operator.metrics import NEO4J_WRITE_SECONDS


async def measure(statuses: list[dict], url: str, copies: int) -> dict[str, float]:
    store = GraphStore(GraphSettings(url, "neo4j", os.environ.get("AISRE_NEO4J_PASSWORD", "password") or None))
    store.start()
    rows = 0
    try:
        # the schema first, so that the timing is of writes
        warm = statuses[0]
        store.submit(investigation_batches({"uid": str(uuid.uuid4()), "name": "warm", "namespace": "bench-graph"},
                                           warm["status"], []))
        await store.flush(120)
        before = NEO4J_WRITE_SECONDS._sum.get()  # noqa: SLF001  (the writer's own histogram)
        count = 0
        started = time.perf_counter()
        for copy in range(copies):
            for run in statuses:
                uid = str(uuid.uuid4())
                meta = {"uid": uid, "name": run["name"], "namespace": f"bench-graph-{copy}"}
                case = case_of_investigation(run["status"], uid=f"inc-{uid}", namespace=meta["namespace"],
                                             name=run["name"], now=dt.datetime.now(dt.UTC))
                batches = investigation_batches(meta, run["status"], [], case)
                rows += batches.rows()
                while not store.submit(batches):  # the queue is bounded: wait for room, as the bench must not drop
                    await asyncio.sleep(0.01)
                count += 1
        assert await store.flush(600), store.state()
        elapsed = time.perf_counter() - started
        mean_write = (NEO4J_WRITE_SECONDS._sum.get() - before) / count  # noqa: SLF001
    finally:
        await store.close()
    return {"investigations": count, "seconds": round(elapsed, 2), "per_second": round(count / elapsed, 1),
            "mean_write_ms": round(1000 * mean_write, 2), "rows_per_investigation": round(rows / count, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statuses", type=Path)
    parser.add_argument("--neo4j-url", default="bolt://127.0.0.1:7688")
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    statuses = [json.loads(p.read_text()) for p in sorted(args.statuses.glob("*.json"))]
    statuses = [s for s in statuses if (s.get("status") or {}).get("rootCause")]
    result = asyncio.run(measure(statuses, args.neo4j_url, args.copies))
    print(f"{result['investigations']} Investigations in {result['seconds']} s: {result['per_second']}/s, "
          f"{result['mean_write_ms']} ms per Investigation's transaction, {result['rows_per_investigation']} rows each")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
