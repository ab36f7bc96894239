"""``aisre bench``: load the scenarios, prepare the cluster, play each scenario (one at a
time), investigate it, score, and write the report.

Who it talks to: the cluster (``cluster``), the operator (in-process through
``OperatorThread``, or an operator already running), and each scenario's ``ScenarioRun``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubernetes.client.exceptions import ApiException

from aisre.bench import cluster, kwok, metrics, realnode, remediate, report
from aisre.bench.interrupts import handle_signals, shielded
from aisre.bench.detect import DetectOutcome, detect
from aisre.bench.llm import llm_config, llm_report
from aisre.bench.investigate import investigate
from aisre.bench.kube import Kube, Stream, api_error
from aisre.bench.loader import LoadedScenario, LoadError, filter_by_tags, load_dir
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.bench.scenario_run import NAMESPACE_PREFIX, BenchContext, ScenarioError, ScenarioRun, expected_causes
from aisre.bench.score import Cause, Result
from aisre.bench.simulate_node import recover
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.graph_store import GraphSettings

NAMESPACE_GONE_S = 60.0


@dataclass
class Options:
    scenarios: Path
    json_out: Path
    mode: str = "detect"  # detect | investigate
    tags: list[str] = field(default_factory=list)
    kubeconfig: Path | None = None
    external_operator: bool = False
    timeout: float = 60.0
    keep_namespaces: bool = False
    remediate: str = "off"  # off | auto (bench/remediate.py)
    llm_url: str | None = None  # a Messages API (the tests' scripted fake) for the in-process operator
    llm_json: Path | None = None
    prometheus_url: str | None = None  # None: started by hack/prometheus.sh if a scenario has metrics steps
    statuses: Path | None = None  # investigate mode: write each concluded Investigation's status here
    neo4j_url: str | None = None  # the in-process operator writes its knowledge graph here (user neo4j, AISRE_NEO4J_PASSWORD)


def _log(message: str, err: TextIO) -> None:
    print(f"[bench] {message}", file=err, flush=True)


def _unplayable(item: LoadedScenario | LoadError, error: str) -> Result:
    """A result for a scenario that never ran (its expectation as far as it is known)."""
    if isinstance(item, LoadError):
        return Result(item.name, True, Cause("?", ()), error=item.error)
    expected, also = expected_causes(item.scenario, [])
    return Result(item.name, item.scenario.expect.incident, expected, also, error=error, tags=tuple(item.scenario.tags))


@contextmanager
def session(options: Options, err: TextIO, items: list[LoadedScenario | LoadError] | tuple = ()) -> Iterator[BenchContext]:
    """The cluster, its CRDs and the operator, for the whole run; afterwards the operator is
    stopped and the run waits (bounded) until its namespaces are gone."""
    if options.kubeconfig is not None:
        kubeconfig = options.kubeconfig
        state_dir = kubeconfig.resolve().parent
    else:
        checkout = cluster.find_checkout()
        if checkout is None:
            raise cluster.ClusterError("no hack/cluster-up.sh here or above; run from the aisre checkout or pass --kubeconfig")
        kubeconfig = cluster.bring_up_local(checkout)
        state_dir = cluster.local_cluster_dir(checkout)
    kube = Kube(str(kubeconfig))
    context = BenchContext(kube, cluster.run_id(), state_dir, keep_namespaces=options.keep_namespaces,
                           prometheus_url=prometheus_for(options, items, err))
    with ExitStack() as stack:
        stack.callback(kube.close)
        leftovers = cluster.sweep_dead_runs(kube, context.log_root) + recover(kube, context.journal_dir, cluster.run_alive)
        restarted = realnode.restart_stopped_kubelet(state_dir)
        if restarted:
            leftovers.append(restarted)
        if leftovers:
            _log(f"cleaned up after an earlier run: {', '.join(leftovers)}", err)
        cluster.install_crds(kube)
        context.kwok_problem = cluster.kwok_available(kube)
        real = any(isinstance(i, LoadedScenario) and i.scenario.kubelet == "real" for i in items)
        if real:
            context.real_node_problem = realnode.unavailable(kube, state_dir)
            if context.real_node_problem:
                _log(context.real_node_problem, err)
        context.operator_namespace = _operator_namespace(kube, context)
        if options.remediate == "auto":
            for name, value in remediate.SNAPSHOT_ENV.items():  # read by the operator's keeper at start
                os.environ.setdefault(name, value)
        if not options.external_operator:
            # Detect mode: the scenarios compress minutes of trouble into seconds, so the
            # operator runs with grace times compressed to match (Thresholds.compressed);
            # the real kubelet's scenarios run in real time (Thresholds.real_time).
            detection = options.mode == "detect"
            stack.enter_context(OperatorThread(
                kubeconfig, free_port(), namespaces=(context.namespace_pattern,), detection=detection,
                operator_namespace=context.operator_namespace, thresholds=Thresholds.real_time() if real else Thresholds.compressed(),
                llm=llm_config(options.llm_url) if options.llm_url else None,
                prometheus_url=context.prometheus_url,
                **({"neo4j": GraphSettings(options.neo4j_url, "neo4j", os.environ.get("AISRE_NEO4J_PASSWORD", "password") or None)}
                   if options.neo4j_url else {})))
            _log(f"operator running in-process for namespaces {context.namespace_pattern}"
                 f"{' with detection' if detection else ''}", err)
        try:
            yield context
        finally:
            with shielded():
                # The operator stops last: a finalizer of its objects could hold a namespace.
                if not options.keep_namespaces:
                    _delete_namespace(kube, context.operator_namespace)
                    _wait_namespaces_gone(kube, context.run_id, err)
                stack.close()


def _save_status(directory: Path, name: str, run: ScenarioRun, status: Mapping[str, Any]) -> None:
    """One scenario's concluded Investigation, for what reads statuses offline (bench/recurrence.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(
        {"name": name, "namespace": run.namespace, "expected": run.expected.display(), "status": status},
        indent=1, default=str))


