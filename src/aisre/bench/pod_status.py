"""What a real kubelet would write into a pod's status for a simulated runtime state.

Pure functions, no I/O: given the pod as the API server returns it, the runtime steps that
apply to it (in scenario order), and the time, return the status to write. The phase and
the Initialized / Ready / ContainersReady conditions are derived exactly as the kubelet
(v1.34, ``getPhase`` and ``pkg/kubelet/status/generate.go``) derives them from the container
statuses, so a simulated pod shows the same combination of fields a real one would.

Per container, the last step that names it (or names no container) wins; ``InitRunning`` /
``InitError`` act on an init container and hold the main containers in PodInitializing;
``Evicted`` acts on the whole pod.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aisre.bench.scenario import INIT_STATES, RuntimeState, RuntimeStep

# Defaults for what a step leaves out (docs/scenarios.md lists them).
CRASH_RESTARTS = 5  # restartCount of a crash loop: 5 restarts = the 5m0s back-off cap
INITIAL_BACK_OFF_S = 10  # kubelet: 10 s, doubled per restart ...
MAX_BACK_OFF_S = 300  # ... up to 5 minutes
START_ERROR_EXIT = 128
OOM_EXIT = 137
EVICTED_MESSAGE = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 92Mi. "
UNKNOWN_CONTAINER_MESSAGE = "The container could not be located when the pod was terminated"
NEVER_STARTED = "1970-01-01T00:00:00Z"  # what the kubelet reports as startedAt of a StartError


class SimulationError(ValueError):
    """A runtime step does not fit the pod (e.g. it names a container the pod lacks)."""


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: int) -> str:
    """Go's time.Duration formatting for whole seconds: 10s, 1m20s, 5m0s."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def back_off_seconds(restarts: int) -> int:
    """The kubelet's crash-loop back-off after ``restarts`` restarts (10 s doubling, 5 m cap)."""
    return min(INITIAL_BACK_OFF_S * 2 ** min(restarts, 16), MAX_BACK_OFF_S)


