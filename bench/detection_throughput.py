"""Throughput of the detection path on one core: watch events in, decisions out.

Drives exactly the code the watches feed (``Pipeline.handle`` → signals → ``Detector``)
and the decision loop (``Detector.decide``) with a synthetic cluster: N namespaces of
deployments whose pods crash-loop, go NotReady, get OOM-killed or become healthy again,
plus Warning events and node flaps. The process is pinned to one CPU. Prints the figures
and writes them as JSON.

    .venv/bin/python bench/detection_throughput.py [--events 200000] [--json bench/results/detection-throughput.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from aisre.operator.detection.detector import Detector
from aisre.operator.detection.pipeline import Pipeline
from aisre.operator.detection.thresholds import Thresholds

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(ns: str, deploy: str, i: int, now: dt.datetime, state: str, restarts: int) -> dict[str, Any]:
    name = f"{deploy}-{i}"
    cs: dict[str, Any] = {"name": "app", "ready": state == "ok", "restartCount": restarts,
                          "state": {"running": {"startedAt": iso(now)}}}
    if state == "crash":
        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}
        cs["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": iso(now)}}
    elif state == "oom":
        cs["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": iso(now)}}
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"{ns}-{name}",
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{deploy}-6f7", "controller": True}]},
            "spec": {"nodeName": f"node-{i % 20}", "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "startTime": iso(now), "containerStatuses": [cs],
                       "conditions": [{"type": "Ready", "status": "True" if state == "ok" else "False",
                                       "lastTransitionTime": iso(now - dt.timedelta(minutes=10))}]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--deployments", type=int, default=20, help="per namespace")
    parser.add_argument("--pods", type=int, default=5, help="per deployment")
    parser.add_argument("--sick", type=float, default=0.1, help="share of deployments in trouble")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = random.Random(7)
    now = T0
    th = Thresholds()
    detector = Detector(th, "aisre-system", write_interval=2.0)
    pipeline = Pipeline(detector, th, clock=lambda: now)
    for n in range(args.namespaces):
        ns = f"team-{n}"
        for d in range(args.deployments):
            deploy = f"svc-{d}"
            pipeline.handle("Deployment", "ADDED", {
                "kind": "Deployment", "metadata": {"name": deploy, "namespace": ns, "uid": f"{ns}-{deploy}", "generation": 1},
                "spec": {"replicas": args.pods, "selector": {"matchLabels": {"app": deploy}},
                         "template": {"metadata": {"labels": {"app": deploy}}, "spec": {"containers": [
                             {"name": "app", "env": [{"name": "DB_HOST", "value": f"svc-{(d + 1) % args.deployments}"}]}]}}}})
            pipeline.handle("ReplicaSet", "ADDED", {"kind": "ReplicaSet", "metadata": {
                "name": f"{deploy}-6f7", "namespace": ns, "uid": f"{ns}-{deploy}-rs",
                "ownerReferences": [{"kind": "Deployment", "name": deploy, "controller": True}]}})
            pipeline.handle("Service", "ADDED", {"kind": "Service", "metadata": {"name": deploy, "namespace": ns, "uid": f"s-{ns}-{deploy}"},
                                                 "spec": {"selector": {"app": deploy}}})
    # A share of the deployments are in trouble at any time; the rest churn healthily.
    sick = {(n, d) for n in range(args.namespaces) for d in range(args.deployments) if rng.random() < args.sick}
    restarts: dict[str, int] = {}
    signals_before = detector.signals_seen
    decisions = 0
    operations = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    tick_every = 2000  # events between decisions: about one decision per second at the target rate
    for k in range(args.events):
        n, d, i = rng.randrange(args.namespaces), rng.randrange(args.deployments), rng.randrange(args.pods)
        ns, deploy = f"team-{n}", f"svc-{d}"
        kind = rng.random()
        if kind < 0.1:
            event = {"kind": "Event", "type": "Warning", "reason": rng.choice(["FailedMount", "FailedCreate", "BackOff"]),
                     "metadata": {"name": f"e{k}", "namespace": ns, "uid": f"e{k}"}, "count": 1,
                     "lastTimestamp": iso(now), "firstTimestamp": iso(now), "message": "MountVolume.SetUp failed",
                     "involvedObject": {"kind": "Pod", "name": f"{deploy}-{i}", "namespace": ns, "uid": f"{ns}-{deploy}-{i}"}}
            pipeline.handle("Event", "ADDED", event)
        else:
            key = f"{ns}/{deploy}/{i}"
            state = "ok"
            if (n, d) in sick:
                state = rng.choice(["crash", "crash", "oom", "notready"])
                restarts[key] = restarts.get(key, 0) + (state in ("crash", "oom"))
            pipeline.handle("Pod", "MODIFIED", pod(ns, deploy, i, now, state, restarts.get(key, 0)))
        if k % tick_every == tick_every - 1:
            now += dt.timedelta(seconds=1)
            operations += len(detector.decide(now))
            decisions += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    signals = detector.signals_seen - signals_before
    figures = {
        "watch_events": args.events, "signals": signals, "decisions": decisions, "operations": operations,
        "open_incidents": sum(1 for t in detector.tracked.values() if t.opened),
        "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3),
        "events_per_second": round(args.events / elapsed), "signals_per_second": round(signals / elapsed),
        "pods": args.namespaces * args.deployments * args.pods, "sick_share": args.sick, "one_core": hasattr(os, "sched_setaffinity"),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
