"""The CRDs on the real API server: good manifests are accepted, bad ones refused at
`kubectl apply` with a message naming the field, and kubectl shows and explains them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
INVALID = sorted((REPO / "tests" / "invalid").glob("*.yaml"))


def _expectations(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_accepted_and_idempotent(kubectl, namespace: str, example: Path) -> None:
    first = kubectl("apply", "-n", namespace, "-f", str(example))
    assert "created" in first.stdout
    again = kubectl("apply", "-n", namespace, "-f", str(example))
    assert "unchanged" in again.stdout


def test_there_are_enough_invalid_cases() -> None:
    assert len(INVALID) >= 5
    for path in INVALID:
        assert _expectations(path), f"{path.name} says nothing about the expected error"


@pytest.mark.parametrize("manifest", INVALID, ids=lambda p: p.name)
def test_invalid_manifests_are_refused(kubectl, namespace: str, manifest: Path) -> None:
    result = kubectl("apply", "-n", namespace, "-f", str(manifest), check=False)
    assert result.returncode != 0, f"{manifest.name} was accepted: {result.stdout}"
    assert "is invalid" in result.stderr or "Invalid value" in result.stderr or "Unsupported" in result.stderr
    for expected in _expectations(manifest):
        assert expected in result.stderr, f"{manifest.name}: {expected!r} not in {result.stderr}"


def test_kubectl_explain_teaches_the_api(kubectl, crds: None) -> None:
    out = kubectl("explain", "investigation.spec.target").stdout
    assert "The object or selector to investigate" in out
    for field in ("kind", "name", "selector"):
        assert field in out
    out = kubectl("explain", "remediationpolicy.spec.limits.minHealthyPercent").stdout
    assert "blast" in out.lower() or "healthy" in out.lower()


def test_printer_columns_and_category(kubectl, namespace: str) -> None:
    for example in EXAMPLES:
        kubectl("apply", "-n", namespace, "-f", str(example))
    headers = {
        "incidents": ["NAME", "SEVERITY", "STATE", "ROOT CAUSE", "CONFIDENCE", "AGE"],
        "investigations": ["NAME", "TARGET", "STATE", "ROOT CAUSE", "CONFIDENCE", "AGE"],
        "remediationpolicies": ["NAME", "MODE", "ACTIONS", "PAUSED", "AGE"],
    }
    for plural, columns in headers.items():
        header = kubectl("get", plural, "-n", namespace).stdout.splitlines()[0]
        positions = [header.find(column) for column in columns]
        assert -1 not in positions and positions == sorted(positions), header
    for short in ("inc", "inv", "rpol"):
        assert "No resources found" not in kubectl("get", short, "-n", namespace).stdout
    everything = kubectl("get", "aisre", "-n", namespace).stdout
    for name in ("incident.aisre.dev/checkout-crashloop", "investigation.aisre.dev/checkout-1",
                 "remediationpolicy.aisre.dev/default"):
        assert name in everything


def test_non_admin_user_is_forbidden(kubectl, user_kubeconfig: Path, namespace: str) -> None:
    result = kubectl("get", "investigations", "-n", namespace, kubeconfig=user_kubeconfig, check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    assert "aisre-dev" in result.stderr
