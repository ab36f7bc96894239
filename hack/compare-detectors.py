"""Compares the metrics agent's anomaly method (robust z + change point, agents/anomaly.py)
with an Isolation Forest on the series of the metric scenarios, offline.

Not part of the product: scikit-learn is not a dependency. Run it with an environment that
has both aisre and scikit-learn:
    python -m venv /tmp/cmp && /tmp/cmp/bin/pip install . scikit-learn
    /tmp/cmp/bin/python hack/compare-detectors.py scenarios tests/scenarios-metrics-heldout

Each series entry of a `metrics` step is one case. Its truth comes from the noiseless
shape: anomalous when the level at the end differs from the level at the start by 20 % or
more (a spike that is over, a flat series with noise: normal). Counters are compared on
their rate (the shape itself), which is what the agent queries.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import yaml
from sklearn.ensemble import IsolationForest

from aisre.agents.anomaly import assess
from aisre.bench.metrics import parse_step, samples, shape_value


def cases(dirs: list[str]):
    for d in dirs:
        for path in sorted(Path(d).glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            if "metrics" not in (doc.get("tags") or []):
                continue
            for step in doc.get("fault") or []:
                for spec in parse_step(step.get("metrics") or []):
                    if spec.series.startswith("kube_pod_container_resource") or spec.shape.kind == "constant":
                        continue  # limits and constants: nothing to detect
                    spec = spec.model_copy(update={"counter": False})
                    points = samples(spec)
                    start, end = shape_value(spec.shape, spec.from_, spec.to), shape_value(spec.shape, spec.to, spec.to)
                    truth = abs(end - start) >= 0.2 * max(abs(start), 1e-9)
                    yield f"{doc['name']}:{spec.series}{spec.labels}", [p[0] for p in points], [p[1] for p in points], truth


def robust(times, values) -> bool:
    result = assess(times, values)
    return result is not None and result.kind != "none"


def isolation_forest(times, values) -> bool:
    x = np.asarray(values).reshape(-1, 1)
    cut = max(8, int(len(x) * 0.3))
    model = IsolationForest(n_estimators=100, contamination="auto", random_state=0).fit(x[:cut])
    recent = np.asarray([v for t, v in zip(times, values) if t >= times[-1] - 300]).reshape(-1, 1)
    return float((model.predict(recent) == -1).mean()) >= 0.8


def score(name, detector, data):
    tp = fp = fn = tn = 0
    started = time.perf_counter()
    wrong = []
    for label, times, values, truth in data:
        said = detector(times, values)
        tp += said and truth
        fp += said and not truth
        fn += truth and not said
        tn += not said and not truth
        if said != truth:
            wrong.append(label)
    ms = (time.perf_counter() - started) * 1000 / max(len(data), 1)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"| {name} | {len(data)} | {tp} | {fp} | {fn} | {precision:.2f} | {recall:.2f} | {f1:.2f} | {ms:.1f} |")
    return wrong


if __name__ == "__main__":
    data = list(cases(sys.argv[1:] or ["scenarios"]))
    print("| detector | series | TP | FP | FN | precision | recall | F1 | ms/series |")
    print("|---|---|---|---|---|---|---|---|---|")
    wrong = {n: score(n, d, data) for n, d in (("robust z + change point", robust), ("Isolation Forest", isolation_forest))}
    for n, w in wrong.items():
        print(f"\n{n} wrong on: {w}")
