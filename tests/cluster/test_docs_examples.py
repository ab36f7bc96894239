"""Every YAML example in the docs that is an aisre object is accepted by the real API
server (server-side dry run of an apply, so the CRD schema and its CEL rules judge it);
examples of other tools (Flux, Argo CD, kustomize) are checked as YAML only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest_helpers import REPO, temporary_namespace

DOCS = [REPO / "docs" / "policy-cookbook.md", REPO / "docs" / "quickstart.md", REPO / "docs" / "knowledge.md",
        REPO / "docs" / "notifications.md"]
RUNBOOKS = sorted((REPO / "examples" / "runbooks").glob("*.yaml"))
ROUTES = sorted((REPO / "examples" / "notifications").glob("*.yaml"))
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def examples(path: Path) -> list[tuple[str, dict]]:
    found = []
    for number, block in enumerate(BLOCK.findall(path.read_text()), 1):
        for document in yaml.safe_load_all(block):
            assert isinstance(document, dict), f"{path.name} example {number} is not a mapping"
            found.append((f"{path.name}#{number} {document.get('kind')}/{document.get('metadata', {}).get('name')}", document))
    return found


ALL = [example for path in DOCS for example in examples(path)]
AISRE = [(label, doc) for label, doc in ALL if str(doc.get("apiVersion", "")).startswith("aisre.dev/")] + [
    (f"examples/runbooks/{path.name}", yaml.safe_load(path.read_text())) for path in RUNBOOKS] + [
    (f"examples/notifications/{path.name}", yaml.safe_load(path.read_text())) for path in ROUTES]


def test_the_docs_have_examples_of_every_kind_of_tool() -> None:
    kinds = {(doc.get("apiVersion", "").split("/")[0], doc.get("kind")) for _, doc in ALL}
    assert {("aisre.dev", "RemediationPolicy"), ("aisre.dev", "Investigation"), ("source.toolkit.fluxcd.io", "GitRepository"),
            ("kustomize.toolkit.fluxcd.io", "Kustomization"), ("argoproj.io", "Application")} <= kinds
    assert len(AISRE) >= 10


def test_the_notification_docs_show_every_example_and_every_sink_type() -> None:
    from aisre.api.notification_route import SINK_TYPES

    shown = {json.dumps(doc, sort_keys=True) for _, doc in examples(REPO / "docs" / "notifications.md")}
    for path in ROUTES:  # docs/notifications.md shows each example file as it is
        assert json.dumps(yaml.safe_load(path.read_text()), sort_keys=True) in shown, path.name
    used = {kind for path in ROUTES for sink in yaml.safe_load(path.read_text())["spec"]["sinks"] for kind in sink if kind != "name"}
    assert used == set(SINK_TYPES)


def test_the_starter_runbooks_cover_every_fault_category() -> None:
    from aisre.api.taxonomy import RootCauseCategory

    covered = {c for path in RUNBOOKS for c in yaml.safe_load(path.read_text())["spec"]["match"].get("categories") or []}
    assert covered == {c.value for c in RootCauseCategory} - {"NoFault"}


@pytest.fixture(scope="module")
def ns(kubectl, crds) -> Iterator[str]:
    with temporary_namespace(kubectl, "aisre-plugin-docs-") as name:
        yield name


@pytest.mark.parametrize("label, document", AISRE, ids=[label for label, _ in AISRE])
def test_aisre_example_is_accepted_by_the_api_server(kubectl, ns, label: str, document: dict) -> None:
    body = json.loads(json.dumps(document))
    body["metadata"].pop("namespace", None)  # every example goes into the test's namespace
    result = kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode == 0, f"{label}: {result.stderr}"
    assert "(server dry run)" in result.stdout
