"""Runtime state -> pod status, as a v1.34 kubelet reports it (pure function)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aisre.bench.pod_status import (
    SimulationError,
    back_off_message,
    back_off_seconds,
    go_duration,
    shows,
    simulated_status,
)
from aisre.bench.scenario import RuntimeStep

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=30)


def _pod(containers=("web",), inits=(), restart_policy="Always", status=None, sidecars=()) -> dict[str, Any]:
    init_specs = [{"name": n, "image": f"registry.local/{n}:1"} for n in inits]
    init_specs += [{"name": n, "image": f"registry.local/{n}:1", "restartPolicy": "Always"} for n in sidecars]
    return {
        "metadata": {"name": "web-1", "namespace": "ns", "uid": "uid-1", "generation": 1},
        "spec": {
            "nodeName": "kwok-node-0",
            "restartPolicy": restart_policy,
            "containers": [
                {"name": n, "image": f"registry.local/{n}:2", "command": ["/usr/bin/app", "--serve"],
                 "envFrom": [{"configMapRef": {"name": f"{n}-config"}}]}
                for n in containers
            ],
            "initContainers": init_specs,
        },
        "status": status or {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T11:59:00Z"}],
        },
    }


def _step(**kwargs: Any) -> RuntimeStep:
    return RuntimeStep.model_validate({"selector": {"app": "web"}, **kwargs})


def _status(pod, *steps, since=T0) -> dict[str, Any]:
    return simulated_status(pod, list(steps), T1, since=since, pod_ip="10.0.9.9")


def _cs(status, name="web") -> dict[str, Any]:
    return next(c for c in [*status["containerStatuses"], *status.get("initContainerStatuses", [])] if c["name"] == name)


def _cond(status, type_) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_healthy_pod_is_running_and_ready_with_its_ip_and_scheduling_kept() -> None:
    s = _status(_pod())
    assert s["phase"] == "Running"
    web = _cs(s)
    assert web["ready"] and web["started"] and web["state"]["running"]["startedAt"] == "2026-01-01T12:00:30Z"
    assert web["containerID"].startswith("containerd://") and web["imageID"].startswith("registry.local/web@sha256:")
    assert [c["type"] for c in s["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in s["conditions"])
    assert _cond(s, "PodScheduled")["lastTransitionTime"] == "2026-01-01T11:59:00Z"
    assert s["podIP"] == "10.0.9.9" and s["podIPs"] == [{"ip": "10.0.9.9"}]
    assert s["observedGeneration"] == 1 and s["startTime"] == "2026-01-01T12:00:00Z"


def test_crash_loop_back_off() -> None:
    s = _status(_pod(), _step(state="CrashLoopBackOff", exitCode=2, restarts=6, message="panic: boom"))
    web = _cs(s)
    assert web["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container=web pod=web-1_ns(uid-1)",
    }
    term = web["lastState"]["terminated"]
    assert term["exitCode"] == 2 and term["reason"] == "Error" and term["message"] == "panic: boom"
    assert term["finishedAt"] == "2026-01-01T12:00:30Z" and term["startedAt"] == "2026-01-01T12:00:00Z"
    assert web["restartCount"] == 6 and web["ready"] is False and web["started"] is False
    assert s["phase"] == "Running"  # the kubelet keeps restarting it
    ready = _cond(s, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [web]"
    assert _cond(s, "ContainersReady")["status"] == "False"
    assert _cond(s, "Initialized")["status"] == "True"


def test_crash_loop_defaults_and_the_back_off_schedule() -> None:
    web = _cs(_status(_pod(), _step(state="CrashLoopBackOff")))
    assert web["restartCount"] == 5 and web["lastState"]["terminated"]["exitCode"] == 1
    assert "back-off 5m0s" in web["state"]["waiting"]["message"]
    assert [go_duration(back_off_seconds(r)) for r in range(7)] == ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"]
    assert back_off_message(_pod(), "web", 3) == "back-off 1m20s restarting failed container=web pod=web-1_ns(uid-1)"


def test_oom_killed() -> None:
    web = _cs(_status(_pod(), _step(state="OOMKilled", restarts=2)))
    assert web["lastState"]["terminated"]["reason"] == "OOMKilled" and web["lastState"]["terminated"]["exitCode"] == 137
    assert web["state"]["waiting"]["reason"] == "CrashLoopBackOff" and web["restartCount"] == 2


def test_error_terminated_depends_on_the_restart_policy() -> None:
    always = _status(_pod(), _step(state="Error", exitCode=3))
    assert _cs(always)["state"]["terminated"]["exitCode"] == 3 and _cs(always)["state"]["terminated"]["reason"] == "Error"
    assert always["phase"] == "Running"
    never = _status(_pod(restart_policy="Never"), _step(state="Error", exitCode=3))
    assert never["phase"] == "Failed"
    assert _cond(never, "Ready")["reason"] == "PodFailed" and _cond(never, "ContainersReady")["reason"] == "PodFailed"
    assert _cond(never, "PodReadyToStartContainers")["status"] == "False"
    ok = _status(_pod(restart_policy="Never"), _step(state="Error", exitCode=0, reason="Completed"))
    assert ok["phase"] == "Succeeded"


@pytest.mark.parametrize("state", ["ImagePullBackOff", "ErrImagePull"])
def test_image_pull_failures_never_start_and_keep_the_pod_pending(state: str) -> None:
    s = _status(_pod(), _step(state=state, restarts=4))
    web = _cs(s)
    assert web["state"]["waiting"]["reason"] == state
    assert "registry.local/web:2" in web["state"]["waiting"]["message"]
    assert web["restartCount"] == 0 and web["imageID"] == "" and "containerID" not in web and web["lastState"] == {}
    assert s["phase"] == "Pending"
    assert _cond(s, "Initialized")["status"] == "True" and _cond(s, "PodReadyToStartContainers")["status"] == "True"


def test_image_pull_back_off_names_the_error_it_backs_off_from_as_the_real_kubelet_does() -> None:
    waiting = _cs(_status(_pod(), _step(state="ImagePullBackOff")))["state"]["waiting"]
    assert waiting["message"].startswith('Back-off pulling image "registry.local/web:2": ErrImagePull: rpc error: ')
    assert waiting["message"].endswith("registry.local/web:2: not found")


def test_reason_and_message_override_the_kubelets() -> None:
    web = _cs(_status(_pod(), _step(state="ImagePullBackOff", reason="InvalidImageName", message="bad ref")))
    assert web["state"]["waiting"] == {"reason": "InvalidImageName", "message": "bad ref"}


def test_create_container_config_error_names_the_missing_object() -> None:
    s = _status(_pod(), _step(state="CreateContainerConfigError"))
    assert _cs(s)["state"]["waiting"] == {"reason": "CreateContainerConfigError", "message": 'configmap "web-config" not found'}
    assert s["phase"] == "Pending"


def test_run_container_error_is_a_start_error() -> None:
    s = _status(_pod(), _step(state="RunContainerError"))
    web = _cs(s)
    assert web["state"]["waiting"]["reason"] == "RunContainerError"
    assert 'exec: "/usr/bin/app": executable file not found in $PATH' in web["state"]["waiting"]["message"]
    term = web["lastState"]["terminated"]
    assert term["reason"] == "StartError" and term["exitCode"] == 128 and term["startedAt"] == "1970-01-01T00:00:00Z"
    assert web["restartCount"] == 1 and s["phase"] == "Running"


def test_not_ready_and_running_with_restarts() -> None:
    s = _status(_pod(), _step(state="NotReady"))
    assert _cs(s)["state"]["running"] and not _cs(s)["ready"] and _cs(s)["started"]
    assert s["phase"] == "Running" and _cond(s, "Ready")["status"] == "False"
    r = _cs(_status(_pod(), _step(state="Running", restarts=4, exitCode=137)))
    assert r["ready"] and r["restartCount"] == 4 and r["lastState"]["terminated"]["exitCode"] == 137


def test_container_scopes_the_state_and_later_steps_win() -> None:
    pod = _pod(containers=("web", "proxy"))
    s = _status(pod, _step(state="CrashLoopBackOff", container="proxy"))
    assert _cs(s, "proxy")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert _cs(s, "web")["ready"] is True
    assert _cond(s, "Ready")["message"] == "containers with unready status: [proxy]"
    both = _status(pod, _step(state="CrashLoopBackOff"), _step(state="Running", container="web"))
    assert _cs(both, "web")["ready"] and _cs(both, "proxy")["state"]["waiting"]
    with pytest.raises(SimulationError, match="'db' is not in pod"):
        _status(pod, _step(state="NotReady", container="db"))


def test_init_running_holds_the_main_containers() -> None:
    pod = _pod(inits=("migrate", "warm"))
    s = _status(pod, _step(state="InitRunning", container="warm"))
    assert _cs(s, "migrate")["state"]["terminated"]["reason"] == "Completed" and _cs(s, "migrate")["ready"]
    assert _cs(s, "warm")["state"]["running"] and not _cs(s, "warm")["ready"]
    assert _cs(s, "web")["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert s["phase"] == "Pending"
    init = _cond(s, "Initialized")
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [warm]"


def test_init_error_backs_off_or_fails_the_pod() -> None:
    pod = _pod(inits=("migrate",))
    s = _status(pod, _step(state="InitError", exitCode=2, restarts=3))
    m = _cs(s, "migrate")
    assert m["state"]["waiting"]["reason"] == "CrashLoopBackOff" and m["lastState"]["terminated"]["exitCode"] == 2
    assert s["phase"] == "Pending" and _cs(s, "web")["state"]["waiting"]["reason"] == "PodInitializing"
    first = _status(pod, _step(state="InitError", restarts=0))
    assert _cs(first, "migrate")["state"]["terminated"]["exitCode"] == 1
    never = _status(_pod(inits=("migrate",), restart_policy="Never"), _step(state="InitError", restarts=0))
    assert never["phase"] == "Failed"
    with pytest.raises(SimulationError, match="no init containers"):
        _status(_pod(), _step(state="InitRunning"))


def test_sidecars_count_as_regular_containers_for_readiness() -> None:
    s = _status(_pod(sidecars=("envoy",)), _step(state="NotReady", container="envoy"))
    assert _cs(s, "envoy")["state"]["running"] and not _cs(s, "envoy")["ready"]
    assert _cond(s, "ContainersReady")["message"] == "containers with unready status: [envoy]"


def test_evicted() -> None:
    s = _status(_pod(), _step(state="Evicted"))
    assert s["phase"] == "Failed" and s["reason"] == "Evicted"
    assert s["message"].startswith("The node was low on resource: memory.")
    assert _cs(s)["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert _cond(s, "DisruptionTarget")["reason"] == "TerminationByKubelet"
    assert _cond(s, "Ready")["reason"] == "PodFailed"
    custom = _status(_pod(), _step(state="Evicted", message="The node was low on resource: ephemeral-storage. "))
    assert custom["message"] == "The node was low on resource: ephemeral-storage. "


def test_transition_times_move_only_when_a_condition_flips() -> None:
    running = _status(_pod())
    pod = _pod(status=running)
    crashing = simulated_status(pod, [_step(state="CrashLoopBackOff")], T1 + dt.timedelta(minutes=1))
    assert _cond(crashing, "Ready")["lastTransitionTime"] == "2026-01-01T12:01:30Z"
    assert _cond(crashing, "Initialized")["lastTransitionTime"] == _cond(running, "Initialized")["lastTransitionTime"]
    assert "podIP" not in crashing  # it has one already


def test_shows_compares_states_not_timestamps_or_conditions() -> None:
    desired = _status(_pod(), _step(state="CrashLoopBackOff"))
    pod = _pod(status={**desired, "conditions": [{"type": "Ready", "status": "False"}]})
    assert shows(pod, desired)
    reset = _status(_pod())  # what KWOK's pod-ready stage would have written
    assert not shows(_pod(status=reset), desired)
