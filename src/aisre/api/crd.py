"""CustomResourceDefinitions generated from the pydantic models.

Pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses
``$ref``/``$defs``, ``anyOf`` with ``null`` for optional fields, titles and ``examples``,
and ``additionalProperties: true`` for free-form maps. ``structural_schema`` rewrites it
into what the API server accepts, keeping descriptions (``kubectl explain``), enums,
bounds, defaults and the CEL rules declared on the models.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from aisre.api.incident import Incident
from aisre.api.investigation import Investigation
from aisre.api.meta import GROUP, VERSION, KubeModel
from aisre.api.notification_route import NotificationRoute
from aisre.api.remediation_policy import RemediationPolicy
from aisre.api.runbook import Runbook

KINDS: tuple[type[KubeModel], ...] = (Incident, Investigation, RemediationPolicy, Runbook, NotificationRoute)
CATEGORY = "aisre"

# Keys of JSON Schema that Kubernetes' JSONSchemaProps either lacks or that we drop.
_DROPPED_KEYS = {"title", "examples", "$defs"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every $ref and rewrite pydantic idioms into structural-schema ones."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = copy.deepcopy(target)
        # The field's own description and default win over the referenced type's.
        merged.update(node)
        node = merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**_resolve(inner, defs), **node}
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) == 1:
            del node["anyOf"]
            node = {**_resolve(variants[0], defs), **node}
    if node.get("default", "absent") is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is True or (
        node.get("type") == "object" and node.get("additionalProperties") == {}
    ):
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    if isinstance(node.get("description"), str):
        # Docstrings wrap lines; kubectl explain wraps text itself.
        node["description"] = " ".join(node["description"].split())
    for key in list(node):
        if key in _DROPPED_KEYS:
            del node[key]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            out[key] = _resolve(value, defs)
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    return out


def structural_schema(model: type[KubeModel]) -> dict[str, Any]:
    """The openAPIV3Schema of one kind, from its pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema = _resolve(raw, defs)
    schema["properties"] = {
        "apiVersion": {"type": "string", "description": "APIVersion of this object: aisre.dev/v1alpha1."},
        "kind": {"type": "string", "description": f"Kind of this object: {model.KIND}."},  # type: ignore[attr-defined]
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    schema["required"] = ["spec"]
    return schema


def custom_resource_definition(model: type[KubeModel]) -> dict[str, Any]:
    kind: str = model.KIND  # type: ignore[attr-defined]
    plural: str = model.PLURAL  # type: ignore[attr-defined]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "aisre", "app.kubernetes.io/part-of": "aisre"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(model.SHORT_NAMES),  # type: ignore[attr-defined]
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(model.PRINTER_COLUMNS),  # type: ignore[attr-defined]
                    "schema": {"openAPIV3Schema": structural_schema(model)},
                }
            ],
        },
    }


def crd_filename(model: type[KubeModel]) -> str:
    return f"{GROUP}_{model.PLURAL}.yaml"  # type: ignore[attr-defined]


def render_crds() -> dict[str, str]:
    """File name → YAML text for every kind, deterministic so drift is a plain diff."""
    header = "# Generated from the pydantic models in aisre.api by `aisre crds`. Do not edit.\n"
    return {
        crd_filename(model): header
        + yaml.safe_dump(custom_resource_definition(model), sort_keys=False, width=100, allow_unicode=True)
        for model in KINDS
    }
