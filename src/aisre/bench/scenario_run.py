"""One scenario on the cluster: a fresh namespace, the healthy baseline, the fault steps in
order, and the cleanup (namespace, Stages, log files, created cluster-scoped objects, node
changes restored), which always runs and is never cut short by a signal.

    with ScenarioRun(context, loaded) as run:
        run.setup()      # baseline applied and available
        run.fault()      # steps applied; run.namespace is ready to be investigated
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from aisre.bench import kwok, metrics, realnode
from aisre.bench.interrupts import shielded
from aisre.bench.kube import BenchKubeError, Kube, ObjectKey, Stream, api_error
from aisre.bench.loader import LoadedScenario
from aisre.bench.scenario import ExpectedCause, FaultStep, Scenario
from aisre.bench.score import NO_FAULT, Cause
from aisre.bench.simulate_node import NodeSimulator, choose_nodes, pods_nodes
from aisre.bench.simulate_runtime import RuntimeSimulator
from aisre.bench.workloads import WORKLOAD_KINDS, wait_available

NAMESPACE_PREFIX = "bench-"
SETUP_TIMEOUT_S = 60.0


def setup_timeout(baseline: list[dict[str, Any]]) -> float:
    """How long a baseline may take to become available: a minute, plus the time its own
    workloads ask for — `minReadySeconds` before a pod counts, once per pod where a
    StatefulSet starts them one after another (OrderedReady, its default)."""
    extra = 0.0
    for manifest in baseline:
        spec = manifest.get("spec") or {}
        wait = float(spec.get("minReadySeconds") or 0)
        if manifest.get("kind") == "StatefulSet" and spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady":
            wait *= int(spec.get("replicas", 1) or 1)
        extra = max(extra, wait)
    return SETUP_TIMEOUT_S + extra
# KWOK gives no sign that it has loaded a new Stage; its informer normally has it within
# milliseconds. Before the first fault step the hold Stages get this long (simulated pods
# are rewritten anyway if KWOK's defaults got to them first).
STAGE_SETTLE_S = 0.3
RUNTIME_APPLY_S = 5.0  # a runtime step waits this long for a first pod to show it
REAL_REPORT_S = 90.0  # the longest a `kubelet: real` scenario waits for the kubelet to report
# The kubelet posts its Warning a moment before its status manager writes the pod's status;
# an Investigation started in between would see the Event but not the status.
REAL_STATUS_GRACE_S = 2.0
BASELINE_AGE_S = 1.5  # the least time between applying the baseline and the first fault step


class ScenarioError(RuntimeError):
    """The scenario could not be played (setup unhealthy, a step failed)."""


def run_token() -> str:
    return secrets.token_hex(3)[:5]


def namespace_name(scenario: str, suffix: str | None = None) -> str:
    """``bench-<name>-<random>``, at most 63 characters. One run uses one random suffix for
    all its scenarios (their names are unique), so ``bench-*-<suffix>`` names its namespaces."""
    suffix = suffix or run_token()
    room = 63 - len(NAMESPACE_PREFIX) - len(suffix) - 1
    return f"{NAMESPACE_PREFIX}{scenario[:room].rstrip('-')}-{suffix}"


def manifests(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML string (``kind: List`` expanded)."""
    out: list[dict[str, Any]] = []
    try:
        docs = list(yaml.safe_load_all(text or ""))
    except yaml.YAMLError as error:
        raise ScenarioError(f"not valid YAML: {error}") from error
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ScenarioError(f"not a Kubernetes object: {str(doc)[:100]}")
        out.extend((doc.get("items") or []) if doc.get("kind") == "List" else [doc])
    return out


def expected_cause(cause: ExpectedCause, pods: list[dict[str, Any]]) -> Cause:
    """An expected root cause as scored: ``Kind/name``; a Node given by podSelector names the
    nodes those pods run on (shown as the selector while that is not known)."""
    assert cause.resource is not None
    res, category = cause.resource, cause.category.value
    if res.pod_selector is None:
        return Cause(category, (f"{res.kind}/{res.name}",))
    nodes = pods_nodes(res.pod_selector, pods)
    selector = ",".join(f"{k}={v}" for k, v in sorted(res.pod_selector.items()))
    return Cause(category, tuple(f"Node/{n}" for n in nodes), label=None if nodes else f"Node(podSelector {selector})")


def expected_causes(scenario: Scenario, pods: list[dict[str, Any]]) -> tuple[Cause, list[Cause]]:
    """The expected cause (NoFault for ``incident: false``) and the also-acceptable ones."""
    expect = scenario.expect
    main = expected_cause(expect.root_cause, pods) if expect.incident and expect.root_cause else Cause(NO_FAULT, ())
    return main, [expected_cause(c, pods) for c in expect.also_acceptable]


