"""Recurrence benchmark for the memory of past incidents: does a fault that comes back find
its earlier occurrence first?

Input: two directories of concluded Investigations written by two separate runs of the
same scenarios (``aisre bench --mode investigate --statuses DIR``): every pod name, ReplicaSet
hash and timestamp differs between them, as when a fault recurs on a new revision. The
first run's conclusions become the memory (every scenario's case, all in one namespace, so
each recurrence competes with every other past case of its category); each second-run
conclusion asks memory for its most similar past case.

  recall@1: of the fault scenarios concluded with a root cause in both runs, the share whose
            most similar past case is the same scenario's first occurrence (target >= 0.9)
  nofault:  conclusions of NoFault make no case, and memory never changes a ranking (it does
            not vote), so no NoFault scenario can look faulty because of it: both are counted

Memory is offline here, as the operator builds it from the statuses (labels are not in a
status, so identity is the workload's name alone: stricter than in the operator, which adds
its app label).

  python bench/recurrence.py FIRST_DIR SECOND_DIR [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from aisre.knowledge.memory import Case, Memory, case_of_investigation

NAMESPACE = "bench"
FIRST = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def load(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def case_of(run: dict[str, Any], uid: str, at: dt.datetime) -> Case | None:
    return case_of_investigation(run["status"], uid=uid, namespace=NAMESPACE, name=run["name"], now=at)


def measure(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]) -> dict[str, Any]:
    memory = Memory()
    nofault_cases = 0
    for index, (name, run) in enumerate(first.items()):
        case = case_of(run, f"{name}#1", FIRST + dt.timedelta(minutes=index))
        if case is not None:
            memory.add(case)
            nofault_cases += run["expected"]["category"] == "NoFault"
    rows = []
    later = FIRST + dt.timedelta(days=1)
    for name, run in second.items():
        if run["expected"]["category"] == "NoFault" or name not in first:
            continue
        case = case_of(run, f"{name}#2", later)
        earlier = memory.get(f"{name}#1")
        if case is None or earlier is None:
            rows.append({"name": name, "counted": False, "why": "no root cause in one of the runs"})
            continue
        started = time.perf_counter()
        matches = memory.similar(case, limit=3)
        rows.append({"name": name, "counted": True, "hit": bool(matches) and matches[0].case.uid == earlier.uid,
                     "top": [(m.case.name, m.similarity) for m in matches], "seconds": time.perf_counter() - started})
    counted = [r for r in rows if r["counted"]]
    hits = sum(r["hit"] for r in counted)
    return {"cases": len(memory), "scenarios": len(rows), "counted": len(counted), "hits": hits,
            "recall_at_1": round(hits / len(counted), 3) if counted else None,
            "nofault_cases_made": nofault_cases, "misses": [r for r in counted if not r["hit"]],
            "not_counted": [r["name"] for r in rows if not r["counted"]],
            "query_p95_ms": round(1000 * sorted(r["seconds"] for r in counted)[int(0.95 * (len(counted) - 1))], 3)
            if counted else None}


def resident_size(first: dict[str, dict[str, Any]], cases: int = 10_000) -> dict[str, float]:
    """Memory's own size at ``cases`` stored cases (the first run's, repeated under new uids) and
    a query's time against them."""
    templates = [c for i, run in enumerate(first.values()) if (c := case_of(run, f"t{i}", FIRST)) is not None]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    memory = Memory(max_cases=cases)
    for i in range(cases):
        t = templates[i % len(templates)]
        memory.add(Case(f"u{i}", NAMESPACE, f"{t.name}-{i}", FIRST + dt.timedelta(seconds=i), t.category, t.kind,
                        t.resource, t.identity, t.signature))
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    probe = templates[0]
    probe = Case("probe", NAMESPACE, "probe", FIRST + dt.timedelta(days=30), probe.category, probe.kind, probe.resource,
                 probe.identity, probe.signature)
    started = time.perf_counter()
    for _ in range(20):
        memory.similar(probe)
    return {"cases": len(memory), "bytes": size, "mib": round(size / 2**20, 2),
            "query_ms": round(1000 * (time.perf_counter() - started) / 20, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    first, second = load(args.first), load(args.second)
    result = measure(first, second)
    result["at_10000_cases"] = resident_size(first)
    print(f"recurrences counted {result['counted']} of {result['scenarios']} fault scenarios; "
          f"recall@1 {result['recall_at_1']} ({result['hits']} hits); NoFault cases made {result['nofault_cases_made']}")
    for miss in result["misses"]:
        print(f"  miss {miss['name']}: top {miss['top']}")
    size = result["at_10000_cases"]
    print(f"index at {size['cases']} cases: {size['mib']} MiB, a query {size['query_ms']} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