def pod_ref(pod: Mapping[str, Any]) -> str:
    """The kubelet's pod description in messages: name_namespace(uid)."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def back_off_message(pod: Mapping[str, Any], container: str, restarts: int) -> str:
    return (
        f"back-off {go_duration(back_off_seconds(restarts))} restarting failed "
        f"container={container} pod={pod_ref(pod)}"
    )


def _is_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


@dataclass
class Plan:
    """Which step decides each container: ``main`` covers the regular containers and the
    restartable init (sidecar) containers; ``init_block`` is the regular init container
    that has not completed (index into initContainers) and its step."""

    main: dict[str, RuntimeStep | None] = field(default_factory=dict)
    init_block: tuple[int, RuntimeStep] | None = None
    evicted: RuntimeStep | None = None

    def step_for(self, pod: Mapping[str, Any], container: str) -> RuntimeStep | None:
        """The step that decides what ``container`` shows (its logs follow the same step)."""
        if self.evicted is not None:
            return self.evicted
        if container in self.main:
            return self.main[container]
        inits = pod["spec"].get("initContainers") or []
        if self.init_block and inits[self.init_block[0]]["name"] == container:
            return self.init_block[1]
        return None


def plan(pod: Mapping[str, Any], steps: Sequence[RuntimeStep]) -> Plan:
    spec = pod["spec"]
    inits = spec.get("initContainers") or []
    result = Plan(main={c["name"]: None for c in [*spec.get("containers", []), *filter(_is_sidecar, inits)]})
    regular_inits = [i for i, c in enumerate(inits) if not _is_sidecar(c)]
    for step in steps:
        if step.state == RuntimeState.EVICTED:
            result.evicted = step
        elif step.state in INIT_STATES:
            if step.container is None:
                if not regular_inits:
                    raise SimulationError(f"{step.state.value}: pod {pod['metadata']['name']} has no init containers")
                index = regular_inits[0]
            else:
                names = [inits[i]["name"] for i in regular_inits]
                if step.container not in names:
                    raise SimulationError(
                        f"{step.state.value}: {step.container!r} is not an init container of pod "
                        f"{pod['metadata']['name']} (init containers: {names})"
                    )
                index = regular_inits[names.index(step.container)]
            result.init_block = (index, step)
        else:
            targets = [step.container] if step.container else list(result.main)
            for name in targets:
                if name not in result.main:
                    raise SimulationError(
                        f"{step.state.value}: container {name!r} is not in pod {pod['metadata']['name']} "
                        f"(containers: {list(result.main)})"
                    )
                result.main[name] = step
            # A later step about the main containers means initialisation is over.
            result.init_block = None
    return result


def _hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _container_id(pod: Mapping[str, Any], name: str, restarts: int) -> str:
    return "containerd://" + _hash(pod["metadata"].get("uid", ""), name, str(restarts))


def _image_id(image: str) -> str:
    if "@sha256:" in image:
        return image
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}@sha256:{_hash(image)}"


def _referenced_config(container: Mapping[str, Any]) -> str | None:
    """The first ConfigMap/Secret a container's environment refers to, as the kubelet names
    it in CreateContainerConfigError (``configmap "x" not found``)."""
    for source in container.get("envFrom") or []:
        for key, word in (("configMapRef", "configmap"), ("secretRef", "secret")):
            if source.get(key, {}).get("name"):
                return f'{word} "{source[key]["name"]}" not found'
    for env in container.get("env") or []:
        ref = env.get("valueFrom") or {}
        for key, word in (("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")):
            if ref.get(key, {}).get("name"):
                return f'{word} "{ref[key]["name"]}" not found'
    return None


def _default_message(state: RuntimeState, container: Mapping[str, Any]) -> str:
    image = container.get("image", "")
    not_found = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": {image}: not found'
    )
    if state == RuntimeState.IMAGE_PULL_BACK_OFF:
        # the kubelet (1.34, checked on the real node) appends the pull error it backs off from
        return f'Back-off pulling image "{image}": ErrImagePull: {not_found}'
    if state == RuntimeState.ERR_IMAGE_PULL:
        return not_found
    if state == RuntimeState.CREATE_CONTAINER_CONFIG_ERROR:
        return _referenced_config(container) or "couldn't find key or object referenced by the container"
    if state == RuntimeState.RUN_CONTAINER_ERROR:
        argv = container.get("command") or container.get("args") or ["/app"]
        return (
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
            "runc create failed: unable to start container process: error during container init: "
            f'exec: "{argv[0]}": executable file not found in $PATH: unknown'
        )
    return ""


@dataclass(frozen=True)
class _Clock:
    now: str  # the moment the kubelet reports
    since: str  # when the fault began for this pod (its creation, for new pods)


def _base(container: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {},
        "lastState": {},
    }


def _terminated(exit_code: int, reason: str, message: str | None, started: str, finished: str, cid: str) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": finished, "containerID": cid}
    if message:
        out["message"] = message
    return out


def _running(pod: Mapping[str, Any], c: Mapping[str, Any], step: RuntimeStep | None, old: Mapping[str, Any], clock: _Clock, ready: bool) -> dict[str, Any]:
    restarts = step.restarts if step and step.restarts is not None else int(old.get("restartCount", 0) or 0)
    status = _base(c)
    # A container that kept running keeps its start time.
    kept = old.get("state", {}).get("running", {}).get("startedAt") if old.get("restartCount", 0) == restarts else None
    cid = _container_id(pod, c["name"], restarts)
    status.update(
        imageID=_image_id(status["image"]),
        containerID=cid,
        ready=ready,
        started=True,
        restartCount=restarts,
        state={"running": {"startedAt": kept or clock.now}},
    )
    if restarts and step is not None:
        status["lastState"] = {
            "terminated": _terminated(
                step.exit_code if step.exit_code is not None else 1,
                step.reason or "Error",
                step.message,
                clock.since,
                clock.now,
                _container_id(pod, c["name"], restarts - 1),
            )
        }
    elif old.get("lastState"):
        status["lastState"] = old["lastState"]
    return status


def _crash_looping(pod: Mapping[str, Any], c: Mapping[str, Any], step: RuntimeStep, clock: _Clock, *, exit_code: int, reason: str) -> dict[str, Any]:
    restarts = step.restarts if step.restarts is not None else CRASH_RESTARTS
    cid = _container_id(pod, c["name"], restarts)
    status = _base(c)
    status.update(imageID=_image_id(status["image"]), containerID=cid, restartCount=restarts)
    status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": back_off_message(pod, c["name"], restarts)}}
    code = step.exit_code if step.exit_code is not None else exit_code
    status["lastState"] = {"terminated": _terminated(code, step.reason or reason, step.message, clock.since, clock.now, cid)}
    return status


def container_status(pod: Mapping[str, Any], c: Mapping[str, Any], step: RuntimeStep | None, old: Mapping[str, Any], clock: _Clock) -> dict[str, Any]:
    """The status of one regular (or sidecar) container under ``step`` (None: healthy)."""
    state = step.state if step else RuntimeState.RUNNING
    if state in (RuntimeState.RUNNING, RuntimeState.NOT_READY):
        return _running(pod, c, step, old, clock, ready=state == RuntimeState.RUNNING)
    assert step is not None
    if state == RuntimeState.CRASH_LOOP_BACK_OFF:
        return _crash_looping(pod, c, step, clock, exit_code=1, reason="Error")
    if state == RuntimeState.OOM_KILLED:
        return _crash_looping(pod, c, step, clock, exit_code=OOM_EXIT, reason="OOMKilled")
    status = _base(c)
    if state == RuntimeState.ERROR:
        restarts = step.restarts or 0
        cid = _container_id(pod, c["name"], restarts)
        code = step.exit_code if step.exit_code is not None else 1
        status.update(imageID=_image_id(status["image"]), containerID=cid, restartCount=restarts)
        status["state"] = {"terminated": _terminated(code, step.reason or "Error", step.message, clock.since, clock.now, cid)}
        return status
    message = step.message or _default_message(state, c)
    if state in (RuntimeState.IMAGE_PULL_BACK_OFF, RuntimeState.ERR_IMAGE_PULL):
        # Never pulled, never started: no image or container id, no restarts.
        status["state"] = {"waiting": {"reason": step.reason or state.value, "message": message}}
        return status
    if state == RuntimeState.CREATE_CONTAINER_CONFIG_ERROR:
        status.update(imageID=_image_id(status["image"]), restartCount=step.restarts or 0)
        status["state"] = {"waiting": {"reason": step.reason or state.value, "message": message}}
        return status
    if state == RuntimeState.RUN_CONTAINER_ERROR:
        restarts = step.restarts if step.restarts is not None else 1
        cid = _container_id(pod, c["name"], restarts)
        code = step.exit_code if step.exit_code is not None else START_ERROR_EXIT
        status.update(imageID=_image_id(status["image"]), containerID=cid, restartCount=restarts)
        status["state"] = {"waiting": {"reason": step.reason or state.value, "message": message}}
        status["lastState"] = {"terminated": _terminated(code, "StartError", message, NEVER_STARTED, clock.now, cid)}
        return status
    raise SimulationError(f"state {state.value} does not apply to a container")  # pragma: no cover


def _init_statuses(pod: Mapping[str, Any], p: Plan, old_by_name: Mapping[str, Mapping[str, Any]], clock: _Clock) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    inits = pod["spec"].get("initContainers") or []
    block_index = p.init_block[0] if p.init_block else len(inits)
    for index, c in enumerate(inits):
        old = old_by_name.get(c["name"], {})
        if _is_sidecar(c):
            if index < block_index:
                out.append(container_status(pod, c, p.main.get(c["name"]), old, clock))
            else:
                out.append({**_base(c), "state": {"waiting": {"reason": "PodInitializing"}}})
            continue
        status = _base(c)
        if index < block_index:
            cid = _container_id(pod, c["name"], 0)
            status.update(imageID=_image_id(status["image"]), containerID=cid, ready=True)
            status["state"] = {"terminated": _terminated(0, "Completed", None, clock.since, clock.since, cid)}
        elif index == block_index and p.init_block:
            step = p.init_block[1]
            if step.state == RuntimeState.INIT_RUNNING:
                cid = _container_id(pod, c["name"], step.restarts or 0)
                status.update(imageID=_image_id(status["image"]), containerID=cid, started=True, restartCount=step.restarts or 0)
                status["state"] = {"running": {"startedAt": clock.now}}
            else:
                restarts = step.restarts if step.restarts is not None else CRASH_RESTARTS
                code = step.exit_code if step.exit_code is not None else 1
                cid = _container_id(pod, c["name"], restarts)
                status.update(imageID=_image_id(status["image"]), containerID=cid, restartCount=restarts)
                term = _terminated(code, step.reason or "Error", step.message, clock.since, clock.now, cid)
                if restarts:  # the kubelet is backing off before the next attempt: Init:CrashLoopBackOff
                    status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": back_off_message(pod, c["name"], restarts)}}
                    status["lastState"] = {"terminated": term}
                else:  # the first failure: Init:Error
                    status["state"] = {"terminated": term}
        else:
            status["state"] = {"waiting": {"reason": "PodInitializing"}}
        out.append(status)
    return out


def _evicted(pod: Mapping[str, Any], statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in statuses:
        s = dict(s, ready=False, started=False)
        if "running" in s["state"] or "waiting" in s["state"]:
            s["state"] = {"terminated": {"exitCode": OOM_EXIT, "reason": "ContainerStatusUnknown", "message": UNKNOWN_CONTAINER_MESSAGE}}
        out.append(s)
    return out


def pod_phase(pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], init_statuses: Sequence[Mapping[str, Any]]) -> str:
    """The kubelet's getPhase (v1.34, ContainerRestartRules off, pod not terminal)."""
    spec = pod["spec"]
    by_name = {s["name"]: s for s in [*statuses, *init_statuses]}
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        s = by_name.get(c["name"])
        if _is_sidecar(c):
            if s is None:
                unknown += 1
            elif "running" in s["state"]:
                running += 1
            elif "waiting" in s["state"] and not s["lastState"].get("terminated"):
                pending_init += 1
                waiting += 1
            continue
        if s is None or "running" in s["state"] or not s["state"]:
            pending_init += 1
        elif "terminated" in s["state"]:
            failed_init += s["state"]["terminated"]["exitCode"] != 0
        elif s["lastState"].get("terminated"):
            failed_init += s["lastState"]["terminated"]["exitCode"] != 0
        else:
            pending_init += 1
    for c in spec.get("containers", []):
        s = by_name.get(c["name"])
        if s is None or not s["state"]:
            unknown += 1
        elif "running" in s["state"]:
            running += 1
        elif "terminated" in s["state"]:
            stopped += 1
            succeeded += s["state"]["terminated"]["exitCode"] == 0
        elif s["lastState"].get("terminated"):
            stopped += 1
        else:
            waiting += 1
    policy = spec.get("restartPolicy", "Always")
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _started(s: Mapping[str, Any]) -> bool:
    return "running" in s["state"] or "terminated" in s["state"] or bool(s["lastState"].get("terminated"))


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"  # fmt's %s of a []string


