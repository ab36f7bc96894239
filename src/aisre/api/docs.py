"""The CRD reference (docs/crd-reference.md), generated from the pydantic models.

The same models generate the CRDs (``aisre.api.crd``), so the reference says what the API
server enforces: field names on the wire, types, defaults, bounds, patterns, enums and the
CEL rules. ``aisre docs`` writes it; ``aisre docs --check`` (and a unit test) fails when
the committed file is stale.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aisre.api.crd import KINDS
from aisre.api.meta import API_VERSION, KubeModel

HEADER = """<!-- Generated from the pydantic models in src/aisre/api by `make docs` (aisre docs). Do not edit. -->

# CRD reference

Group `aisre.dev`, version `v1alpha1`; every kind is namespaced and has a status
subresource that only the operator writes. `kubectl explain <kind>.spec` shows the same
descriptions from the cluster. Types are linked where they are first described; a field is
**required** where marked, optional otherwise. CEL rules are enforced by the API server at
`kubectl apply`.
"""


def _anchor(name: str) -> str:
    return name.lower()


def _text(description: str | None) -> str:
    return " ".join((description or "").split()).replace("|", "\\|")


def _unwrap(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema without pydantic's ``anyOf: [X, null]``."""
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        return {**{k: v for k, v in prop.items() if k != "anyOf"}, **variants[0]}
    return prop


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type(schema: dict[str, Any], defs: dict[str, Any], found: list[str]) -> str:
    """The field's type in words, linking (and collecting) the named types it uses."""
    name = _ref_name(schema)
    if name:
        if name not in found:
            found.append(name)
        target = defs[name]
        if "enum" in target:
            return f"[{name}](#{_anchor(name)}) (string)"
        return f"[{name}](#{_anchor(name)})"
    kind = schema.get("type")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}), defs, found)}"
    if kind == "object" or "additionalProperties" in schema:
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"map[string]{_type(values, defs, found)}"
        return "object (free-form)"
    if schema.get("format") == "date-time":
        return "string (RFC 3339 time)"
    return {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}.get(kind or "", "any")


def _constraints(schema: dict[str, Any]) -> list[str]:
    notes = []
    for key, label in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in schema:
            notes.append(f"{label} {schema[key]}")
    for key, label in (("minLength", "min length"), ("maxLength", "max length"), ("minItems", "min items"),
                       ("maxItems", "max items"), ("maxProperties", "max entries")):
        if key in schema:
            notes.append(f"{label} {schema[key]}")
    items = schema.get("items") or {}
    for key, label in (("maxLength", "each max length"),):
        if key in items:
            notes.append(f"{label} {items[key]}")
    if "pattern" in schema:
        notes.append(f"pattern `{schema['pattern']}`")
    if "enum" in schema:
        notes.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if schema.get("x-kubernetes-list-type") == "set":
        notes.append("a set (no duplicates)")
    if schema.get("x-kubernetes-list-type") == "map":
        notes.append("a map keyed by " + ", ".join(f"`{k}`" for k in schema.get("x-kubernetes-list-map-keys", [])))
    return notes


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    return f"`{json.dumps(prop['default'], ensure_ascii=False)}`"


def _type_section(name: str, schema: dict[str, Any], defs: dict[str, Any], found: list[str],
                  describe: bool = True) -> list[str]:
    lines = [f"### {name}", ""]
    if describe and schema.get("description"):
        lines += [_text(schema["description"]), ""]
    if "enum" in schema:
        lines += ["A string, one of: " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
        return lines
    required = set(schema.get("required", []))
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    for field, raw in schema.get("properties", {}).items():
        prop = _unwrap(raw)
        notes = _constraints(prop)
        description = _text(prop.get("description"))
        if notes:
            description += f" _({'; '.join(notes)})_".replace("|", "\\|")
        mark = " **required**" if field in required else ""
        lines.append(f"| `{field}`{mark} | {_type(prop, defs, found)} | {_default(prop)} | {description.strip()} |")
    rules = schema.get("x-kubernetes-validations") or []
    if rules:
        lines += ["", "Validation rules (CEL):", ""]
        lines += [f"- `{r['rule']}`: {r['message']}" for r in rules]
    lines.append("")
    return lines


def _kind_section(model: type[KubeModel], documented: set[str]) -> list[str]:
    kind: str = model.KIND  # type: ignore[attr-defined]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    lines = [f"## {kind}", "", _text(model.__doc__), ""]
    lines += [f"- `apiVersion: {API_VERSION}`, `kind: {kind}`",
              f"- plural `{model.PLURAL}`, short names {', '.join(f'`{s}`' for s in model.SHORT_NAMES)}"  # type: ignore[attr-defined]
              ", category `aisre` (`kubectl get aisre`)",
              "- printer columns: " + ", ".join(
                  f"{c['name']} (`{c['jsonPath']}`)" for c in model.PRINTER_COLUMNS),  # type: ignore[attr-defined]
              ""]
    found: list[str] = []
    lines += _type_section(kind, schema, defs, found, describe=False)
    # Breadth-first over the types it uses; a type shared with an earlier kind links back.
    index = 0
    while index < len(found):
        name = found[index]
        index += 1
        if name in documented:
            continue
        documented.add(name)
        lines += _type_section(name, defs[name], defs, found)
    return lines


def render_crd_reference() -> str:
    lines = [HEADER]
    lines += ["Kinds: " + ", ".join(f"[{m.KIND}](#{_anchor(m.KIND)})" for m in KINDS) + ".", ""]  # type: ignore[attr-defined]
    documented: set[str] = set()
    for model in KINDS:
        lines += _kind_section(model, documented)
    text = "\n".join(lines).rstrip() + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)
