"""The benchmark report: the JSON file SCENARIOS.md specifies, and a table for people."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aisre.bench.score import Result, parts, summarize


def build(results: Sequence[Result], *, mode: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {**summarize(results), "mode": mode, **parts(results)}
    report.update(extra or {})
    report["results"] = [r.to_json() for r in results]
    return report


def write_json(report: dict[str, Any], path: Path) -> None:
    """Written whole or not at all (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(report: dict[str, Any]) -> str:
    """One line per scenario, then the headline metrics."""
    rows = [("scenario", "expected", "top-1 hypothesis", "conf", "@1", "@3", "latency", "error")]
    for r in report["results"]:
        top = r["ranked"][0] if r["ranked"] else None
        expected = f"{r['expected']['category']} {r['expected']['resource'] or ''}".strip()
        rows.append(
            (
                _clip(r["name"], 40),
                _clip(expected, 40),
                _clip(f"{top['category']} {top['resource'] or ''}".strip(), 40) if top else "-",
                _fmt(top["confidence"]) if top else "-",
                "✓" if r["top1"] else "✗",
                "✓" if r["top3"] else "✗",
                _fmt(r["latency_s"], "{:.1f}s"),
                _clip(r["error"] or "", 60),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"scenarios {report['scenarios']}  top1 {_fmt(report['top1'], '{:.3f}')}  top3 {_fmt(report['top3'], '{:.3f}')}  "
        f"false positives {_fmt(report['false_positive_rate'], '{:.3f}')}  ece {_fmt(report['ece'], '{:.3f}')}  "
        f"latency p50 {_fmt(report['latency_p50_s'], '{:.2f}s')} p95 {_fmt(report['latency_p95_s'], '{:.2f}s')}  "
        f"errors {report['errors']}"
    )
    for name, part in (report.get("parts") or {}).items():
        if part:
            lines.append(f"  {name}: scenarios {part['scenarios']}  top1 {_fmt(part['top1'], '{:.3f}')}  "
                         f"top3 {_fmt(part['top3'], '{:.3f}')}  false positives {_fmt(part['false_positive_rate'], '{:.3f}')}  "
                         f"ece {_fmt(part['ece'], '{:.3f}')}")
    return "\n".join(lines)
