"""``kubectl-aisre``: the kubectl plugin. On the PATH, ``kubectl aisre …`` runs it.

    kubectl aisre investigate deploy/checkout -n shop [--question …] [--agents …] [--wait] [--timeout 120s]
    kubectl aisre explain investigation/NAME|incident/NAME -n NS     the hypotheses and the evidence they cite
    kubectl aisre report investigation/NAME|incident/NAME -n NS      the Markdown report
    kubectl aisre approve incident/NAME ACTION_ID -n NS              approve an action, as the current user
    kubectl aisre get incidents|investigations|remediationpolicies [-A]

Thin on purpose: argparse, then ``aisre.console`` (shared with the ``aisre`` command) and
printing. kubectl's conventions: ``-n``, ``-A``, ``-o yaml|json``, ``--kubeconfig``,
``--context``, the context's namespace by default, errors on stderr as
``Error from server (Reason): …`` or ``error: …`` and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

import kubernetes
import urllib3
import yaml

from aisre import __version__, console
from aisre.api.taxonomy import AgentName
from aisre.report import explanation, render_explanation


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}\nSee '{self.prog} --help' for usage.\n")


def _output(obj: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(obj, indent=4, ensure_ascii=False))
    else:
        print(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), end="")


def _ns(args: argparse.Namespace, cluster: console.Cluster) -> str:
    return args.namespace or cluster.namespace


def _cmd_investigate(args: argparse.Namespace, cluster: console.Cluster) -> int:
    target, name = console.target_ref(args.target)
    timeout = console.parse_timeout(args.timeout)
    agents = [a.strip() for group in args.agents or [] for a in group.split(",") if a.strip()]
    unknown = sorted(set(agents) - {a.value for a in AgentName})
    if unknown:
        raise console.UsageError(f"unknown agent(s) {', '.join(unknown)}: choose from {', '.join(a.value for a in AgentName)}")
    body = console.investigation_body(target, name, question=args.question, agents=agents or None,
                                      lookback=args.lookback, deadline_seconds=args.deadline, object_name=args.name)
    namespace = _ns(args, cluster)
    console.check_target(cluster, namespace, target, name)
    created = console.create_investigation(cluster, namespace, body)
    created_name = created["metadata"]["name"]
    if not args.wait:
        if args.output:
            _output(created, args.output)
        else:
            print(f"investigation.aisre.dev/{created_name} created")
        return 0
    if not args.output:
        print(f"investigation.aisre.dev/{created_name} created", flush=True)
    done = console.wait_investigation(cluster, namespace, created_name, timeout)
    if done is None:
        print(f"error: timed out after {args.timeout} waiting for investigation/{created_name} to complete",
              file=sys.stderr)
        return 1
    if args.output:
        _output(done, args.output)
    else:
        status = done.get("status") or {}
        root = status.get("rootCause")
        print(f"State:       {status.get('state')}")
        if root:
            resource = root.get("resource") or {}
            print(f"Root cause:  {root['category']} on {resource.get('kind')}/{resource.get('name')}")
            print(f"Confidence:  {root.get('confidence', 0):.2f}")
            print(f"Summary:     {root.get('summary', '')}")
            print(f"Explain:     kubectl aisre explain investigation/{created_name} -n {namespace}")
    if console.state_of(done) == "Failed":
        print(f"error: investigation/{created_name} failed: {console.failure_message(done)}", file=sys.stderr)
        return 1
    return 0


def _cmd_explain(args: argparse.Namespace, cluster: console.Cluster) -> int:
    plural, name = console.aisre_ref(args.object)
    data = explanation(console.investigation_for(cluster, _ns(args, cluster), plural, name))
    if args.output:
        _output(data, args.output)
    else:
        print(render_explanation(data), end="")
    return 0


def _cmd_report(args: argparse.Namespace, cluster: console.Cluster) -> int:
    plural, name = console.aisre_ref(args.object)
    obj, text = console.report(cluster, _ns(args, cluster), plural, name)
    if args.output:
        _output(obj, args.output)
    else:
        print(text, end="")
    return 0


def _cmd_approve(args: argparse.Namespace, cluster: console.Cluster) -> int:
    from aisre.remediation.approve import approve

    _, name = console.aisre_ref(args.object, ("incidents",))
    user = approve(cluster.api_client, _ns(args, cluster), name, args.action_id, args.comment or "")
    print(f"incident.aisre.dev/{name} action {args.action_id} approved by {user}")
    return 0


_COLUMNS = {
    "incidents": [("SEVERITY", "spec.severity"), ("STATE", "status.state"), ("ROOT CAUSE", "status.rootCause.category"),
                  ("CONFIDENCE", "status.rootCause.confidence"), ("RESOURCE", "spec.resource.name")],
    "investigations": [("TARGET", "status.target"), ("STATE", "status.state"), ("ROOT CAUSE", "status.rootCause.category"),
                       ("CONFIDENCE", "status.rootCause.confidence")],
    "remediationpolicies": [("MODE", "spec.mode"), ("ACTIONS", "status.actionsSummary"), ("PAUSED", "spec.paused")],
}


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "<none>" if value is None else str(value)


def _cmd_get(args: argparse.Namespace, cluster: console.Cluster) -> int:
    plural = console.AISRE_PLURALS.get(args.kind.lower())
    if plural is None:
        raise console.UsageError(f'the server doesn\'t have a resource type "{args.kind}" in aisre.dev')
    items = console.list_objects(cluster, None if args.all_namespaces else _ns(args, cluster), plural)
    if args.output:
        _output({"apiVersion": "v1", "kind": "List", "items": items}, args.output)
        return 0
    if not items:
        where = "any namespace" if args.all_namespaces else f"{_ns(args, cluster)} namespace"
        print(f"No resources found in {where}.", file=sys.stderr)
        return 0
    header = (["NAMESPACE"] if args.all_namespaces else []) + ["NAME"] + [c for c, _ in _COLUMNS[plural]]
    rows = [([o["metadata"]["namespace"]] if args.all_namespaces else []) + [o["metadata"]["name"]]
            + [_field(o, path) for _, path in _COLUMNS[plural]] for o in items]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    common.add_argument("--context", help="kubeconfig context (default: the current context)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=["yaml", "json"], help="print the object as yaml or json")

    parser = _Parser(prog="kubectl aisre", description="aisre, the SRE inside the cluster, from kubectl.")
    parser.add_argument("--version", action="version", version=f"kubectl-aisre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inv = sub.add_parser("investigate", parents=[common, output], help="ask why an object is failing",
                         description="Create an Investigation of KIND/NAME (deploy, sts, ds, rs, job, po, svc, node).")
    inv.add_argument("target", help="what to investigate, e.g. deploy/checkout, po/checkout-7d9f-x2x, node/worker-1")
    inv.add_argument("--question", help="the question in plain words")
    inv.add_argument("--agents", action="append", help="agents to run, comma-separated or repeated (default: planned)")
    inv.add_argument("--lookback", help="how far back to look, e.g. 30m or 2h (default 1h)")
    inv.add_argument("--deadline", type=int, help="seconds the operator gives the investigation (default 30)")
    inv.add_argument("--name", help="the Investigation's name (default: generated from the target's)")
    inv.add_argument("--wait", action="store_true", help="wait for the root cause and print it")
    inv.add_argument("--timeout", default="120s", help="how long --wait waits, e.g. 90s or 5m (default 120s)")
    inv.set_defaults(func=_cmd_investigate)

    explain = sub.add_parser("explain", parents=[common, output], help="the ranked hypotheses and their evidence",
                             description="The hypotheses of an Investigation (or of an Incident's), best first, "
                             "with the evidence each cites: id, agent, kind and summary.")
    explain.add_argument("object", help="investigation/NAME or incident/NAME")
    explain.set_defaults(func=_cmd_explain)

    report = sub.add_parser("report", parents=[common, output], help="the Markdown report of an Investigation or Incident")
    report.add_argument("object", help="investigation/NAME or incident/NAME")
    report.set_defaults(func=_cmd_report)

    approve = sub.add_parser("approve", parents=[common], help="approve a recommended action of an Incident")
    approve.add_argument("object", help="incident/NAME")
    approve.add_argument("action_id", help="the action's id, from the Incident's remediation journal")
    approve.add_argument("--comment", help="why it is approved")
    approve.set_defaults(func=_cmd_approve)

    get = sub.add_parser("get", parents=[common, output], help="list incidents, investigations or remediationpolicies")
    get.add_argument("kind", help="incidents (inc), investigations (inv) or remediationpolicies (rpol)")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    get.set_defaults(func=_cmd_get)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cluster = console.connect(args.kubeconfig, args.context)
        return int(args.func(args, cluster) or 0)
    except (console.UsageError, LookupError) as error:  # LookupError: e.g. nothing awaits that approval
        print(f"error: {error}", file=sys.stderr)
    except kubernetes.client.ApiException as error:
        print(console.api_error_message(error), file=sys.stderr)
    except kubernetes.config.ConfigException as error:
        print(f"error: {error}", file=sys.stderr)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        print(f"Unable to connect to the server: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
