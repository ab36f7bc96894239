"""kubectl-aisre without a cluster: argument parsing, kubectl-style names, the
Investigation it would create, the explanation it prints and kubectl-like errors."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import pytest
import yaml

from aisre import console
from aisre.kubectl_plugin import build_parser, main
from aisre.report import explanation, render_explanation


@pytest.mark.parametrize("text, kind, api_version", [
    ("deploy/checkout", "Deployment", "apps/v1"),
    ("deployment/checkout", "Deployment", "apps/v1"),
    ("deployments.apps/checkout", "Deployment", "apps/v1"),
    ("Deployment/checkout", "Deployment", "apps/v1"),
    ("sts/checkout", "StatefulSet", "apps/v1"),
    ("statefulset/checkout", "StatefulSet", "apps/v1"),
    ("ds/checkout", "DaemonSet", "apps/v1"),
    ("rs/checkout", "ReplicaSet", "apps/v1"),
    ("job/checkout", "Job", "batch/v1"),
    ("jobs.batch/checkout", "Job", "batch/v1"),
    ("po/checkout", "Pod", "v1"),
    ("pod/checkout", "Pod", "v1"),
    ("svc/checkout", "Service", "v1"),
    ("service/checkout", "Service", "v1"),
    ("node/checkout", "Node", "v1"),
    ("no/checkout", "Node", "v1"),
])
def test_kubectl_kinds_map_to_the_investigation_target(text: str, kind: str, api_version: str) -> None:
    target, name = console.target_ref(text)
    assert (target.kind, target.api_version, name) == (kind, api_version, "checkout")
    body = console.investigation_body(target, name)
    assert body["spec"]["target"] == {"apiVersion": api_version, "kind": kind, "name": "checkout"}
    assert body["metadata"] == {"generateName": "checkout-"}
    assert body["apiVersion"] == "aisre.dev/v1alpha1" and body["kind"] == "Investigation"


@pytest.mark.parametrize("text", ["configmap/x", "deploy", "deploy/", "/x", "deploy/a/b", "secret/x"])
def test_what_cannot_be_investigated_is_a_usage_error(text: str) -> None:
    with pytest.raises(console.UsageError):
        console.target_ref(text)


@pytest.mark.parametrize("text, plural", [
    ("investigation/a", "investigations"), ("inv/a", "investigations"), ("investigations.aisre.dev/a", "investigations"),
    ("incident/a", "incidents"), ("inc/a", "incidents"), ("Incidents/a", "incidents"),
])
def test_aisre_kinds_by_every_kubectl_name(text: str, plural: str) -> None:
    assert console.aisre_ref(text) == (plural, "a")


def test_approve_takes_incidents_only() -> None:
    assert console.aisre_ref("inc/a", ("incidents",)) == ("incidents", "a")
    with pytest.raises(console.UsageError, match="incident/NAME"):
        console.aisre_ref("inv/a", ("incidents",))


def test_spec_options_are_validated_by_the_model() -> None:
    target, name = console.target_ref("deploy/checkout")
    body = console.investigation_body(target, name, question="why?", agents=["workloads", "logs"], lookback="30m",
                                      deadline_seconds=60, object_name="checkout-1")
    assert body["metadata"] == {"name": "checkout-1"}
    spec = body["spec"]
    assert spec["question"] == "why?" and spec["agents"] == ["workloads", "logs"]
    assert spec["window"] == {"lookback": "30m"} and spec["deadlineSeconds"] == 60
    with pytest.raises(console.UsageError):
        console.investigation_body(target, name, lookback="yesterday")
    with pytest.raises(console.UsageError):
        console.investigation_body(target, name, deadline_seconds=0)


def test_generated_names_stay_valid_for_long_targets() -> None:
    target, _ = console.target_ref("deploy/x")
    body = console.investigation_body(target, "a" * 60 + "-b")
    assert len(body["metadata"]["generateName"]) <= 54 and body["metadata"]["generateName"].endswith("a-")


@pytest.mark.parametrize("text, seconds", [("120s", 120), ("2m", 120), ("1h30m", 5400), ("45", 45), ("1.5s", 1.5)])
def test_timeouts_in_kubectl_durations(text: str, seconds: float) -> None:
    assert console.parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "3x", "m", "1d"])
def test_bad_timeouts(text: str) -> None:
    with pytest.raises(console.UsageError):
        console.parse_timeout(text)


def test_parser_takes_kubectl_flags() -> None:
    args = build_parser().parse_args(["investigate", "deploy/checkout", "-n", "shop", "--question", "why?", "--agents",
                                      "workloads,events", "--agents", "logs", "--wait", "--timeout", "90s", "-o", "json",
                                      "--kubeconfig", "/k", "--context", "prod"])
    assert (args.target, args.namespace, args.question, args.wait, args.timeout, args.output) == (
        "deploy/checkout", "shop", "why?", True, "90s", "json")
    assert args.agents == ["workloads,events", "logs"] and (args.kubeconfig, args.context) == ("/k", "prod")
    args = build_parser().parse_args(["get", "incidents", "-A"])
    assert args.all_namespaces and args.kind == "incidents"
    args = build_parser().parse_args(["approve", "incident/x", "scale-1", "--namespace", "shop"])
    assert (args.object, args.action_id, args.namespace) == ("incident/x", "scale-1", "shop")
    for command in ("explain", "report"):
        assert build_parser().parse_args([command, "inv/x", "-o", "yaml"]).output == "yaml"


def test_usage_errors_exit_1_on_stderr(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["investigate", "deploy/x", "-o", "wide"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith("error: argument -o/--output: invalid choice")


def kubeconfig_file(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "shop"}},
                     {"name": "plain", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_namespace_comes_from_the_context(tmp_path: Path) -> None:
    path = str(kubeconfig_file(tmp_path))
    assert console.connect(path).namespace == "shop"
    assert console.connect(path, "plain").namespace == "default"
    assert console.connect(path, "dev").api_client.configuration.host == "https://127.0.0.1:1"


def test_an_unknown_context_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["get", "inc", "--kubeconfig", str(kubeconfig_file(tmp_path)), "--context", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_an_unreachable_server_says_so(tmp_path: Path, capsys) -> None:
    assert main(["explain", "inv/x", "--kubeconfig", str(kubeconfig_file(tmp_path))]) == 1
    assert capsys.readouterr().err.startswith("Unable to connect to the server")


def test_api_errors_read_like_kubectl() -> None:
    body = json.dumps({"kind": "Status", "reason": "NotFound", "message": 'investigations.aisre.dev "x" not found'})
    error = kubernetes.client.ApiException(status=404, reason="Not Found", body=body)
    assert console.api_error_message(error) == 'Error from server (NotFound): investigations.aisre.dev "x" not found'
    assert console.api_error_message(kubernetes.client.ApiException(status=500, reason="Internal")) == \
        "Error from server (Internal): Internal"
    assert console.api_error_message(console.not_found('incident "i" has no Investigation yet')) == \
        'Error from server (NotFound): incident "i" has no Investigation yet'


INVESTIGATION = {
    "metadata": {"name": "checkout-1", "namespace": "shop"},
    "spec": {"target": {"kind": "Deployment", "name": "checkout"}},
    "status": {
        "state": "Completed", "target": "Deployment/checkout",
        "rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "checkout"}, "confidence": 0.9,
                      "summary": "the image does not exist"},
        "hypotheses": [
            {"category": "BadImage", "resource": {"kind": "Deployment", "name": "checkout"}, "confidence": 0.9,
             "summary": "the image does not exist", "evidenceIds": ["wor-1", "eve-2", "gone-3"]},
            {"category": "ApplicationError", "resource": {"kind": "Deployment", "name": "checkout"}, "confidence": 0.2,
             "summary": "it crashes", "evidenceIds": [], "source": "llm"},
        ],
        "evidence": [
            {"id": "wor-1", "agent": "workloads", "kind": "ContainerWaiting", "summary": "ImagePullBackOff"},
            {"id": "eve-2", "agent": "events", "kind": "EventGroup", "summary": "Failed to pull image"},
        ],
    },
}


def test_explanation_lists_hypotheses_with_their_evidence() -> None:
    data = explanation(INVESTIGATION)
    assert [h["category"] for h in data["hypotheses"]] == ["BadImage", "ApplicationError"]
    assert data["hypotheses"][0]["evidence"][:2] == [
        {"id": "wor-1", "agent": "workloads", "kind": "ContainerWaiting", "summary": "ImagePullBackOff"},
        {"id": "eve-2", "agent": "events", "kind": "EventGroup", "summary": "Failed to pull image"}]
    assert data["hypotheses"][0]["evidence"][2]["id"] == "gone-3" and data["hypotheses"][0]["evidence"][2]["agent"] is None
    assert data["hypotheses"][1]["source"] == "llm"
    json.dumps(data)  # -o json
    text = render_explanation(data)
    assert "Root cause: BadImage on Deployment/checkout (confidence 0.90)" in text
    assert "1. BadImage on Deployment/checkout  confidence 0.90  (ranking)" in text
    assert "2. ApplicationError" in text and "evidence: none cited" in text
    for line in ("wor-1", "workloads", "ImagePullBackOff", "eve-2", "gone-3", "(cut from the status)"):
        assert line in text


def test_explanation_of_a_pending_investigation() -> None:
    data = explanation({"metadata": {"name": "x", "namespace": "shop"}, "spec": INVESTIGATION["spec"]})
    assert data["state"] == "Pending" and data["hypotheses"] == []
    assert "No hypotheses yet." in render_explanation(data)
