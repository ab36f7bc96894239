"""Every scenario in scenarios/, played in detect mode: the operator's own detection must
raise exactly one Incident about the scenario's namespace for a fault (one per root, not
one per pod) and none for a NoFault scenario. Which root cause the Investigation names is
the benchmark's business (bench/results/detect.json); this test guards correlation.

Scenarios tagged ``metrics`` are left out: their faults show only in Prometheus series,
which reach detection as Alertmanager alerts in a real cluster, and the scenario format
has no alerts (detection does not poll Prometheus itself)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from aisre.bench.runner import Options, run

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_each_fault_raises_one_incident_and_no_fault_none(kubeconfig: Path, crds, tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        if "metrics" not in (yaml.safe_load(path.read_text()).get("tags") or []):
            shutil.copy(path, scenarios / path.name)
    out = tmp_path / "detect.json"
    options = Options(scenarios=scenarios, json_out=out, kubeconfig=kubeconfig, mode="detect", timeout=45)
    err = io.StringIO()
    assert run(options, out=io.StringIO(), err=err) == 0, err.getvalue()[-2000:]
    report = json.loads(out.read_text())
    wrong = []
    for r in report["results"]:
        expected = 0 if r["expected"]["category"] == "NoFault" else 1
        if r["error"] or len(r.get("incidents") or []) != expected:
            wrong.append((r["name"], r.get("incidents"), r["error"]))
    assert not wrong, wrong
    assert report["false_positive_rate"] == 0.0
