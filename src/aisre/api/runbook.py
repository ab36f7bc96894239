"""The Runbook kind: a team's runbook kept in Git — what it applies to, what a person
should check and do, and which catalog actions it proposes.

The operator never writes a Runbook's spec. A Runbook applies to Investigations in its own
namespace; one in the operator's namespace applies cluster-wide. Its actions are
proposals only: the RemediationPolicy decides whether any of them runs.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from aisre.api.meta import AGE_COLUMN, KubeModel, LabelSelector, ObservedStatus, cel, printer_column, validations
from aisre.api.taxonomy import ActionType, RootCauseCategory

ShortText = Annotated[str, Field(min_length=1, max_length=128)]


class RunbookMatch(KubeModel):
    """When the runbook applies. Every field given must hold (a list holds when any of its
    entries does); at least one field must be given."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("has(self.categories) || has(self.kinds) || has(self.selector) || has(self.signalReasons)"
                " || has(self.logContains)",
                "match needs at least one of categories, kinds, selector, signalReasons, logContains"),
        )
    )

    categories: list[RootCauseCategory] | None = Field(
        None, min_length=1, max_length=25, description="Root-cause categories it is written for.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    kinds: list[Annotated[str, Field(max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$")]] | None = Field(
        None, min_length=1, max_length=16,
        description="Kinds of the root cause's resource (Deployment, ConfigMap, Node, ...).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    selector: LabelSelector | None = Field(
        None, description="Labels the root cause's resource must carry.")
    signal_reasons: list[ShortText] | None = Field(
        None, min_length=1, max_length=32,
        description="Reasons of the evidence (OOMKilled, CrashLoopBackOff, FailedMount, a log signature such as "
        "connection-refused, an evidence kind such as ImagePullFailed); any one of them, case-insensitive.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    log_contains: list[Annotated[str, Field(min_length=3, max_length=200)]] | None = Field(
        None, min_length=1, max_length=16,
        description="Text a log template or log line in the evidence contains (plain text, case-insensitive; "
        "no regular expressions, so no pattern can stall the operator).",
    )


class RunbookLink(KubeModel):
    """A link for the person on call: a dashboard, a design doc, the team's channel."""

    title: ShortText = Field(..., description="What the link is.")
    url: str = Field(..., max_length=2048, pattern=r"^https?://", description="The address (http or https).")


class RunbookAction(KubeModel):
    """An action from the catalog the runbook proposes, on the root cause's resource."""

    type: ActionType = Field(..., description="The action from the catalog.")
    parameters: dict[str, Any] | None = Field(
        None, description="Typed parameters of the action (e.g. replicas).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    reason: str = Field("", max_length=512, description="Why the runbook proposes it.")


class RunbookSpec(KubeModel):
    """A runbook: what it matches, the steps for a person, links, proposed actions."""

    title: str = Field(..., min_length=1, max_length=200, description="One line: what this runbook is for.")
    description: str | None = Field(None, max_length=4000, description="Background in Markdown, optional.")
    match: RunbookMatch = Field(..., description="When the runbook applies to an Investigation's root cause.")
    steps: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        ..., min_length=1, max_length=20, description="What a person should check and do, in order; Markdown.")
    links: list[RunbookLink] | None = Field(None, max_length=10, description="Links for the person on call.")
    actions: list[RunbookAction] | None = Field(
        None, max_length=5,
        description="Catalog actions the runbook proposes on the root cause's resource; the RemediationPolicy "
        "decides whether any of them runs.",
    )
    priority: int = Field(
        0, ge=-100, le=100,
        description="Among runbooks that match equally well, higher comes first (a team's own before the starter set).")


class RunbookStatus(ObservedStatus):
    """Reserved for the operator (the chart's status-writers policy admits no one else);
    the operator reads Runbooks and writes nothing into them today."""


class Runbook(KubeModel):
    """Runbook is a team's runbook for a kind of root cause: Investigations that match it list
    it, its steps are printed under the root cause, and its actions go to the policy."""

    KIND: ClassVar[str] = "Runbook"
    PLURAL: ClassVar[str] = "runbooks"
    SHORT_NAMES: ClassVar[list[str]] = ["rb"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        printer_column("Title", ".spec.title"),
        printer_column("Categories", ".spec.match.categories", description="Root-cause categories it is written for."),
        printer_column("Priority", ".spec.priority", "integer", priority=1),
        AGE_COLUMN,
    ]

    spec: RunbookSpec
    status: RunbookStatus | None = None
