"""The fleet on a real Kafka broker: envelopes per second published and consumed on one
core, and the latency from an external signal on Kafka to an Incident in the API server.

- Publish: watch events of crash-looping pods through ``Pipeline.handle`` (the code the
  watches feed) → ``Detector.on_signal`` → ``FleetService.signal`` → the bounded publisher →
  librdkafka → the broker; timed until the broker acknowledged the last one.
- Consume: external signal envelopes put on ``aisre.<tenant>.external`` beforehand, read by
  ``FleetService``'s consumer (validate → ``Signal`` → ``DetectionService.alerts``); timed
  from its first batch to the last record handed to detection (the group join before it is
  shown apart). Detection writes no Incidents here, so nothing is committed: offsets follow
  the Incidents' writes, which the latency part times.
- Latency: the operator (``OperatorThread``, the same entry point as ``aisre run``) against
  the local cluster (.cluster/kubeconfig) with ``consume_external``; one signal per
  Deployment, each timed from the produce call until the Incident is listed (API polled
  every 25 ms). Detection's own settle time is part of it and is printed.

The throughput parts pin the process to one CPU (librdkafka's threads included) before any
client exists. The broker (hack/kafka.sh) is started if none answers, on loopback.

    PYTHONPATH=<install> .venv/bin/python bench/kafka_fleet.py [--events 50000] [--signals 20]
        [--json bench/results/kafka-fleet.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from aisre.fleet.envelope import encode
from aisre.fleet.kafka import KafkaSettings, ensure_topics
from aisre.operator.detection.service import DetectionService
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.fleet_step import FleetService

REPO = Path(__file__).resolve().parents[1]


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def crashing_pod(n: int, pods: int, now: dt.datetime) -> dict[str, Any]:
    """Pod n % pods, with a restart count that makes each event a new signal (a new key)."""
    i, restarts = n % pods, 3 + n // pods
    return {"kind": "Pod",
            "metadata": {"name": f"web-{i}", "namespace": f"team-{i % 50}", "uid": f"pod-{i}",
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "web-6f7", "controller": True}]},
            "spec": {"nodeName": f"node-{i % 20}", "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "startTime": iso(now), "containerStatuses": [{
                "name": "app", "ready": False, "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": iso(now)}}}]}}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def publish(bootstrap: str, events: int) -> dict[str, Any]:
    settings = KafkaSettings(bootstrap=bootstrap, tenant=f"bench-{uuid.uuid4().hex[:6]}", buffer=max(events, 10_000))
    fleet = FleetService(settings)
    await fleet.start()
    detection = DetectionService(Thresholds(), "aisre-system")
    fleet.attach(detection)
    now = dt.datetime.now(dt.UTC)
    bodies = [crashing_pod(n, 5000, now) for n in range(events)]  # built before the clock starts
    began = time.perf_counter()
    for body in bodies:
        detection.pipeline.handle("Pod", "MODIFIED", body)
    offered = time.perf_counter() - began
    assert fleet.publisher is not None
    left = await asyncio.to_thread(fleet.publisher.flush, 120.0)
    took = time.perf_counter() - began
    state = fleet.publisher.state()
    await fleet.close()
    return {"envelopes": state.published, "dropped": state.dropped, "failed": state.failed, "left": left,
            "seconds": round(took, 3), "per_second": round(state.published / took),
            "handled_per_second": round(events / offered), "tenant": settings.tenant}


async def consume(bootstrap: str, records: int) -> dict[str, Any]:
    settings = KafkaSettings(bootstrap=bootstrap, tenant=f"bench-{uuid.uuid4().hex[:6]}", consume_external=True)
    await asyncio.to_thread(ensure_topics, settings)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for n in range(records):  # 1,500 ingest ids: below detection's cap of held alerts, each sent again and again
        data = {"ingest_id": f"probe-{n % 1500}", "reason": "SyntheticCheckFailing", "severity": "high",
                "entity": {"namespace": f"team-{n % 50}", "kind": "Deployment", "name": f"web-{n % 30}"}}
        key = data["ingest_id"]
        while True:
            try:
                producer.produce(settings.topics.external, key=key, value=encode("signal", "probe", key, data))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    fleet = FleetService(settings)
    await fleet.start()
    detection = DetectionService(Thresholds(), "aisre-system")
    began = time.perf_counter()
    fleet.attach(detection)
    assert fleet.consumer is not None
    counts = fleet.consumer.counts
    first = None
    while counts.stored + counts.dead_lettered < records:
        if first is None and counts.batches:
            first = (time.perf_counter(), counts.stored + counts.dead_lettered)
        await asyncio.sleep(0.005)
    done = time.perf_counter()
    await fleet.close()
    assert first is not None
    return {"records": records, "stored": counts.stored, "dead_lettered": counts.dead_lettered,
            "join_seconds": round(first[0] - began, 3), "seconds": round(done - first[0], 3),
            "per_second": round((records - first[1]) / (done - first[0])), "held_alerts": len(detection.detector.alerts)}


def latency(bootstrap: str, kubeconfig: Path, signals: int, settle: float) -> dict[str, Any]:
    import kubernetes

    from aisre.bench.operator_thread import OperatorThread, free_port

    kubectl = [str(REPO / ".tools" / "bin" / "kubectl"), "--kubeconfig", str(kubeconfig)]
    ns = f"bench-fleet-{uuid.uuid4().hex[:6]}"
    subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
    try:
        manifests = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"svc-{i}"}, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": f"svc-{i}"}}, "template": {
                "metadata": {"labels": {"app": f"svc-{i}"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0"}]}}}} for i in range(signals)]
        subprocess.run([*kubectl, "apply", "-n", ns, "-f", "-"], check=True, capture_output=True,
                       input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}).encode())
        settings = KafkaSettings(bootstrap=bootstrap, tenant=f"bench-{uuid.uuid4().hex[:6]}", consume_external=True)
        # Twenty Incidents in one namespace within a minute would be a storm (folded into one): not here.
        thresholds = dataclasses.replace(Thresholds.compressed(), settle=settle, resolve_after=600.0, storm_per_minute=1000)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0})
        found: list[float] = []
        with OperatorThread(kubeconfig, free_port(), namespaces=(ns,), detection=True, operator_namespace=ns,
                            thresholds=thresholds, kafka=settings):
            api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(kubeconfig)))

            def incidents() -> list[dict[str, Any]]:
                return list(api.list_namespaced_custom_object("aisre.dev", "v1alpha1", ns, "incidents")["items"])

            # A first signal waits out the consumer group's join; it is not timed.
            _send(producer, settings, ns, "warm-up", "svc-0")
            _until(incidents, 60)
            for i in range(1, signals):
                sent = time.perf_counter()
                _send(producer, settings, ns, f"probe-{i}", f"svc-{i}")
                _until(lambda: any(it["spec"]["resource"]["name"] == f"svc-{i}" for it in incidents()), 30)
                found.append(time.perf_counter() - sent)
        return {"signals": len(found), "settle_seconds": settle, "p50_seconds": round(statistics.median(found), 3),
                "p95_seconds": round(percentile(found, 0.95), 3), "max_seconds": round(max(found), 3)}
    finally:
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)


def _send(producer: Producer, settings: KafkaSettings, ns: str, ingest_id: str, workload: str) -> None:
    data = {"ingest_id": ingest_id, "reason": "SyntheticCheckFailing", "severity": "high",
            "entity": {"namespace": ns, "kind": "Deployment", "name": workload}}
    producer.produce(settings.topics.external, key=ingest_id, value=encode("signal", "probe", ingest_id, data))
    producer.flush(10)


def _until(probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.025)
    raise TimeoutError(f"not within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", help="a running broker (default: hack/kafka.sh start)")
    parser.add_argument("--events", type=int, default=50_000, help="watch events (each one envelope) published")
    parser.add_argument("--records", type=int, default=50_000, help="external signal records consumed")
    parser.add_argument("--signals", type=int, default=21, help="external signals timed to their Incident (the first warms up)")
    parser.add_argument("--settle", type=float, default=0.5, help="detection's settle time for the latency part")
    parser.add_argument("--kubeconfig", type=Path, default=REPO / ".cluster" / "kubeconfig")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "kafka-fleet.json")
    args = parser.parse_args()
    bootstrap = args.bootstrap or subprocess.run(["bash", str(REPO / "hack" / "kafka.sh"), "start"], check=True,
                                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})  # one core, for every thread started from here on
    published = asyncio.run(publish(bootstrap, args.events))
    print(f"published: {published['per_second']:,} envelopes/s acknowledged ({published['envelopes']:,} in "
          f"{published['seconds']} s; watch events handled at {published['handled_per_second']:,}/s; "
          f"dropped {published['dropped']})")
    consumed = asyncio.run(consume(bootstrap, args.records))
    print(f"consumed: {consumed['per_second']:,} external signals/s validated and held by detection "
          f"({consumed['records']:,} in {consumed['seconds']} s after a {consumed['join_seconds']} s group join)")
    os.sched_setaffinity(0, everywhere)
    ended = latency(bootstrap, args.kubeconfig, args.signals, args.settle) if args.kubeconfig.exists() else None
    if ended:
        print(f"external signal -> Incident: p50 {ended['p50_seconds']} s, p95 {ended['p95_seconds']} s, "
              f"max {ended['max_seconds']} s over {ended['signals']} (settle {ended['settle_seconds']} s)")
    # The core is shared with whatever else runs on the machine: its load explains a spread between runs.
    result = {"broker": "Apache Kafka (KRaft, hack/kafka.sh) on loopback, its own process", "cpus": 1,
              "load_average_1m": round(os.getloadavg()[0], 2), "machine_cpus": os.cpu_count(), "publish": published,
              "consume": consumed, "latency": ended, "targets": {"per_second": 5000, "p95_seconds": 2.0},
              "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
