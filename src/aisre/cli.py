"""The ``aisre`` console script.

    aisre run        start the operator against the current kubeconfig
    aisre crds       write the CRDs generated from the models (or --check for drift)
    aisre docs       write the CRD reference generated from the models (or --check for drift)
    aisre report     print a Markdown report of an Investigation or an Incident
    aisre approve    approve a recommended action of an Incident, as the current user
    aisre bench      run fault scenarios on a cluster and score the operator's conclusions
    aisre insights   what the period's Incidents say (root causes, response times, forecasts)
    aisre plugins    list the agents, patterns, actions and sinks installed, which are on, and why not
    aisre version    print the version
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from aisre import __version__


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from aisre.operator.config import OperatorConfig
    from aisre.operator.main import run

    config = OperatorConfig.from_env()
    overrides = {}
    if args.kubeconfig:
        overrides["kubeconfig"] = args.kubeconfig
    if args.namespace:
        overrides["namespaces"] = tuple(args.namespace)
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    if args.http_host:
        overrides["http_host"] = args.http_host
    if args.peering:
        overrides["peering_name"] = args.peering
    if args.log_format:
        overrides["log_format"] = args.log_format
    run(replace(config, **overrides))
    return 0


def _write_or_check(files: dict[Path, str], check: bool, command: str) -> int:
    """Write generated files that changed; with ``check``, only say which are stale."""
    stale: list[str] = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"generated files differ from the models (run `{command}`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def _cmd_crds(args: argparse.Namespace) -> int:
    from aisre.api.crd import render_crds

    rendered = render_crds()
    files = {out_dir / name: text for out_dir in args.output_dir or [Path("crds")] for name, text in rendered.items()}
    return _write_or_check(files, args.check, "aisre crds")


def _cmd_docs(args: argparse.Namespace) -> int:
    from aisre.api.docs import render_crd_reference

    return _write_or_check({args.output: render_crd_reference()}, args.check, "make docs")


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.mode == "forecast":  # series into Prometheus and the forecast code; no cluster (docs/forecasts.md)
        from aisre.bench import forecast
        from aisre.bench.cluster import find_checkout
        from aisre.bench.metrics import bring_up_prometheus

        checkout = find_checkout()
        if not args.prometheus_url and checkout is None:
            print("error: forecast mode needs a Prometheus: pass --prometheus-url", file=sys.stderr)
            return 2
        url = args.prometheus_url or bring_up_prometheus(checkout)  # type: ignore[arg-type]
        return forecast.run(args.scenarios, args.json, url, args.tag or [])
    from aisre.bench.runner import Options, run
    from aisre.operator.logs import configure_logging

    # The in-process operator logs to stderr, quietly: stdout carries the results table.
    configure_logging(args.log_level, "console")
    # Kopf notes that it cannot handle OS signals in a thread: the bench handles them.
    logging.getLogger("kopf._core.reactor.running").setLevel(logging.ERROR)
    return run(
        Options(
            scenarios=args.scenarios,
            json_out=args.json,
            mode=args.mode,
            tags=args.tag or [],
            kubeconfig=args.kubeconfig,
            external_operator=args.external_operator,
            timeout=args.timeout,
            keep_namespaces=args.keep_namespaces,
            statuses=args.statuses,
            neo4j_url=args.neo4j_url,
            remediate=args.remediate,
            llm_url=args.llm_url,
            llm_json=args.llm_json,
            prometheus_url=args.prometheus_url,
        )
    )


def _cmd_report(args: argparse.Namespace) -> int:
    import kubernetes

    from aisre import console

    try:
        plural, name = console.aisre_ref(args.object)
    except console.UsageError as error:
        print(f"aisre report: {error}", file=sys.stderr)
        return 2
    cluster = console.connect(args.kubeconfig)
    namespace = args.namespace or cluster.namespace
    try:
        _, text = console.report(cluster, namespace, plural, name)
    except kubernetes.client.ApiException as error:
        print(f"aisre report: {args.object} in {namespace}: {error.reason} ({error.status})", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    import kubernetes

    from aisre import console
    from aisre.remediation.approve import NothingToApprove, approve

    try:
        _, name = console.aisre_ref(args.object, ("incidents",))
    except console.UsageError as error:
        print(f"aisre approve: {error}", file=sys.stderr)
        return 2
    cluster = console.connect(args.kubeconfig)
    try:
        user = approve(cluster.api_client, args.namespace or cluster.namespace, name, args.action_id, args.comment or "")
    except kubernetes.client.ApiException as error:
        print(f"aisre approve: refused ({error.status}): {error.body or error.reason}", file=sys.stderr)
        return 1
    except NothingToApprove as error:
        print(f"aisre approve: {error}", file=sys.stderr)
        return 1
    print(f"incident/{name} action {args.action_id} approved by {user}")
    return 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    import kubernetes
    from pydantic import ValidationError

    from aisre import console
    from aisre.knowledge.feedback import give_feedback

    try:
        _, name = console.aisre_ref(args.object, ("incidents",))
        resource = None
        if args.resource:
            kind, _, res_name = args.resource.partition("/")
            if not kind or not res_name:
                raise console.UsageError(f"--resource wants KIND/NAME, not {args.resource!r}")
            resource = {"kind": kind, "name": res_name}
    except console.UsageError as error:
        print(f"aisre feedback: {error}", file=sys.stderr)
        return 2
    cluster = console.connect(args.kubeconfig)
    try:
        user = give_feedback(cluster.api_client, args.namespace or cluster.namespace, name,
                             "correct" if args.correct else "wrong", args.category, resource, args.comment or "")
    except (ValueError, ValidationError) as error:
        print(f"aisre feedback: {error}", file=sys.stderr)
        return 2
    except kubernetes.client.ApiException as error:
        print(f"aisre feedback: refused ({error.status}): {error.body or error.reason}", file=sys.stderr)
        return 1
    print(f"incident/{name}: root cause marked {'correct' if args.correct else 'wrong'} by {user}")
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    import json

    import kubernetes

    from aisre import console
    from aisre.bench.score import expected_calibration_error
    from aisre.knowledge.feedback import verdict_pairs
    from aisre.ranking.calibration import PRIOR_WEIGHT, calibrate, fit_knots

    cluster = console.connect(args.kubeconfig)
    namespace = None if args.all_namespaces else (args.namespace or cluster.namespace)
    try:
        incidents = console.list_objects(cluster, namespace, "incidents")
        investigations = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                          for o in console.list_objects(cluster, namespace, "investigations")}
    except kubernetes.client.ApiException as error:
        print(f"aisre calibration: {console.api_error_message(error)}", file=sys.stderr)
        return 1
    pairs = verdict_pairs(incidents, investigations)
    knots = fit_knots(pairs, prior_weight=PRIOR_WEIGHT)
    result = {"verdicts": len(pairs), "confirmed": sum(ok for _, ok in pairs),
              "ece_in_force": expected_calibration_error([(calibrate(s), ok) for s, ok in pairs]),
              "ece_refit": expected_calibration_error([(calibrate(s, knots), ok) for s, ok in pairs]),
              "knots": knots}
    if args.output == "json":
        print(json.dumps(result, indent=1))
        return 0
    if not pairs:
        print("no Incident with feedback yet (aisre feedback incident/NAME --correct | --wrong)")
        return 0
    print(f"{result['verdicts']} verdicts, {result['confirmed']} confirmed ({result['confirmed'] / len(pairs):.0%}); "
          f"ECE of the calibration in force {result['ece_in_force']:.3f}, of a refit on them {result['ece_refit']:.3f} "
          f"(shrunk toward the scores by {PRIOR_WEIGHT:g} pseudo-answers per bin)")
    print(f"to calibrate with it: AISRE_CALIBRATION_KNOTS='{json.dumps(knots)}' (chart: calibration.knots)")
    return 0


def _needs(meta: Any) -> str:
    needs = [n for n in ("prometheus", "url", "secret") if getattr(meta.needs, n)]
    extra = [f"${meta.cost_per_call_usd:g}/call"] if meta.cost_per_call_usd else []
    extra += [f"{meta.rate_limit_per_minute}/min"] if meta.rate_limit_per_minute else []
    extra += [f"symptoms:{len(meta.symptoms)}"] if meta.symptoms else []
    extra += [f"rbac:{len(meta.rbac)} rules (--json)"] if meta.rbac else []
    return " ".join(needs + extra) or "-"


def _cmd_plugins(args: argparse.Namespace) -> int:
    """What the registries hold under this environment's AISRE_PLUGINS_* (the operator's, when
    run in its Pod), which are on, and why the others are not. --check: exit 1 when a plugin
    failed to load or lacks a prerequisite."""
    from aisre.plugins import PluginConfig, load

    try:
        config = PluginConfig.from_env()
    except ValueError as error:
        print(f"aisre plugins: {error}", file=sys.stderr)
        return 2
    found = load(config)
    shown = [p for p in found.all() if not args.group or p.group.short == args.group]
    if args.json:
        print(json.dumps([{**p.summary(), "needs": p.meta.needs.model_dump(), "costPerCallUsd": p.meta.cost_per_call_usd,
                           "rateLimitPerMinute": p.meta.rate_limit_per_minute, "symptoms": list(p.meta.symptoms),
                           "rbac": [r.model_dump() for r in p.meta.rbac]} for p in shown], indent=2))
    else:
        rows = [("GROUP", "NAME", "VERSION", "SOURCE", "STATE", "NEEDS / LIMITS", "WHY NOT")]
        rows += [(p.group.short, p.name, p.meta.version, "builtin" if p.builtin else p.distribution, p.state.value,
                  _needs(p.meta), p.reason or "") for p in shown]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row[:6], widths)) + "  " + row[6])
    return 1 if args.check and any(p in found.problems() for p in shown) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisre", description="An SRE inside the cluster.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the operator against the current kubeconfig")
    run.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    run.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--http-host", help="address of the health/metrics server (default 127.0.0.1)")
    run.add_argument("--http-port", type=int, help="port of the health/metrics server (default 8080)")
    run.add_argument("--peering", help="HA: replicas with this name elect a leader on the Lease <name>-leader, "
                     "and only it does the work (default: standalone; docs/operations.md)")
    run.add_argument("--log-format", choices=["json", "console"])
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser("crds", help="generate the CRDs from the models")
    crds.add_argument("-o", "--output-dir", type=Path, action="append", help="directory (repeatable; default crds/)")
    crds.add_argument("--check", action="store_true", help="fail if the files differ instead of writing")
    crds.set_defaults(func=_cmd_crds)

    docs = sub.add_parser("docs", help="generate the CRD reference (docs/crd-reference.md) from the models")
    docs.add_argument("-o", "--output", type=Path, default=Path("docs/crd-reference.md"),
                      help="where to write it (default docs/crd-reference.md)")
    docs.add_argument("--check", action="store_true", help="fail if the file differs instead of writing")
    docs.set_defaults(func=_cmd_docs)

    bench = sub.add_parser(
        "bench",
        help="run fault scenarios and score the operator's conclusions",
        description="Plays every scenario file of a directory, one at a time, on the local cluster "
        "(hack/cluster-up.sh starts it when it does not answer) or the one --kubeconfig names, and "
        "writes the benchmark report (format: SCENARIOS.md; how it works: docs/scenarios.md).",
    )
    bench.add_argument("--scenarios", type=Path, required=True, help="directory of scenario files (*.yaml, recursively)")
    bench.add_argument("--json", type=Path, required=True, help="where to write the JSON report")
    bench.add_argument(
        "--mode", choices=["investigate", "detect", "forecast"], default="detect",
        help="detect (default): the operator's detection raises the Incident and starts the Investigation; "
        "investigate: the runner creates an Investigation per scenario; forecast: the scenarios' forecast blocks "
        "are written into Prometheus and forecast (docs/forecasts.md)",
    )
    bench.add_argument("--remediate", choices=["off", "auto"], default="off",
                       help="auto: let the operator remediate each scenario's Incident under a permissive auto policy "
                       "(detect mode: the policy is there before the fault; investigate mode: the runner opens the "
                       "Incident); adds action, action_result and cleared to each result")
    bench.add_argument("--tag", action="append", help="only scenarios with this tag (repeatable: any of them)")
    bench.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting the local one")
    bench.add_argument("--external-operator", action="store_true", help="an operator already runs; do not start one in-process")
    bench.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each Investigation to conclude (default 60)")
    bench.add_argument("--statuses", type=Path, help="investigate mode: write each concluded Investigation's status "
                       "into this directory (NAME.json), for bench/recurrence.py")
    bench.add_argument("--neo4j-url", help="the in-process operator writes its knowledge graph to this Neo4j "
                       "(bolt://127.0.0.1:7688 from hack/neo4j.sh; user neo4j, password from AISRE_NEO4J_PASSWORD)")
    bench.add_argument("--keep-namespaces", action="store_true", help="keep each scenario's namespace (and its simulated pods) for inspection")
    bench.add_argument("--prometheus-url", default=os.environ.get("AISRE_PROMETHEUS_URL") or None,
                       help="Prometheus for metrics steps and the metrics agent (default $AISRE_PROMETHEUS_URL; "
                       "unset: hack/prometheus.sh starts one when a scenario has metrics steps)")
    bench.add_argument("--log-level", default="WARNING", help="log level of the in-process operator (default WARNING)")
    bench.add_argument("--llm-url", help="turn the LLM on for the in-process operator, against the Messages API at this "
                       "URL (the scripted fake: python tests/llm/fake_anthropic.py); accuracy of a real model is not measured")
    bench.add_argument("--llm-json", type=Path, help="where to write LLM tokens and cost per investigation "
                       "(default: llm.json beside --json)")
    bench.set_defaults(func=_cmd_bench)

    report = sub.add_parser("report", help="print a Markdown report: investigation/NAME, or incident/NAME (post-incident)")
    report.add_argument("object", help="investigation/NAME or incident/NAME")
    report.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    report.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG or ~/.kube/config)")
    report.set_defaults(func=_cmd_report)

    approve = sub.add_parser("approve", help="approve a recommended action of an Incident (as the current user)")
    approve.add_argument("object", help="incident/NAME")
    approve.add_argument("action_id", help="the action's id, from the Incident's remediation journal")
    approve.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    approve.add_argument("--comment", help="why it is approved")
    approve.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG or ~/.kube/config)")
    approve.set_defaults(func=_cmd_approve)

    feedback = sub.add_parser("feedback", help="record whether an Incident's root cause was right (as the current user)")
    feedback.add_argument("object", help="incident/NAME")
    verdict = feedback.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--correct", action="store_true", help="the root cause found is the cause")
    verdict.add_argument("--wrong", action="store_true", help="it is not (say what it was with --category/--resource)")
    feedback.add_argument("--category", help="for --wrong: the root-cause category it really was")
    feedback.add_argument("--resource", help="for --wrong: the object that really was the cause, KIND/NAME")
    feedback.add_argument("--comment", help="why")
    feedback.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    feedback.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG or ~/.kube/config)")
    feedback.set_defaults(func=_cmd_feedback)

    calibration = sub.add_parser("calibration", help="how honest the confidence is on this cluster, judged by "
                                 "people's verdicts (aisre feedback), and the calibration refitted on them")
    calibration.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    calibration.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    calibration.add_argument("-o", "--output", choices=["text", "json"], default="text")
    calibration.add_argument("--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG or ~/.kube/config)")
    calibration.set_defaults(func=_cmd_calibration)

    plugins = sub.add_parser("plugins", help="list installed plugins (agents, patterns, actions, sinks), which are "
                             "on, and why the others are not (reads AISRE_PLUGINS_*)")
    plugins.add_argument("--group", choices=["agents", "patterns", "actions", "sinks"], help="only this registry")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument("--check", action="store_true", help="exit 1 if a plugin failed to load or lacks a prerequisite")
    plugins.set_defaults(func=_cmd_plugins)

    fleet = sub.add_parser("fleet", help="what every cluster's operator publishes to Kafka (docs/fleet.md)")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    fleet_incidents = fleet_sub.add_parser("incidents", help="the open Incidents of every tenant (cluster), like "
                                           "kubectl get incidents -A for the fleet")
    fleet_incidents.add_argument("--bootstrap", help="Kafka bootstrap servers (default: $AISRE_KAFKA_BOOTSTRAP; TLS/SASL "
                                 "from the operator's AISRE_KAFKA_* variables)")
    fleet_incidents.add_argument("-o", "--output", choices=["table", "json"], default="table")
    fleet_incidents.add_argument("--timeout", type=float, default=15.0, help="seconds to read the topics")
    fleet_incidents.set_defaults(func=_cmd_fleet_incidents)

    insights = sub.add_parser("insights", help="what the period's Incidents say: root causes, response times, actions, "
                              "forecasts (docs/insights.md)")
    insights.add_argument("--since", default="7d", help="the period, back from now: e.g. 7d, 36h, 90m (default 7d)")
    insights.add_argument("-n", "--namespace", help="one namespace (default: the context's)")
    insights.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    insights.add_argument("-o", "--output", choices=["md", "json"], default="md")
    insights.add_argument("--out", type=Path, help="write to this file (Markdown: the charts' PNGs beside it); "
                          "default: stdout, without charts")
    insights.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    insights.set_defaults(func=_cmd_insights)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _: print(__version__) or 0)
    return parser


def _cmd_fleet_incidents(args: argparse.Namespace) -> int:
    from aisre.errors import KafkaAccessDenied
    from aisre.fleet.view import client_config_from, show

    try:
        text, skipped = show(client_config_from(args.bootstrap, dict(os.environ)), args.output, args.timeout)
    except (ValueError, TimeoutError, KafkaAccessDenied) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text)
    for line in skipped[:10]:
        print(f"skipped a record that is no envelope: {line}", file=sys.stderr)
    return 0


def _cmd_insights(args: argparse.Namespace) -> int:
    import datetime as dt

    import kubernetes

    from aisre import console, insights
    from aisre.api.meta import GROUP, VERSION

    try:
        since = insights.parse_period(args.since)
    except ValueError as error:
        print(f"aisre insights: {error}", file=sys.stderr)
        return 2
    cluster = console.connect(args.kubeconfig)
    api = kubernetes.client.CustomObjectsApi(cluster.api_client)
    try:
        if args.all_namespaces:
            listed = api.list_cluster_custom_object(GROUP, VERSION, "incidents")
        else:
            listed = api.list_namespaced_custom_object(GROUP, VERSION, args.namespace or cluster.namespace, "incidents")
    except kubernetes.client.ApiException as error:
        print(f"aisre insights: cannot list incidents: {error.reason} ({error.status})", file=sys.stderr)
        return 1
    now = dt.datetime.now(dt.UTC)
    found = insights.aggregate(listed.get("items") or [], now - since, now)
    if args.output == "json":
        text = insights.render_json(found)
    else:
        charts = insights.draw_charts(found, args.out) if args.out else {}
        text = insights.render_markdown(found, charts)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
