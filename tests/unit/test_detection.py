"""Detection without a cluster: signals from objects, thresholds, correlation, dedupe,
storm control, severity, resolution, and what survives a restart (pure parts)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from aisre.api.signal import SignalSource
from aisre.operator.detection import alertmanager, store
from aisre.operator.detection.detector import Detector, Open, Resolve, Update
from aisre.operator.detection.pipeline import Pipeline
from aisre.operator.detection.index import ClusterIndex, probe_thresholds
from aisre.operator.detection.signals import event_signal, make_signal, node_signals, pod_signals, probe_of
from aisre.operator.detection.thresholds import Thresholds

T0 = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)
TH = Thresholds(settle=1.0, resolve_after=10.0, storm_per_minute=3)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def deployment(name: str, ns: str = "shop", replicas: int = 3, env: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": ns, "uid": f"d-{name}", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": name, "image": "x", "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}]}}},
            "status": {}}


def replicaset(deploy: str, ns: str = "shop") -> dict[str, Any]:
    return {"kind": "ReplicaSet", "metadata": {"name": f"{deploy}-7d9", "namespace": ns, "uid": f"rs-{deploy}",
                                              "ownerReferences": [{"kind": "Deployment", "name": deploy, "controller": True}]},
            "spec": {}}


def service(name: str, selector: dict[str, str], ns: str = "shop") -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns, "uid": f"s-{name}"}, "spec": {"selector": selector}}


def pod(name: str, owner: str, *, ns: str = "shop", node: str = "node-a", waiting: str | None = None,
        restarts: int = 0, ready: bool = True, ready_since: dt.datetime = T0, last_finished: dt.datetime | None = None,
        last_reason: str = "Error", phase: str = "Running") -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {"startedAt": iso(T0)}}
    cs: dict[str, Any] = {"name": "app", "ready": ready and not waiting, "restartCount": restarts, "state": state}
    if last_finished:
        cs["lastState"] = {"terminated": {"reason": last_reason, "exitCode": 1, "finishedAt": iso(last_finished)}}
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"p-{name}",
                                       "ownerReferences": [{"kind": "ReplicaSet", "name": f"{owner}-7d9", "controller": True}]},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "startTime": iso(T0), "containerStatuses": [cs],
                       "conditions": [{"type": "Ready", "status": "True" if ready and not waiting else "False",
                                       "lastTransitionTime": iso(ready_since)}]}}


def node(name: str, ready: str = "True", since: dt.datetime = T0, **pressure: str) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "lastTransitionTime": iso(since), "message": "kubelet"}]
    conditions += [{"type": k, "status": v, "lastTransitionTime": iso(since)} for k, v in pressure.items()]
    return {"kind": "Node", "metadata": {"name": name, "uid": f"n-{name}"}, "status": {"conditions": conditions}}


@pytest.fixture
def world() -> tuple[Detector, Pipeline, Clock]:
    clock = Clock()
    detector = Detector(TH, "aisre-system", write_interval=0.0)
    pipeline = Pipeline(detector, TH, clock=clock)
    for name in ("web", "db"):
        pipeline.handle("Deployment", "ADDED", deployment(name, env={"DB_HOST": "db"} if name == "web" else None))
        pipeline.handle("ReplicaSet", "ADDED", replicaset(name))
    pipeline.handle("Service", "ADDED", service("db", {"app": "db"}))
    pipeline.handle("Service", "ADDED", service("web", {"app": "web"}))
    pipeline.handle("Node", "ADDED", node("node-a"))
    return detector, pipeline, clock


def decide(detector: Detector, seconds: float) -> list[Any]:
    return detector.decide(at(seconds))


# --- signals and thresholds ------------------------------------------------------------------

def test_one_restart_is_not_an_incident_but_a_crash_loop_is() -> None:
    owners = ()
    once = pod("a", "web", restarts=1, last_finished=T0)
    assert pod_signals(once, owners, at(5), TH) == []
    looping = pod("a", "web", restarts=4, waiting="CrashLoopBackOff", last_finished=T0)
    assert [s.reason for s in pod_signals(looping, owners, at(5), TH)] == ["CrashLoopBackOff"]
    several = pod("a", "web", restarts=3, last_finished=at(-30))
    assert [s.reason for s in pod_signals(several, owners, at(5), TH)] == ["RepeatedRestarts"]
    long_ago = pod("a", "web", restarts=3, last_finished=at(-3600))
    assert pod_signals(long_ago, owners, at(5), TH) == []


def test_grace_times_hold_a_signal_back_until_it_has_lasted() -> None:
    not_ready = pod("a", "web", ready=False, ready_since=T0)
    [signal] = pod_signals(not_ready, (), at(1), TH)
    assert signal.reason == "NotReady" and signal.due() == at(TH.not_ready_grace)
    [pull] = pod_signals(pod("b", "web", waiting="ErrImagePull"), (), at(1), TH)
    assert pull.due() == at(TH.image_pull_grace)
    [backoff] = pod_signals(pod("b", "web", waiting="ImagePullBackOff"), (), at(1), TH)
    assert backoff.due() <= at(1)


def test_oom_kill_and_eviction_count_at_once() -> None:
    oom = pod("a", "web", restarts=1, last_finished=at(-5), last_reason="OOMKilled")
    assert [s.reason for s in pod_signals(oom, (), at(0), TH)] == ["OOMKilled"]
    evicted = pod("b", "web", phase="Failed")
    evicted["status"]["reason"] = "Evicted"
    assert [s.reason for s in pod_signals(evicted, (), at(0), TH)] == ["Evicted"]


def test_node_signals_and_event_keys_never_use_message_text() -> None:
    [not_ready] = node_signals(node("n1", ready="False", since=T0), at(1), TH)
    assert not_ready.reason == "NodeNotReady" and not_ready.source == SignalSource.NODE
    assert [s.reason for s in node_signals(node("n1", MemoryPressure="True"), at(1), TH)] == ["MemoryPressure"]
    # node-problem-detector's conditions follow the kubelet's convention: True is the problem.
    assert [s.reason for s in node_signals(node("n1", ReadonlyFilesystem="True", KernelDeadlock="False"), at(1), TH)] == [
        "ReadonlyFilesystem"]
    event = {"type": "Warning", "reason": "FailedCreate", "lastTimestamp": iso(T0), "count": 3,
             "involvedObject": {"kind": "ReplicaSet", "name": "web-7d9", "namespace": "shop", "uid": "rs-web"},
             "message": 'pods "web-x" is forbidden: exceeded quota: compute, requested: cpu=2'}
    first = event_signal(event, (), at(1), TH)
    event["message"] = 'pods "web-y" is forbidden: exceeded quota: compute, requested: cpu=4 (other words)'
    second = event_signal(event, (), at(2), TH)
    assert first is not None and second is not None
    assert first.reason == "QuotaExceeded" and first.detail["quota"] == "compute"
    assert first.key == second.key
    assert event_signal({**event, "type": "Normal"}, (), at(1), TH) is None


def test_repeated_liveness_failures_are_a_signal_below_the_restart_threshold() -> None:
    event = {"type": "Warning", "reason": "Unhealthy", "lastTimestamp": iso(T0), "count": 6,
             "involvedObject": {"kind": "Pod", "name": "quotes-5c9-x", "namespace": "shop", "uid": "p1"},
             "message": 'Liveness probe failed: Get "http://10.1.0.4:8080/healthz": context deadline exceeded'}
    signal = event_signal(event, (), at(1), TH)
    assert signal is not None and signal.reason == "LivenessProbeFailing"
    assert event_signal({**event, "count": 1}, (), at(1), TH) is None  # one failed probe kills nothing
    assert event_signal({**event, "count": 3}, (), at(1), TH) is None  # one kill: a cold start, maybe
    readiness = {**event, "message": "Readiness probe failed: HTTP probe failed with statuscode: 503"}
    assert event_signal(readiness, (), at(1), TH) is None


def test_a_startup_probe_failing_within_its_threshold_kills_nothing() -> None:
    """A slow start under a generous startupProbe (failureThreshold 60) fails many probes
    and is not killed: only as many failures as the probe's threshold mean a kill, and only
    a second kill is a signal."""
    pod = {"metadata": {"name": "keycloak-0", "namespace": "sso", "uid": "p2"},
           "spec": {"containers": [{"name": "keycloak", "startupProbe": {"httpGet": {"port": 9000}, "failureThreshold": 60},
                                    "livenessProbe": {"httpGet": {"port": 9000}}}]}}
    assert probe_thresholds(pod) == (("keycloak", "liveness", 3), ("keycloak", "startup", 60))
    index = ClusterIndex()
    index.set_pod(pod, ())
    event = {"type": "Warning", "reason": "Unhealthy", "lastTimestamp": iso(T0), "count": 14,
             "involvedObject": {"kind": "Pod", "name": "keycloak-0", "namespace": "sso", "uid": "p2",
                                "fieldPath": "spec.containers{keycloak}"},
             "message": 'Startup probe failed: Get "http://10.0.0.72:9000/health/started": connect: connection refused'}
    probe = probe_of(event)
    assert probe == ("keycloak", "startup")
    kill_after = index.probe_failure_threshold("p2", *probe)
    assert kill_after == 60
    assert event_signal(event, (), at(1), TH, kill_after) is None
    assert event_signal({**event, "count": 60}, (), at(1), TH, kill_after) is None  # killed once
    assert event_signal({**event, "count": 120}, (), at(1), TH, kill_after).reason == "LivenessProbeFailing"
    assert event_signal(event, (), at(1), TH) is not None  # pod unknown: Kubernetes' default threshold


# --- correlation, dedupe, severity -------------------------------------------------------------

def test_every_failing_pod_of_one_deployment_is_one_incident(world) -> None:
    detector, pipeline, clock = world
    for i in range(3):
        pipeline.handle("Pod", "ADDED", pod(f"web-{i}", "web", waiting="CrashLoopBackOff", restarts=5))
    assert decide(detector, 0.5) == []  # still settling
    ops = decide(detector, 1.5)
    assert len(ops) == 1 and isinstance(ops[0], Open)
    tracked = ops[0].tracked
    assert tracked.root.display == "Deployment/web" and tracked.namespace == "shop"
    assert tracked.occurrences == 3 and tracked.severity == "critical"  # all 3 replicas down
    assert store.spec_of(tracked)["fingerprint"] == tracked.fingerprint


def test_partial_degradation_is_less_severe(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    [op] = decide(detector, 0) or decide(detector, 1.5)
    assert op.tracked.severity == "high"  # 1 of 3 replicas, a high signal


def test_repeats_update_occurrences_instead_of_opening_again(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    pipeline.handle("Pod", "MODIFIED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    assert decide(detector, 2) == []  # the same observation again: nothing new
    pipeline.handle("Pod", "MODIFIED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=6))
    [update] = decide(detector, 3)
    assert isinstance(update, Update) and update.tracked is opened.tracked and update.tracked.occurrences == 2


def test_a_client_failing_with_its_database_is_one_incident_about_the_database(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    ops = decide(detector, 1.5)
    assert len(ops) == 1
    tracked = ops[0].tracked
    assert tracked.root.display == "Deployment/db"
    assert "shop/Deployment/web" in tracked.members


def mount_failure(pod_name: str, seconds: float = 0) -> dict[str, Any]:
    return {"kind": "Event", "type": "Warning", "reason": "FailedMount", "lastTimestamp": iso(at(seconds)),
            "metadata": {"name": f"{pod_name}.mount", "namespace": "shop", "uid": f"e-{pod_name}"},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": "shop", "uid": f"p-{pod_name}"},
            "message": 'MountVolume.SetUp failed for volume "kube-api-access-7xq2d" : object "shop"/"kube-root-ca.crt" not registered'}


def test_a_mount_failure_is_history_once_the_pods_containers_run(world) -> None:
    """The kubelet starts no container before every volume is mounted: a pod whose
    containers run has its volumes, whatever FailedMount warning it had on the way."""
    detector, pipeline, clock = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web"))
    pipeline.handle("Event", "ADDED", mount_failure("web-0"))  # after the pod runs
    pipeline.handle("Pod", "ADDED", pod("web-1", "web", waiting="ContainerCreating", phase="Pending"))
    pipeline.handle("Event", "ADDED", mount_failure("web-1"))  # before: held, then forgotten when it runs
    pipeline.handle("Pod", "MODIFIED", pod("web-1", "web"))
    assert [op for s in (0, 200, 400) for op in decide(detector, s)] == []
    clock.now = at(400)
    pipeline.handle("Pod", "ADDED", pod("web-2", "web", waiting="ContainerCreating", phase="Pending"))
    pipeline.handle("Event", "ADDED", mount_failure("web-2", 400))  # never mounts: a fault
    ops = [op for s in (450, 530, 600) for op in decide(detector, s)]
    assert len(ops) == 1 and isinstance(ops[0], Open)


def test_events_about_a_deleted_pod_raise_nothing(world) -> None:
    """A mount that failed while a deleted pod was torn down is about nothing that runs."""
    detector, pipeline, _ = world
    gone = pod("web-3", "web", waiting="ContainerCreating", phase="Pending")
    pipeline.handle("Pod", "ADDED", gone)
    pipeline.handle("Pod", "DELETED", gone)
    pipeline.handle("Event", "ADDED", mount_failure("web-3"))
    assert [op for s in (0, 200, 400) for op in decide(detector, s)] == []


def test_pods_on_an_unwell_node_are_one_incident_about_the_node(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Node", "MODIFIED", node("node-a", ready="False", since=at(-60)))
    for i in range(2):
        pipeline.handle("Pod", "ADDED", pod(f"web-{i}", "web", ready=False, ready_since=at(-300)))
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", ready=False, ready_since=at(-300)))
    decide(detector, 0)
    ops = decide(detector, 1.5)
    assert [type(o) for o in ops] == [Open]
    tracked = ops[0].tracked
    assert tracked.root.display == "Node/node-a" and tracked.namespace == "aisre-system"
    assert {"shop/Deployment/web", "shop/Deployment/db"} <= set(tracked.members)


def test_unrelated_failures_stay_apart_and_storm_control_folds_the_overflow() -> None:
    clock = Clock()
    detector = Detector(TH, "aisre-system", write_interval=0.0)
    pipeline = Pipeline(detector, TH, clock=clock)
    for i in range(6):
        pipeline.handle("Deployment", "ADDED", deployment(f"app{i}"))
        pipeline.handle("ReplicaSet", "ADDED", replicaset(f"app{i}"))
        pipeline.handle("Pod", "ADDED", pod(f"app{i}-0", f"app{i}", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    ops = decide(detector, 1.5)
    opened = [o for o in ops if isinstance(o, Open)]
    assert len(opened) == TH.storm_per_minute + 1  # three roots, then one aggregate
    storm = [o.tracked for o in opened if o.tracked.aggregate]
    assert len(storm) == 1 and len(storm[0].members) == 3 and "storm" in storm[0].title().lower()


def test_signals_that_clear_resolve_the_incident_after_the_window(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    decide(detector, 1.5)
    pipeline.handle("Pod", "MODIFIED", pod("web-0", "web", restarts=5))  # running and ready again
    assert decide(detector, 2) == []
    assert decide(detector, 11) == []
    [resolved] = decide(detector, 12.5)
    assert isinstance(resolved, Resolve)


def test_a_blip_that_clears_before_it_settles_opens_nothing(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    pipeline.handle("Pod", "MODIFIED", pod("web-0", "web", restarts=5))
    assert decide(detector, 0.5) == [] and decide(detector, 5) == []


def test_a_restarted_detector_adopts_the_incident_and_counts_nothing_twice(world) -> None:
    detector, pipeline, _ = world
    sick = pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5)
    pipeline.handle("Pod", "ADDED", sick)
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    tracked = opened.tracked
    written = {"metadata": {"name": tracked.name, "namespace": tracked.namespace,
                            "annotations": store._metadata(tracked, KEY)["annotations"]}, "spec": store.spec_of(tracked)}
    # A new detector (the operator restarted) reads the Incident back and sees the same pod.
    fresh = Detector(TH, "aisre-system", write_interval=0.0)
    adopted = store.tracked_from(written, at(2), KEY, "aisre-system")
    assert adopted is not None
    fresh.adopt(adopted)
    again = Pipeline(fresh, TH, clock=lambda: at(2))
    again.handle("Deployment", "ADDED", deployment("web"))
    again.handle("ReplicaSet", "ADDED", replicaset("web"))
    again.handle("Pod", "ADDED", sick)
    assert fresh.decide(at(3)) == []  # no second Incident, no recount
    assert adopted.occurrences == 1
    again.handle("Pod", "MODIFIED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=6))
    [update] = fresh.decide(at(4))
    assert isinstance(update, Update) and update.tracked.name == tracked.name and update.tracked.occurrences == 2


def test_scaled_to_zero_behind_a_service_is_a_signal_but_not_without_one(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Deployment", "MODIFIED", deployment("db", replicas=0))
    lonely = deployment("batch", replicas=0)
    pipeline.handle("Deployment", "ADDED", lonely)
    decide(detector, 0)
    [op] = decide(detector, 1.5)
    assert op.tracked.root.display == "Deployment/db" and op.tracked.severity == "critical"


# --- Alertmanager --------------------------------------------------------------------------

def test_alertmanager_payloads_map_labels_and_refuse_other_shapes(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web"))
    payload = alertmanager.parse({"version": "4", "status": "firing", "receiver": "aisre", "groupKey": "{}:{}",
                                  "alerts": [
                                      {"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": "shop",
                                                                      "pod": "web-0", "severity": "critical"},
                                       "annotations": {"summary": "5xx above 5%"}, "startsAt": iso(T0), "fingerprint": "abc"},
                                      {"status": "firing", "labels": {"alertname": "NoTarget"}}]})
    signals, skipped = alertmanager.signals_from(payload, pipeline.index, at(0))
    assert len(signals) == 1 and len(skipped) == 1
    assert [o.display() for o in signals[0].owners] == ["ReplicaSet/web-7d9", "Deployment/web"]
    detector.alert(signals[0])
    decide(detector, 0)
    [op] = decide(detector, 1.5)
    assert op.tracked.root.display == "Deployment/web" and op.tracked.source == "alertmanager"
    resolved = signals[0].model_copy(update={"firing": False})
    detector.alert(resolved)
    decide(detector, 2)
    assert any(isinstance(o, Resolve) for o in decide(detector, 12.5))
    for bad in ({"version": "3", "status": "firing", "alerts": [{"status": "firing", "labels": {"a": "b"}}]},
                {"version": "4", "status": "firing", "alerts": []},
                {"version": "4", "status": "weird", "alerts": [{"status": "firing", "labels": {"a": "b"}}]}):
        with pytest.raises(ValidationError):
            alertmanager.parse(bad)


def test_thresholds_come_from_the_environment() -> None:
    th = Thresholds.from_env({"AISRE_DETECT_NOT_READY_GRACE": "45", "AISRE_DETECT_RESTARTS": "5"})
    assert th.not_ready_grace == 45.0 and th.restarts == 5 and th.pending_grace == Thresholds().pending_grace
    assert Thresholds.from_env(Thresholds.compressed().as_env()) == Thresholds.compressed()


def test_a_real_cold_start_outlasts_the_compressed_grace_but_not_the_real_time_one() -> None:
    """Real-kubelet scenarios run in real time: a pod that warms up for 13 s, killed once by
    its liveness probe on the way, is starting, not failing; a readiness probe that never
    passes is still found within seconds of the kubelet's report."""
    cold_start = pod("a", "catalog", ready=False, ready_since=T0, restarts=1, last_finished=at(10))
    assert [s.due() <= at(13) for s in pod_signals(cold_start, (), at(13), Thresholds.compressed())] == [True]
    assert [s.due() <= at(13) for s in pod_signals(cold_start, (), at(13), Thresholds.real_time())] == [False]
    assert Thresholds.real_time().not_ready_grace <= 20.0
    assert dataclasses.replace(Thresholds.real_time(), not_ready_grace=2.0) == Thresholds.compressed()