def kubelet_conditions(pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], init_statuses: Sequence[Mapping[str, Any]], phase: str) -> list[dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, Ready and ContainersReady, as generate.go
    computes them (readiness gates: unmet unless an existing condition says True)."""
    spec = pod["spec"]
    old = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    by_name = {s["name"]: s for s in [*statuses, *init_statuses]}

    if any(_started(s) for s in statuses):
        initialized: dict[str, Any] = {"status": "True"}
    else:
        incomplete = [
            c["name"]
            for c in spec.get("initContainers") or []
            if not (by_name.get(c["name"], {}).get("started") if _is_sidecar(c) else by_name.get(c["name"], {}).get("ready"))
        ]
        initialized = (
            {"status": "False", "reason": "ContainersNotInitialized", "message": f"containers with incomplete status: {_go_list(incomplete)}"}
            if incomplete
            else {"status": "True"}
        )

    if phase == "Failed":
        containers_ready: dict[str, Any] = {"status": "False", "reason": "PodFailed"}
    else:
        names = [c["name"] for c in spec.get("initContainers") or [] if _is_sidecar(c)] + [c["name"] for c in spec.get("containers", [])]
        unready = [n for n in names if not by_name.get(n, {}).get("ready")]
        containers_ready = (
            {"status": "False", "reason": "ContainersNotReady", "message": f"containers with unready status: {_go_list(unready)}"}
            if unready
            else {"status": "True"}
        )
    ready = dict(containers_ready)
    if ready["status"] == "True":
        gates = [g["conditionType"] for g in spec.get("readinessGates") or []]
        unmet = [g for g in gates if old.get(g, {}).get("status") != "True"]
        if unmet:
            ready = {"status": "False", "reason": "ReadinessGatesNotReady", "message": ", ".join(
                f'corresponding condition of pod readiness gate "{g}" does not exist.' for g in unmet)}
    sandbox = {"status": "False" if phase == "Failed" else "True"}
    return [
        {"type": "PodReadyToStartContainers", **sandbox},
        {"type": "Initialized", **initialized},
        {"type": "Ready", **ready},
        {"type": "ContainersReady", **containers_ready},
    ]


def _merge_conditions(pod: Mapping[str, Any], fresh: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """The kubelet's conditions first, then the others already there (PodScheduled, ...);
    a transition time changes only when the status does."""
    generation = pod["metadata"].get("generation")
    old = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    out = []
    for cond in fresh:
        previous = old.get(cond["type"], {})
        unchanged = previous.get("status") == cond["status"] and previous.get("lastTransitionTime")
        merged: dict[str, Any] = {
            "type": cond["type"],
            "status": cond["status"],
            "lastProbeTime": None,
            "lastTransitionTime": unchanged or now,
        }
        for key in ("reason", "message"):
            if cond.get(key):
                merged[key] = cond[key]
        if generation is not None:
            merged["observedGeneration"] = generation
        out.append(merged)
    types = {c["type"] for c in fresh}
    out.extend(dict(c) for c in old.values() if c["type"] not in types)
    return out


def simulated_status(
    pod: Mapping[str, Any],
    steps: Sequence[RuntimeStep],
    now: dt.datetime,
    *,
    since: dt.datetime | None = None,
    pod_ip: str | None = None,
) -> dict[str, Any]:
    """The ``status`` a kubelet would report for ``pod`` under ``steps`` (no steps: running
    and ready). ``since`` is when the trouble began for this pod (default ``now``); ``pod_ip``
    is used when the pod has no IP yet (its sandbox is up in every simulated state)."""
    clock = _Clock(now=timestamp(now), since=timestamp(since or now))
    p = plan(pod, steps)
    old_status = pod.get("status") or {}
    old_by_name = {s["name"]: s for s in [*(old_status.get("containerStatuses") or []), *(old_status.get("initContainerStatuses") or [])]}
    spec = pod["spec"]

    init_statuses = _init_statuses(pod, p, old_by_name, clock)
    if p.init_block:
        statuses = [{**_base(c), "state": {"waiting": {"reason": "PodInitializing"}}} for c in spec.get("containers", [])]
    else:
        statuses = [container_status(pod, c, p.main[c["name"]], old_by_name.get(c["name"], {}), clock) for c in spec.get("containers", [])]

    status: dict[str, Any] = {}
    extra_conditions: list[dict[str, Any]] = []
    if p.evicted is not None:
        statuses = _evicted(pod, statuses)
        message = p.evicted.message or EVICTED_MESSAGE
        phase = "Failed"
        status.update(reason=p.evicted.reason or "Evicted", message=message)
        extra_conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": message})
    else:
        phase = pod_phase(pod, statuses, init_statuses)

    conditions = extra_conditions + kubelet_conditions(pod, statuses, init_statuses, phase)
    status.update(
        phase=phase,
        conditions=_merge_conditions(pod, conditions, clock.now),
        containerStatuses=statuses,
        startTime=old_status.get("startTime") or clock.since,
    )
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if pod["metadata"].get("generation") is not None:
        status["observedGeneration"] = pod["metadata"]["generation"]
    if not old_status.get("podIP") and pod_ip:
        status.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
    return status


def shows(pod: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the pod already shows ``desired``: same phase and, per container, the same
    kind of state, reason, readiness and restart count. Other writers (the node controller
    marking pods NotReady) only touch conditions, so they are not fought over."""
    current = pod.get("status") or {}
    if current.get("phase") != desired.get("phase"):
        return False

    def key(statuses: Any) -> list[tuple[Any, ...]]:
        out = []
        for s in statuses or []:
            kind = next(iter(s.get("state") or {}), None)
            reason = ((s.get("state") or {}).get(kind) or {}).get("reason") if kind else None
            out.append((s.get("name"), kind, reason, s.get("ready"), s.get("restartCount")))
        return sorted(out, key=str)

    return all(
        key(current.get(field_)) == key(desired.get(field_))
        for field_ in ("containerStatuses", "initContainerStatuses")
    )
