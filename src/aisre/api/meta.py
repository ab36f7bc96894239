"""Shared building blocks of the aisre API: the base model, references, selectors,
conditions and durations. Every CRD model in ``aisre.api`` is made of these.

The models are the one source of truth for the CRDs (see ``aisre.api.crd``): field
descriptions become ``kubectl explain`` text, constraints become OpenAPI validation, and
``x-kubernetes-validations`` entries become CEL rules the API server enforces.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Any

import re

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "aisre.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# metav1.Condition's reason pattern: CamelCase, no spaces.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# A Go-style duration restricted to what people write in policies: 30s, 5m, 1h30m. At
# most three parts of at most six digits, so no value overflows a duration (99999999999999h
# would, in Go's parser and in Python's timedelta alike).
DURATION_PATTERN = r"^([0-9]{1,6}(s|m|h)){1,3}$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def duration_seconds(text: str) -> int:
    """Seconds of a duration in DURATION_PATTERN's syntax (``1h30m`` → 5400)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration like 30s, 5m or 1h30m (at most three parts of six digits): {text!r}")
    return sum(int(number) * {"s": 1, "m": 60, "h": 3600}[unit] for number, unit in re.findall(r"([0-9]+)([smh])", text))


def bounded_duration(maximum: str, minimum: str = "0s") -> Any:
    """A duration field bounded on both sides, checked by pydantic and, through a CEL rule
    in the CRD, by the API server at ``kubectl apply``."""
    low, high = duration_seconds(minimum), duration_seconds(maximum)

    def check(value: str) -> str:
        if not low <= duration_seconds(value) <= high:
            raise ValueError(f"{value} is outside [{minimum}, {maximum}]")
        return value

    return Annotated[str, Field(
        pattern=DURATION_PATTERN, max_length=32, examples=["30s", "5m", "1h30m"],
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": f"duration(self) >= duration('{minimum}') && duration(self) <= duration('{maximum}')",
            "message": f"must be between {minimum} and {maximum}"}]}), AfterValidator(check)]


Duration = bounded_duration("168h")


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule for ``x-kubernetes-validations``."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """Model-level ``json_schema_extra`` carrying CEL rules."""
    return {"x-kubernetes-validations": list(rules)}


class KubeModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored when reading, so an older operator can read objects
    written by a newer one (the API server prunes unknown fields on write anyway).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=True,
    )

    def to_kube(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no unset fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectReference(KubeModel):
    """A Kubernetes object, named by kind and name (and namespace where it matters)."""

    api_version: str | None = Field(
        None, max_length=253, description="API group/version of the object, e.g. apps/v1."
    )
    kind: str = Field(
        ...,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Kind of the object, e.g. Deployment.",
    )
    name: str = Field(..., min_length=1, max_length=253, description="Name of the object.")
    namespace: str | None = Field(
        None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace of the object; empty for cluster-scoped objects "
        "or to mean the namespace of the referring object.",
    )

    def display(self) -> str:
        return f"{self.kind}/{self.name}"


class LocalObjectReference(KubeModel):
    """An object of a known kind in the same namespace, named only."""

    name: str = Field(..., min_length=1, max_length=253, description="Name of the object.")


class SelectorOperator(str, Enum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(KubeModel):
    """One requirement of a label selector, as in metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
            )
        )
    )

    key: str = Field(..., min_length=1, max_length=317, description="The label key.")
    operator: SelectorOperator = Field(..., description="How the key relates to the values.")
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        None, max_length=64, description="Values for In and NotIn."
    )


class LabelSelector(KubeModel):
    """Selects objects by their labels, as metav1.LabelSelector; empty matches everything."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        None, max_length=64, description="Labels an object must carry, key to value."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, max_length=32, description="Set-based requirements, all of which must hold."
    )


class ConditionStatus(str, Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(KubeModel):
    """One aspect of the object's state, shaped like metav1.Condition."""

    type: str = Field(
        ..., max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$", description="Type of the condition, CamelCase."
    )
    status: ConditionStatus = Field(..., description="True, False or Unknown.")
    reason: str = Field(
        ..., min_length=1, max_length=1024, pattern=REASON_PATTERN,
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    last_transition_time: dt.datetime = Field(
        ..., description="When the status last changed."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this condition was set for."
    )


class ObservedStatus(KubeModel):
    """What every aisre status starts with: the generation processed and the conditions."""

    observed_generation: int | None = Field(None, ge=0, description="The generation last processed.")
    conditions: list[Condition] | None = Field(
        None,
        max_length=16,
        description="Current conditions, one per type (Accepted, ...), shaped like metav1.Condition.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ResourceRef(KubeModel):
    """The object a person must change, as kind, name and (optional) namespace."""

    kind: str = Field(..., min_length=1, max_length=63, description="Kind, e.g. Deployment or Node.")
    name: str = Field(..., min_length=1, max_length=253, description="Name of the object.")
    namespace: str | None = Field(None, max_length=63, description="Namespace, empty for cluster-scoped kinds.")

    def display(self) -> str:
        return f"{self.kind}/{self.name}"


class TimelineEntry(KubeModel):
    """One dated step in the life of an object, for people reading its status."""

    time: dt.datetime = Field(..., description="When it happened.")
    event: str = Field(..., max_length=128, description="What happened, in a few words (CamelCase).")
    message: str = Field("", max_length=1024, description="Detail.")


def printer_column(
    name: str, json_path: str, type_: str = "string", description: str = "", priority: int = 0
) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": json_path}
    if description:
        col["description"] = description
    if priority:
        col["priority"] = priority
    return col


AGE_COLUMN = printer_column("Age", ".metadata.creationTimestamp", "date")