@dataclass
class BenchContext:
    """What every scenario of one run shares."""

    kube: Kube
    run_id: str
    state_dir: Path  # log files (read by kwok-controller) and node journals live here
    kwok_problem: str | None = None
    real_node_problem: str | None = None  # why `kubelet: real` scenarios cannot run, if they cannot
    keep_namespaces: bool = False
    token: str = field(default_factory=run_token)  # the namespaces' suffix
    operator_namespace: str = "aisre-system"  # the operator's own (node-level Incidents)
    prometheus_url: str | None = None  # where metrics steps are written (and the agent reads)

    @property
    def namespace_pattern(self) -> str:
        """A Kopf namespace glob for this run's namespaces only: the in-process operator of
        one run must not handle another run's Investigations."""
        return f"{NAMESPACE_PREFIX}*-{self.token}"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / "bench-journal"

    @property
    def log_root(self) -> Path:
        return self.state_dir / "bench-logs"


@dataclass
class ScenarioRun:
    context: BenchContext
    loaded: LoadedScenario
    namespace: str = ""
    problems: list[str] = field(default_factory=list)  # errors that do not stop the run
    cleanup_problems: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.namespace = self.namespace or namespace_name(self.loaded.name, self.context.token)
        self.scenario: Scenario = self.loaded.for_namespace(self.namespace)
        self.kube = self.context.kube
        self._created: list[ObjectKey] = []  # cluster-scoped objects to delete afterwards
        self._setup_started = time.monotonic()
        self.runtime = RuntimeSimulator(
            self.kube, self.namespace, self.scenario.runtime_steps(), run_id=self.context.run_id,
            log_dir=self.context.log_root / self.namespace,
        )
        self.nodes = NodeSimulator(
            self.kube, self.namespace, run_id=self.context.run_id,
            journal_path=self.context.journal_dir / f"{self.namespace}.json",
        )
        self.expected, self.also_acceptable = expected_causes(self.scenario, [])
        self._kubelet_stopped = False  # a node step stopped the real kubelet: start it before anything else

    # --- the namespace -------------------------------------------------------------------------
    def __enter__(self) -> ScenarioRun:
        body = {"metadata": {"name": self.namespace, "labels": kwok.labels(None, self.context.run_id)}}
        try:
            self.kube.core.create_namespace(body)
        except ApiException as error:
            raise ScenarioError(f"create namespace {self.namespace}: {api_error(error)}") from error
        return self

    def __exit__(self, *exc: Any) -> None:
        started = time.monotonic()
        with shielded():
            self.runtime.stop()
            self.cleanup_problems.extend(self.nodes.restore())  # always: nodes are shared
            if self._kubelet_stopped:  # before the namespace goes: only a kubelet deletes its pods
                try:
                    realnode.kubelet(self.context.state_dir, "start")
                    self._kubelet_stopped = False
                except RuntimeError as error:
                    self.cleanup_problems.append(str(error))
                else:
                    unsettled = realnode.wait_node_settled(self.kube)
                    if unsettled:
                        self.cleanup_problems.append(unsettled)
            if self.context.keep_namespaces:
                self._mark_kept()
            else:
                self._delete_objects()
                self.cleanup_problems.extend(self.runtime.cleanup())  # Stages, log files
        self.timings["cleanup_s"] = time.monotonic() - started

    def _delete_objects(self) -> None:
        for key in reversed(self._created):
            try:
                self.kube.delete(key, missing_ok=True)
            except BenchKubeError as error:
                self.cleanup_problems.append(str(error))
        try:
            self.kube.core.delete_namespace(self.namespace)
        except ApiException as error:
            if error.status != 404:
                self.cleanup_problems.append(f"delete namespace {self.namespace}: {api_error(error)}")

    def _mark_kept(self) -> None:
        patch = {"metadata": {"labels": {kwok.KEPT_LABEL: "true"}}}
        self.kube.core.patch_namespace(self.namespace, patch)
        for name in self.runtime.stage_names:
            self.kube.custom.patch_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", name, patch)

    # --- baseline ------------------------------------------------------------------------------
    def setup(self) -> None:
        started = self._setup_started = time.monotonic()
        if self.scenario.kubelet == "real" and self.context.real_node_problem:
            raise ScenarioError(self.context.real_node_problem)
        self._wait_for_service_account()
        kinds = set()
        baseline = list(manifests(self.scenario.setup))
        for manifest in baseline:
            kinds.add(self._apply(manifest))
        timeout = setup_timeout(baseline)
        not_ready = wait_available(self.kube, self.namespace, kinds & set(WORKLOAD_KINDS), timeout)
        self.timings["setup_s"] = time.monotonic() - started
        if not_ready:
            raise ScenarioError(f"setup not available within {timeout:g} s: {', '.join(not_ready)}")

    def _wait_for_service_account(self) -> None:
        # Pods are refused until the namespace's `default` ServiceAccount exists.
        stream = Stream(self.kube.core.list_namespaced_service_account, namespace=self.namespace,
                        field_selector="metadata.name=default")
        for kind, _ in stream.events(timeout=30):
            if kind == "ADDED":
                stream.stop()
                return
        raise ScenarioError(f"namespace {self.namespace} got no default ServiceAccount within 30 s")

    def _apply(self, manifest: dict[str, Any]) -> str:
        manifest = realnode.pin(manifest) if self.scenario.kubelet == "real" else realnode.keep_off(manifest)
        try:
            key, created = self.kube.apply(manifest, self.namespace)
        except BenchKubeError as error:
            raise ScenarioError(str(error)) from error
        if key.namespace is None and created:
            self._created.append(key)
        return key.kind

    # --- the fault -----------------------------------------------------------------------------
    def fault(self) -> None:
        # A real baseline exists long before its fault; here setup can take under a second,
        # and the API server's timestamps have one-second resolution: a change in the same
        # second as the creation would look like no change at all.
        time.sleep(max(0.0, BASELINE_AGE_S - (time.monotonic() - self._setup_started)))
        started = time.monotonic()
        pods = self.kube.pods(self.namespace)
        # Node expectations by podSelector name the nodes the pods run on now.
        self.expected, self.also_acceptable = expected_causes(self.scenario, pods)
        simulated = self.scenario.kubelet == "simulated"
        if self.scenario.runtime_steps() or simulated and any(s.node for s in self.scenario.fault):
            if self.context.kwok_problem:
                raise ScenarioError(self.context.kwok_problem)
        if self.scenario.runtime_steps():
            try:
                self.runtime.arm(pods, dt.datetime.now(dt.UTC).replace(microsecond=0))
            except ApiException as error:
                raise ScenarioError(f"runtime simulation: {api_error(error)}") from error
            time.sleep(STAGE_SETTLE_S)
        since = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            for index, step in enumerate(self.scenario.fault):
                self._step(index, step)
        finally:
            self.problems.extend(e for e in self.runtime.errors if e not in self.problems)
            self.timings["fault_s"] = time.monotonic() - started
        if self.scenario.kubelet == "real":
            # Nothing is simulated: the failure takes its real time to show. Investigations and
            # the detection clock start once the kubelet has reported it.
            reported = realnode.wait_for_kubelet(self.kube, self.namespace, since, REAL_REPORT_S)
            self.timings["kubelet_report_s"] = reported if reported is not None else -1.0
            if reported is not None:
                time.sleep(REAL_STATUS_GRACE_S)  # nothing to watch for: the status has no marker
            self.timings["fault_s"] = time.monotonic() - started

    def _stop_real_kubelet(self, nodes: list[str], all_nodes: list[dict[str, Any]]) -> None:
        real = {n["metadata"]["name"] for n in all_nodes
                if (n["metadata"].get("labels") or {}).get(realnode.NODE_LABEL[0]) == realnode.NODE_LABEL[1]}
        if not nodes or set(nodes) - real:
            raise ScenarioError(f"node step: it picks {nodes or 'no node'}; a real scenario can only stop the real node's kubelet")
        self._kubelet_stopped = True  # first: a stop cut short still gets its start
        try:
            realnode.kubelet(self.context.state_dir, "stop")
        except RuntimeError as error:
            raise ScenarioError(str(error)) from error

    def _step(self, index: int, step: FaultStep) -> None:
        where = f"fault step {index + 1} ({step.kind})"
        try:
            if step.apply is not None:
                for manifest in manifests(step.apply):
                    self._apply(manifest)
            elif step.patch is not None:
                t = step.patch.target
                self.kube.patch(self.kube.key(t.kind, t.name, self.namespace, t.api_version), step.patch.patch, step.patch.type)
            elif step.delete is not None:
                d = step.delete
                self.kube.delete(self.kube.key(d.kind, d.name, self.namespace, d.api_version))
            elif step.runtime is not None:
                self.runtime.activate(index)
                self.runtime.wait_applied(index, RUNTIME_APPLY_S)
            elif step.node is not None:
                all_nodes = Kube.raw(self.kube.core.list_node)["items"]
                nodes = choose_nodes(step.node, self.kube.pods(self.namespace), all_nodes)
                if self.scenario.kubelet == "real":
                    self._stop_real_kubelet(nodes, all_nodes)
                else:
                    self.nodes.apply(index, step.node, nodes)
            elif step.metrics is not None:
                written = metrics.write_step(self.context.prometheus_url, step.metrics, self.namespace,
                                             self.kube.pods(self.namespace), time.time())
                self.timings["metrics_samples"] = self.timings.get("metrics_samples", 0) + written
            elif step.wait is not None:
                time.sleep(step.wait)  # the scenario asks for time to pass, nothing to watch
        except (BenchKubeError, ScenarioError, ValueError, RuntimeError) as error:
            raise ScenarioError(f"{where}: {error}") from error
        except ApiException as error:
            raise ScenarioError(f"{where}: {api_error(error)}") from error
