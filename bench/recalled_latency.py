"""What knowledge adds to an Investigation's latency: the "Recalled" step of each concluded
Investigation's timeline (runbooks matched, similar past Incidents retrieved — from Neo4j by
Cypher when it is configured, else the embedded index), as ``aisre bench --mode investigate
--statuses DIR [--neo4j-url …]`` wrote them.

  python bench/recalled_latency.py STATUSES_DIR [--json OUT]

Prints the count, p50, p95 and max in milliseconds (the target: p95 added ≤ 100 ms).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

SPENT = re.compile(r"in (?P<ms>[\d.]+) ms$")


def recalled_ms(status: dict) -> float | None:
    for entry in status.get("timeline") or []:
        if entry.get("event") == "Recalled":
            match = SPENT.search(entry.get("message") or "")
            if match:
                return float(match.group("ms"))
    return None


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"count": len(ordered), "p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statuses", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    values = [ms for path in sorted(args.statuses.glob("*.json"))
              if (ms := recalled_ms(json.loads(path.read_text()).get("status") or {})) is not None]
    result = summary(values)
    print(f"Recalled in {result.get('count')} Investigations: p50 {result.get('p50_ms')} ms, p95 {result.get('p95_ms')} ms, "
          f"max {result.get('max_ms')} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
