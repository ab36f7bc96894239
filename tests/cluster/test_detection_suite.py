"""Scenarios of scenarios/ (a sample that takes every category), played in detect mode:
the operator's own detection must raise exactly one Incident about the scenario's namespace for a fault (one per root, not
one per pod) and none for a NoFault scenario. Which root cause the Investigation names is
the benchmark's business (bench/results/detect.json); this test guards correlation.

Scenarios tagged ``metrics`` are in too: their faults show only in Prometheus series, which
detection looks at itself (operator/detection/metric_watch.py; the bench starts the
loopback Prometheus of hack/prometheus.sh for them)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from aisre.bench.runner import Options, run

REPO = Path(__file__).resolve().parents[2]


def _play(scenarios: Path, kubeconfig: Path, out: Path) -> dict:
    options = Options(scenarios=scenarios, json_out=out, kubeconfig=kubeconfig, mode="detect", timeout=45)
    err = io.StringIO()
    assert run(options, out=io.StringIO(), err=err) == 0, err.getvalue()[-2000:]
    return json.loads(out.read_text())


def _operator_lines(output: str, names: list[str], limit: int = 40) -> list[str]:
    """The operator's log lines about these scenarios' namespaces (they carry the scenario name)."""
    return [line[:400] for line in output.splitlines() if any(f"-{name}-" in line for name in names)][-limit:]


PER_CATEGORY = 2


def sample(paths: list[Path], per_category: int = PER_CATEGORY) -> list[Path]:
    """The scenarios this test plays: ``per_category`` of each root-cause category, picked by
    a hash of the name (so a new scenario may take a place, and no one chooses which). Every
    scenario is played in detect mode by ``make bench`` (bench/results/detect.json); the
    whole suite takes half an hour, more than CI can give one test. Held-out scenarios are
    left to the bench: they measure the diagnosis and are never a gate it is tuned to pass."""
    by_category: dict[str, list[tuple[str, Path]]] = {}
    for path in paths:
        scenario = yaml.safe_load(path.read_text())
        if "heldout" in (scenario.get("tags") or []):
            continue
        by_category.setdefault(category(scenario), []).append((hashlib.sha1(scenario["name"].encode()).hexdigest(), path))
    # NoFault takes twice the places: a false alarm is what detection must never raise.
    return sorted(path for name, group in by_category.items()
                  for _, path in sorted(group)[:per_category * (2 if name == "NoFault" else 1)])


def category(scenario: dict) -> str:
    expect = scenario.get("expect") or {}
    return (expect.get("rootCause") or {}).get("category") or ("NoFault" if expect.get("incident") is False else "?")


def test_the_sample_takes_every_category() -> None:
    paths = sorted((REPO / "scenarios").glob("*.yaml"))
    chosen = sample(paths)
    tuning = [p for p in paths if "heldout" not in (yaml.safe_load(p.read_text()).get("tags") or [])]
    categories = {category(yaml.safe_load(p.read_text())) for p in tuning}
    assert len(chosen) <= PER_CATEGORY * (len(categories) + 1) and len(chosen) >= len(categories)
    assert {category(yaml.safe_load(p.read_text())) for p in chosen} == categories


@pytest.mark.slow
def test_each_fault_raises_one_incident_and_no_fault_none(kubeconfig: Path, crds, tmp_path: Path, capfd) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for path in sample(sorted((REPO / "scenarios").glob("*.yaml"))):
        shutil.copy(path, scenarios / path.name)
    report = _play(scenarios, kubeconfig, tmp_path / "detect.json")
    output = capfd.readouterr().out
    print(output, end="")  # kept for pytest's report
    results = {r["name"]: r for r in report["results"]}
    # Played once more on its own, and then it must pass like the others:
    # - a baseline that never became healthy, which says nothing about detection (the
    #   shared two-node cluster is briefly short of something after a node fault), at most 2;
    # - one fault that raised no Incident in time, at most 1: a rare miss, unexplained so
    #   far; the operator's lines about it are printed (and named in the failure if it
    #   misses again) so the next occurrence says why.
    unplayed = [name for name, r in results.items() if (r["error"] or "").startswith("setup not available")]
    missed = [name for name, r in results.items() if (r["error"] or "").startswith("timeout: no Incident")]
    missed_lines = _operator_lines(output, missed)
    if missed:
        print("missed in the full run:", missed, *missed_lines, sep="\n")
    replay = unplayed + (missed if len(missed) <= 1 else [])
    if replay:
        again = tmp_path / "again"
        again.mkdir()
        for path in scenarios.glob("*.yaml"):
            if yaml.safe_load(path.read_text())["name"] in replay:
                shutil.copy(path, again / path.name)
        results.update({r["name"]: r for r in _play(again, kubeconfig, tmp_path / "again.json")["results"]})
        output += capfd.readouterr().out
    wrong = []
    for r in results.values():
        expected = 0 if r["expected"]["category"] == "NoFault" else 1
        if r["error"] or len(r.get("incidents") or []) != expected:
            wrong.append((r["name"], r.get("incidents"), r["error"]))
    assert not wrong, (wrong, _operator_lines(output, [name for name, *_ in wrong]), missed_lines)
    assert len(unplayed) <= 2, f"baselines failed to come up: {unplayed}"
    assert len(missed) <= 1, (f"more than one fault raised no Incident in time: {missed}", missed_lines)
    assert not any(r["incidents"] for r in results.values() if r["expected"]["category"] == "NoFault")
