"""The CRDs are generated from the models, committed, and structurally sound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aisre.api.crd import KINDS, custom_resource_definition, render_crds

REPO = Path(__file__).resolve().parents[2]
GENERATED_DIRS = [REPO / "crds", REPO / "charts" / "aisre" / "crds"]


@pytest.mark.parametrize("directory", GENERATED_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_crds_match_models(directory: Path) -> None:
    rendered = render_crds()
    # Every file is one of aisre's generated CRDs: nothing else (no Kopf peering CRDs) ships.
    committed = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    assert sorted(committed) == sorted(rendered), "run `aisre crds -o crds -o charts/aisre/crds`"
    for name, text in rendered.items():
        assert committed[name] == text, f"{directory / name} is stale: run `aisre crds -o crds -o charts/aisre/crds`"


def _walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_schema_is_structural(model) -> None:
    crd = custom_resource_definition(model)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "$defs" not in text and "anyOf" not in text
    for path, node in _walk(schema):
        assert "type" in node, f"{model.KIND}{path} has no type"
        assert "title" not in node and "examples" not in node
        assert node.get("default", "x") is not None, f"{model.KIND}{path} has a null default"
        if path.startswith((".spec.", ".status.")) and path.count(".") >= 2:
            assert node.get("description") or path.endswith(("[]", "{}")), f"{model.KIND}{path} is undocumented"


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.KIND)
def test_names_and_subresources(model) -> None:
    crd = custom_resource_definition(model)
    names = crd["spec"]["names"]
    assert names["categories"] == ["aisre"]
    assert names["shortNames"] == model.SHORT_NAMES
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"


def test_enums_come_from_the_taxonomy() -> None:
    from aisre.api import Investigation, RemediationPolicy, RootCauseCategory

    inv = custom_resource_definition(Investigation)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    category = inv["properties"]["status"]["properties"]["rootCause"]["properties"]["category"]
    assert category["enum"] == [c.value for c in RootCauseCategory]
    pol = custom_resource_definition(RemediationPolicy)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    mode = pol["properties"]["spec"]["properties"]["mode"]
    assert mode["enum"] == ["observe", "suggest", "dryRun", "approve", "auto"]
    assert mode["default"] == "observe"


def test_cross_field_rules_are_cel() -> None:
    from aisre.api import Investigation

    inv = custom_resource_definition(Investigation)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    target = inv["properties"]["spec"]["properties"]["target"]
    rules = [v["rule"] for v in target["x-kubernetes-validations"]]
    assert "has(self.name) != has(self.selector)" in rules