def test_a_node_that_recovered_no_longer_absorbs_what_happens_on_it(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Node", "MODIFIED", node("node-a", ready="False", since=at(-60)))
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", ready=False, ready_since=at(-300)))
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    assert opened.tracked.root.display == "Node/node-a"
    pipeline.handle("Node", "MODIFIED", node("node-a"))  # restored
    pipeline.handle("Pod", "MODIFIED", pod("web-0", "web"))
    decide(detector, 2)
    # Later (past the short linger), an unrelated crash loop of a pod on the same node is the app's own incident.
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 5)
    ops = decide(detector, 6.5)
    assert [o.tracked.root.display for o in ops if isinstance(o, Open)] == ["Deployment/db"]
    assert any(isinstance(o, Resolve) and o.tracked is opened.tracked for o in decide(detector, 13))


def test_a_node_status_that_flickers_does_not_split_the_incident(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Node", "MODIFIED", node("node-a", ready="False", since=at(-60)))
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", ready=False, ready_since=at(-300)))
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    pipeline.handle("Node", "MODIFIED", node("node-a"))  # one report says Ready...
    web = pod("web-0", "web", ready=False, ready_since=at(-300))
    web["spec"]["nodeName"] = "node-b"  # a client of db elsewhere
    pipeline.handle("Pod", "ADDED", web)
    ops = decide(detector, 2)
    pipeline.handle("Node", "MODIFIED", node("node-a", ready="False", since=at(-60)))  # ...the next does not
    ops += decide(detector, 3.5)
    assert not [o for o in ops if isinstance(o, Open)]
    assert "shop/Deployment/web" in opened.tracked.members


def test_an_incident_investigates_its_namespace_or_its_node_and_again_when_it_grows() -> None:
    from aisre.operator.incidents import investigation_for, joined

    incident = {"metadata": {"name": "deployment-db-1", "namespace": "shop", "uid": "u1"},
                "spec": {"title": "Deployment/db: CrashLoopBackOff", "resource": {"kind": "Deployment", "name": "db", "namespace": "shop"}}}
    first = investigation_for(incident)
    assert first["metadata"]["name"] == "deployment-db-1" and first["spec"]["target"] == {"selector": {}}
    assert first["spec"]["incidentRef"] == {"name": "deployment-db-1"}
    assert first["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert investigation_for(incident, 2)["metadata"]["name"] == "deployment-db-1-2"
    node_incident = {**incident, "spec": {"title": "t", "resource": {"kind": "Node", "name": "n1"}}}
    assert investigation_for(node_incident)["spec"]["target"] == {"kind": "Node", "name": "n1"}
    web = {"kind": "Deployment", "name": "web", "namespace": "shop"}
    api = {"kind": "Deployment", "name": "api", "namespace": "shop"}
    assert joined([web], [web, api]) == ["Deployment/api"] and joined([web, api], [web]) == [] and joined(None, [web])


def test_a_node_going_bad_later_does_not_swallow_an_apps_own_incident(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    [app] = decide(detector, 1.5)
    pipeline.handle("Node", "MODIFIED", node("node-a", ready="False", since=at(-60)))
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", ready=False, ready_since=at(-300)))
    decide(detector, 2)
    opened = [o.tracked for o in decide(detector, 3.5) if isinstance(o, Open)]
    assert [t.root.display for t in opened] == ["Node/node-a"]
    assert "shop/Deployment/db" in opened[0].members and "Node/node-a" not in {m.display() for m in app.tracked.members.values()}


async def test_an_incident_whose_write_fails_unexpectedly_opens_again_next_tick(monkeypatch) -> None:
    """A write that fails with something other than the server's answer must not leave the
    detector believing the Incident exists (it would only ever send updates)."""
    from aisre.operator.detection.service import DetectionService
    from aisre.operator.metrics import INCIDENTS

    failed_before = INCIDENTS.labels("write_failed")._value.get()
    service = DetectionService(TH, "aisre-system")
    service.pipeline.clock = Clock()
    service.client = object()  # type: ignore[assignment]  # store.create is replaced below
    written: list[str | None] = []

    async def create(client: Any, tracked: Any, now: dt.datetime, key: bytes, operator_namespace: str) -> None:
        written.append(tracked.name)
        if len(written) == 1:
            raise ValueError("a value the client could not send")

    monkeypatch.setattr(store, "create", create)
    service.pipeline.handle("Deployment", "ADDED", deployment("web"))
    service.pipeline.handle("ReplicaSet", "ADDED", replicaset("web"))
    service.pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    await service.tick(at(0.5))
    first = await service.tick(at(1.5))
    assert [type(op) for op in first] == [Open] and first[0].tracked.name is None  # back to a candidate
    assert INCIDENTS.labels("write_failed")._value.get() == failed_before + 1
    again = await service.tick(at(2.0))
    assert [type(op) for op in again] == [Open] and len(written) == 2 and again[0].tracked.name


def test_a_spec_change_is_remembered_per_namespace_but_a_first_sight_is_not(world) -> None:
    _, pipeline, clock = world
    assert not pipeline.changed_since("shop", at(-3600))  # listed at start: not a change
    clock.now = at(30)
    changed = deployment("web", env={"DB_HOST": "db"})
    changed["metadata"]["generation"] = 2
    pipeline.handle("Deployment", "MODIFIED", changed)
    assert pipeline.changed_since("shop", at(0)) and not pipeline.changed_since("shop", at(31))
    assert not pipeline.changed_since("other", at(0))
    pipeline.handle("Deployment", "MODIFIED", changed)  # a status update at the same generation
    assert pipeline.changed_at["shop"] == at(30)


def test_what_the_watches_report_keeps_the_log_sweep_from_opening_a_second_incident(world) -> None:
    from aisre.operator.detection.signals import make_signal

    detector, pipeline, _ = world
    target = {"metadata": {"name": "db", "namespace": "shop"}}
    from_logs = make_signal(SignalSource.LOGS, "DependencyFailure", target, "Deployment", at(0), message="peer refuses")
    detector.observe("logs/shop", [from_logs])
    assert not detector.reports_trouble_in("shop", "logs/shop")  # only the sweep's own signal
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    assert detector.reports_trouble_in("shop", "logs/shop") and not detector.reports_trouble_in("other", "logs/shop")


def test_the_log_sweep_looks_further_only_at_errors_that_last() -> None:
    from aisre.api.evidence import Finding
    from aisre.operator.detection.log_watch import lasting_errors

    def line(**data: Any) -> Finding:
        return Finding(id=f"l-{len(data)}-{data.get('signature')}", agent="logs", kind="LogSignature", summary="",
                       data={"owner": "Deployment/a", "previous": False, **data})

    refusal = line(signature="auth_failure", count=3, recent=1)  # names no host: a refusal all the same
    over = line(signature="connection_refused", host="db", count=9, recent=0)  # a burst that ended
    rate = Finding(id="t", agent="logs", kind="LogTemplates", summary="",
                   data={"owner": "Deployment/a", "previous": False, "error_lines": 12, "recent_error_lines": 3, "lines": 20})
    assert lasting_errors([refusal, over, rate]) == [refusal, rate]
    forbidden = line(signature="forbidden", count=3, recent=1)  # the API server refusing its ServiceAccount
    assert lasting_errors([forbidden, line(signature="forbidden", count=3, recent=0)]) == [forbidden]


KEY = b"k" * 32


def _written(world: Any) -> dict[str, Any]:
    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    t = opened.tracked
    meta = store._metadata(t, KEY)
    return {"metadata": {"name": t.name, "namespace": t.namespace, **meta}, "spec": store.spec_of(t)}


def test_only_incidents_detection_marked_are_adopted(world) -> None:
    written = _written(world)
    assert store.tracked_from(written, at(2), KEY, "aisre-system") is not None
    # Another key (a look-alike someone made, with the labels and annotations copied): ignored.
    assert store.tracked_from(written, at(2), b"x" * 32, "aisre-system") is None
    unmarked = {**written, "metadata": {**written["metadata"], "annotations": {
        k: v for k, v in written["metadata"]["annotations"].items() if k != "aisre.dev/mark"}}}
    assert store.tracked_from(unmarked, at(2), KEY, "aisre-system") is None


def test_a_root_in_another_namespace_is_never_adopted(world) -> None:
    written = _written(world)
    elsewhere = {**written, "metadata": {**written["metadata"], "namespace": "attacker"}}
    elsewhere["metadata"]["annotations"] = {**written["metadata"]["annotations"],
                                            "aisre.dev/mark": store.object_mark(KEY, "Incident", "attacker",
                                                                                written["metadata"]["name"],
                                                                                written["spec"]["fingerprint"])}
    # Even with a valid mark for its own name, an Incident whose root is in another namespace is not detection's.
    assert store.tracked_from(elsewhere, at(2), KEY, "aisre-system") is None


def test_zero_replicas_while_a_twin_serves_and_a_superseded_cron_run_raise_nothing(world) -> None:
    detector, pipeline, clock = world
    canary = deployment("api", replicas=2)
    primary = deployment("api-primary", replicas=2, labels={"app": "api-primary"})
    primary["status"] = {"availableReplicas": 2}
    pipeline.handle("Service", "ADDED", service("api-canary", {"app": "api"}))
    pipeline.handle("Deployment", "ADDED", canary)
    canary = deployment("api", replicas=0)
    canary["metadata"]["generation"] = 2
    pipeline.handle("Deployment", "MODIFIED", canary)
    assert [s.reason for s in detector.due_signals(at(0))] == ["ScaledToZero"]  # alone, it is down
    pipeline.handle("Deployment", "ADDED", primary)  # seen later: asked again at each decision
    assert detector.due_signals(at(0)) == []

    def run(name: str, condition: str, when: float) -> dict[str, Any]:
        return {"kind": "Job", "metadata": {"name": name, "namespace": "shop", "uid": f"j-{name}",
                                            "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": iso(at(when))}},
                "status": {"conditions": [{"type": condition, "status": "True", "lastTransitionTime": iso(at(when))}]}}

    pipeline.handle("Job", "ADDED", run("sync-29943100", "Failed", 60))
    assert detector.due_signals(at(61)) == []  # a failed run waits for the next one
    assert [s.reason for s in detector.due_signals(at(60 + TH.rerun_grace))] == ["JobFailed"]  # none came: it counts
    pipeline.handle("Job", "ADDED", run("sync-29943110", "Complete", 120))
    assert detector.due_signals(at(61 + TH.rerun_grace)) == []
    # A Job that is no CronJob's run counts at once.
    pipeline.handle("Job", "ADDED", {"kind": "Job", "metadata": {"name": "migrate", "namespace": "shop", "uid": "j-m"},
                                     "status": {"conditions": [{"type": "Failed", "status": "True",
                                                                "lastTransitionTime": iso(at(200))}]}})
    assert [s.object.name for s in detector.due_signals(at(200))] == ["migrate"]


def test_logs_about_a_cron_run_wait_for_the_run_to_end_and_for_the_next_run(world) -> None:
    detector, pipeline, _ = world

    def run(name: str, conditions: list[tuple[str, float]]) -> dict[str, Any]:
        return {"kind": "Job", "metadata": {"name": name, "namespace": "shop", "uid": f"j-{name}",
                                            "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": iso(T0)}},
                "status": {"conditions": [{"type": c, "status": "True", "lastTransitionTime": iso(at(when))}
                                          for c, when in conditions]}}

    def logs_say(when: float) -> None:
        # The log sweep names the run itself; its Job may not show Failed yet.
        target = {"metadata": {"name": "sync-29943100", "namespace": "shop"}}
        detector.observe("logs/shop", [make_signal(SignalSource.LOGS, "ApplicationError", target, "Job", at(when))])

    pipeline.handle("Job", "ADDED", run("sync-29943100", []))
    logs_say(5)
    assert detector.due_signals(at(5 + TH.rerun_grace / 2)) == []  # the run is not over: not judged yet
    pipeline.handle("Job", "MODIFIED", run("sync-29943100", [("Failed", 10)]))
    logs_say(12)
    assert detector.due_signals(at(12)) == []  # failed: it waits for the next run
    assert {s.reason for s in detector.due_signals(at(10 + TH.rerun_grace))} == {"ApplicationError", "JobFailed"}
    pipeline.handle("Job", "ADDED", run("sync-29943110", [("Complete", 30)]))
    assert detector.due_signals(at(10 + TH.rerun_grace)) == []  # the next run completed: history
    # A Job that is nobody's run is judged on its logs at once.
    target = {"metadata": {"name": "migrate", "namespace": "shop"}}
    detector.observe("logs/shop", [make_signal(SignalSource.LOGS, "ApplicationError", target, "Job", at(40))])
    assert [s.object.name for s in detector.due_signals(at(40))] == ["migrate"]


def test_a_service_a_client_names_that_selects_no_pod_is_trouble_and_a_leftover_is_not(world) -> None:
    detector, pipeline, clock = world
    later = at(TH.not_ready_grace + 1)
    pipeline.handle("Service", "ADDED", service("payments", {"app": "payments"}))  # created before its Deployment
    pipeline.handle("Deployment", "ADDED", deployment("payments"))
    pipeline.handle("Deployment", "ADDED", deployment("checkout", env={"PAYMENTS_URL": "http://payments:8080"}))
    pipeline.handle("Service", "ADDED", service("payments-canary", {"app": "payments", "track": "canary"}))
    assert detector.due_signals(later) == []  # one serves, the other is a leftover nobody calls
    assert not detector.reports_trouble_in("shop", "logs/shop")  # nor does it keep the log sweep quiet
    # A change to the Service (a label its pods lack) leaves the named one routing nowhere.
    pipeline.handle("Service", "MODIFIED", service("payments", {"app": "payments", "owner": "netops"}))
    assert detector.due_signals(at(0)) == []  # within its grace
    [signal] = detector.due_signals(later)
    assert (signal.reason, signal.object.display()) == ("SelectsNoPods", "Service/payments")
    # A pod the operator of some custom resource made carries the label: it routes there.
    bare = pod("payments-x", "payments")
    bare["metadata"]["ownerReferences"] = []
    bare["metadata"]["labels"] = {"app": "payments", "owner": "netops"}
    pipeline.handle("Pod", "ADDED", bare)
    assert detector.due_signals(later) == []


def test_a_worker_idle_at_zero_since_before_we_watched_raises_nothing_unless_a_client_names_it(world) -> None:
    detector, pipeline, _ = world
    pipeline.handle("Service", "ADDED", service("w9-metrics", {"app": "w9"}))
    pipeline.handle("Deployment", "ADDED", deployment("w9", replicas=0))
    assert detector.due_signals(at(0)) == []  # its autoscaler left it at zero; nobody uses the Service
    pipeline.handle("Deployment", "ADDED", deployment("a1", env={"W9_URL": "http://w9-metrics:9102"}))
    assert [s.reason for s in detector.due_signals(at(0))] == ["ScaledToZero"]  # a client names it: it hurts


def test_a_member_seen_before_its_controller_becomes_that_controller(world) -> None:
    detector, pipeline, clock = world
    clock.now = at(1)
    event = {"type": "Warning", "reason": "FailedCreate", "lastTimestamp": iso(T0), "count": 3,
             "metadata": {"name": "ev1", "namespace": "shop", "uid": "ev1"},
             "involvedObject": {"kind": "ReplicaSet", "name": "api-7d9", "namespace": "shop", "uid": "rs-api"},
             "message": 'pods "api-x" is forbidden: exceeded quota: compute, requested: cpu=2'}
    pipeline.handle("Event", "ADDED", event)  # the quota's refusal arrives before the ReplicaSet is known
    [opened] = [o for o in decide(detector, 1) + decide(detector, 3) if isinstance(o, Open)]
    assert [m.display() for m in opened.tracked.members.values()] == ["ReplicaSet/api-7d9"]
    pipeline.handle("Deployment", "ADDED", deployment("api"))
    pipeline.handle("ReplicaSet", "ADDED", replicaset("api"))
    decide(detector, 3.5)
    assert [m.display() for m in opened.tracked.members.values()] == ["Deployment/api"]


def test_an_incident_someone_deleted_mutes_nothing(world) -> None:
    """A 404 about the Incident itself (a person deleted it) stops tracking it; only a
    namespace that is going away is left alone a while."""
    import httpx

    from aisre.operator.detection.service import incident_itself_gone

    def answer(details_kind: str) -> httpx.Response:
        return httpx.Response(404, json={"kind": "Status", "reason": "NotFound", "code": 404,
                                         "details": {"name": "x", "group": "aisre.dev", "kind": details_kind}})

    assert incident_itself_gone(404, answer("incidents"))
    assert not incident_itself_gone(404, answer("namespaces"))
    assert not incident_itself_gone(403, answer("incidents"))
    assert not incident_itself_gone(404, httpx.Response(404, text="not json"))

    detector, pipeline, _ = world
    pipeline.handle("Pod", "ADDED", pod("web-0", "web", waiting="CrashLoopBackOff", restarts=5))
    decide(detector, 0)
    [opened] = decide(detector, 1.5)
    detector.drop(opened.tracked, at(2), namespace_gone=False)
    pipeline.handle("Pod", "ADDED", pod("db-0", "db", waiting="CrashLoopBackOff", restarts=5))
    ops = decide(detector, 3) + decide(detector, 5)
    assert any(isinstance(op, Open) for op in ops)


def test_a_metric_signal_counts_only_once_a_second_sweep_raises_it_again() -> None:
    from aisre.operator.detection.metric_watch import Verdict, held

    detector = Detector(TH, "aisre-system", write_interval=0.0)
    target = {"metadata": {"name": "menu", "namespace": "shop"}}
    first_seen: dict[str, Any] = {}

    def sweep(seconds: float, reason: str | None, answered: bool = True) -> list[Any]:
        signal = make_signal(SignalSource.METRICS, reason, target, "Deployment", at(seconds)) if reason else None
        [verdict] = held([Verdict("shop", signal, answered)], first_seen)
        if verdict.answered:
            detector.observe("metrics/shop", [verdict.signal] if verdict.signal else [])
        return [op for t in (seconds, seconds + 0.5, seconds + 1.5) for op in decide(detector, t)]

    # One look that saw a leak and one that did not: a glimpse, no Incident.
    assert sweep(0, "MemoryLeak") == [] and sweep(2.1, None) == [] and sweep(30, None) == []
    # A different cause on the next look starts its own clock.
    assert sweep(40, "MemoryLeak") == [] and sweep(42.1, "CPUSaturation") == []
    # An unanswered sweep (Prometheus down) neither confirms nor forgets the signal.
    assert sweep(44.2, "CPUSaturation", answered=False) == []
    opened = sweep(46.3, "CPUSaturation")
    assert [type(op) for op in opened] == [Open] and opened[0].tracked.root.name == "menu"
    # Confirmed, it counts from the first look.
    again = make_signal(SignalSource.METRICS, "CPUSaturation", target, "Deployment", at(48.4))
    [verdict] = held([Verdict("shop", again, True)], first_seen)
    assert verdict.signal is not None and verdict.signal.since == at(42.1)