def _operator_namespace(kube: Kube, context: BenchContext) -> str:
    """The in-process operator's own namespace (node-level Incidents live there); it
    matches the run's pattern and goes with the run's namespaces."""
    name = f"{NAMESPACE_PREFIX}operator-{context.token}"
    try:
        kube.core.create_namespace({"metadata": {"name": name, "labels": kwok.labels(None, context.run_id)}})
    except ApiException as error:
        if error.status != 409:
            raise
    return name


def _delete_namespace(kube: Kube, name: str) -> None:
    try:
        kube.core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


def prometheus_for(options: Options, items: list[LoadedScenario | LoadError] | tuple, err: TextIO) -> str | None:
    """The Prometheus of this run: the one given, else the local one when a scenario needs it
    (metrics steps to write, or a real node whose kubelet it scrapes)."""
    if options.prometheus_url:
        return options.prometheus_url
    # Real scenarios read what Prometheus scrapes from the real kubelet (hack/prometheus.sh).
    if not any(isinstance(i, LoadedScenario) and (metrics.has_metrics(i.scenario) or i.scenario.kubelet == "real")
               for i in items):
        return None
    checkout = cluster.find_checkout()
    if checkout is None:
        raise cluster.ClusterError("scenarios have metrics steps: pass --prometheus-url (no hack/prometheus.sh here)")
    try:
        url = metrics.bring_up_prometheus(checkout)
    except metrics.RemoteWriteError as error:
        raise cluster.ClusterError(str(error)) from error
    _log(f"Prometheus for metrics steps at {url}", err)
    return url


def _wait_namespaces_gone(kube: Kube, run_id: str, err: TextIO) -> None:
    selector = f"{kwok.RUN_LABEL}={run_id}"
    remaining: set[str] = set()
    stream = Stream(kube.core.list_namespace, label_selector=selector)
    for kind, ns in stream.events(timeout=NAMESPACE_GONE_S, synced=True):
        if kind == "ADDED" or kind == "MODIFIED":
            remaining.add(ns["metadata"]["name"])
        elif kind == "DELETED":
            remaining.discard(ns["metadata"]["name"])
        if kind != "ADDED" and not remaining:
            stream.stop()
            return
    _log(f"namespaces still terminating after {NAMESPACE_GONE_S:g} s: {sorted(remaining)}", err)


def play(context: BenchContext, item: LoadedScenario, timeout: float, err: TextIO, mode: str = "investigate",
         remediate_mode: str = "off", statuses: Path | None = None) -> Result:
    """One scenario: set up, fault, then detect (wait for the operator's Incident and its
    Investigation) or investigate (create an Investigation), remediate if asked, clean up, score."""
    started = time.monotonic()
    try:
        run = ScenarioRun(context, item)
    except ValueError as error:  # the scenario does not validate with its namespace filled in
        return _unplayable(item, f"invalid scenario: {error}")
    result = Result(item.name, run.scenario.expect.incident, run.expected, run.also_acceptable, tags=tuple(run.scenario.tags))
    errors: list[str] = []
    try:
        with run:
            run.setup()
            baseline = remediate.snapshot(context.kube, run.namespace) if remediate_mode == "auto" else {}
            if remediate_mode == "auto":
                # restoreConfig's source: the known-good copies, kept before the fault changes them
                missing = remediate.wait_for_snapshots(context.kube, context.operator_namespace, run.namespace,
                                                       remediate.configmaps_to_keep(run, baseline))
                if missing:
                    errors.append(f"no known-good copy of ConfigMap {', '.join(sorted(missing))} before the fault")
            if remediate_mode == "auto" and mode == "detect":
                remediate.apply_policy(context.kube, run.namespace, context.operator_namespace)
            run.fault()
            if remediate_mode == "auto":
                remediate.label_faulted_nodes(context.kube, run.namespace, sorted(run.nodes.journal.nodes))
            result.expected, result.also_acceptable = run.expected, run.also_acceptable
            if mode == "detect":
                outcome = detect(context.kube, run.namespace, context.operator_namespace, time.monotonic(),
                                 run.scenario.expect.incident, timeout)
                result.incidents, result.detect_s = outcome.incidents, outcome.detect_s
            else:
                outcome = investigate(context.kube, run.namespace, timeout)
                if statuses is not None and outcome.status is not None:
                    _save_status(statuses, item.name, run, outcome.status)
            result.ranked, result.concluded, result.investigate_s = outcome.ranked, outcome.concluded, outcome.investigate_s
            result.llm = outcome.llm
            errors.extend(run.problems + run.runtime.errors)  # the simulation ran on meanwhile
            if outcome.error:
                errors.append(outcome.error)
            if remediate_mode == "auto":
                detected = outcome.first if isinstance(outcome, DetectOutcome) else None
                if mode == "investigate" or detected is not None:
                    result.remediation = remediate.remediate(  # type: ignore[attr-defined]
                        context.kube, run, baseline, timeout + 60, detected, context.operator_namespace)
    except ScenarioError as error:
        errors.extend(run.problems)
        errors.append(str(error))
    except ApiException as error:
        errors.append(f"API: {api_error(error)}")
    except Exception as error:  # noqa: BLE001  (one scenario's bug must not end the benchmark)
        errors.append(f"internal error: {type(error).__name__}: {error}")
    if remediate_mode == "auto":  # nodes are shared: schedulable and unmarked again, whatever happened
        errors.extend(remediate.release_nodes(context.kube, run.namespace, context.operator_namespace))
    errors.extend(f"cleanup: {p}" for p in run.cleanup_problems)
    result.error = "; ".join(dict.fromkeys(errors)) or None
    result.timings = {**run.timings, "total_s": time.monotonic() - started}
    if context.keep_namespaces:
        _log(f"{item.name}: kept namespace {run.namespace}", err)
    return result


def run(options: Options, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The whole benchmark; returns the exit code (0: it ran, whatever the scores)."""
    items = filter_by_tags(load_dir(options.scenarios), options.tags)
    if not items:
        _log(f"no scenarios in {options.scenarios}" + (f" with tags {options.tags}" if options.tags else ""), err)
    results: list[Result] = []
    interrupted = False
    started = time.monotonic()
    with handle_signals():
        try:
            with session(options, err, items) as context:
                for number, item in enumerate(items, 1):
                    if isinstance(item, LoadError):
                        results.append(_unplayable(item, item.error))
                    else:
                        results.append(play(context, item, options.timeout, err, options.mode, options.remediate,
                                            options.statuses))
                    r = results[-1]
                    _log(f"{number}/{len(items)} {r.name}: " + ("ok" if r.top1 else "wrong")
                         + (f" ({r.error})" if r.error else "") + f" in {r.timings.get('total_s', 0):.1f} s", err)
        except KeyboardInterrupt:
            interrupted = True
            _log("interrupted; the report holds the scenarios that finished", err)
        except cluster.ClusterError as error:
            _log(f"cannot run: {error}", err)
            return 2
    summary = report.build(
        results, mode=options.mode,
        extra={"timeout_s": options.timeout, "duration_s": round(time.monotonic() - started, 3), "interrupted": interrupted},
    )
    if options.remediate == "auto":
        summary["remediation"] = remediate.summarize(results)
        for row, r in zip(summary["results"], results, strict=True):
            row.update(getattr(r, "remediation", None) or {"action": None, "action_result": None, "cleared": False})
    report.write_json(summary, options.json_out)
    if options.llm_url:
        report.write_json(llm_report(results, options.llm_url), options.llm_json or options.json_out.with_name("llm.json"))
    print(report.table(summary), file=out)
    _log(f"report written to {options.json_out}", err)
    return 130 if interrupted else 0
