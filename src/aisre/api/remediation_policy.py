"""The RemediationPolicy kind: what aisre may repair, how far (observe → suggest →
dryRun → approve → auto), within which bounds, limits and windows, and who approves.

Policies live in Git; the operator never writes their spec, only their status. No
matching policy means observe only.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from aisre.api.meta import (
    AGE_COLUMN,
    DNS1123_LABEL,
    bounded_duration,
    KubeModel,
    ObservedStatus,
    LabelSelector,
    ResourceRef,
    cel,
    printer_column,
    validations,
)
from aisre.api.taxonomy import ActionType, RemediationMode, TargetKind

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Cooldown = bounded_duration("24h")
VerificationTimeout = bounded_duration("1h", "1s")
ApprovalExpiry = bounded_duration("168h", "1m")


class PolicyTargets(KubeModel):
    """Which objects the policy governs; every field narrows, empty means all in the
    policy's namespace."""

    namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS1123_LABEL)]] | None = Field(
        None,
        max_length=64,
        description="Namespaces governed; the policy's own namespace when empty. "
        "Only a policy in the operator's namespace may name others.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    selector: LabelSelector | None = Field(None, description="Labels the target workload must carry.")
    kinds: list[TargetKind] | None = Field(
        None, max_length=8, description="Kinds governed; all when empty.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class ActionRule(KubeModel):
    """The mode for one action type."""

    type: ActionType = Field(..., description="The action from the catalog.")
    mode: RemediationMode | None = Field(
        None, description="observe, suggest, dryRun, approve or auto; the policy's spec.mode when omitted.")
    predicted_mode: RemediationMode | None = Field(
        None, description="The mode for this action on a Predicted Incident (a forecast failure, nothing failed yet); "
        "observe when omitted: pre-emptive actions are off unless a policy allows them here.")


class ScaleBounds(KubeModel):
    """Replica bounds for the scale action."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", ".minReplicas")
        )
    )

    min_replicas: int = Field(1, ge=0, le=10000, description="Never scale below this.")
    max_replicas: int = Field(10, ge=0, le=10000, description="Never scale above this.")


class ResourceBounds(KubeModel):
    """How far setResources may change a container's requests and limits."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("!has(self.maxMemory) || quantity(self.maxMemory).compareTo(quantity('16Mi')) >= 0",
                "maxMemory must be a memory quantity of at least 16Mi", ".maxMemory")
        )
    )

    max_memory_increase_percent: int = Field(
        50, ge=1, le=1000, description="Largest memory increase in one action, in percent of the current value."
    )
    max_cpu_increase_percent: int = Field(
        50, ge=1, le=1000, description="Largest CPU increase in one action, in percent of the current value."
    )
    max_memory: str | None = Field(
        None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        description="Absolute ceiling for the memory limit setResources sets (the limit it derives from the observed "
        "peak is refused above it), e.g. 4Gi; at least 16Mi.",
    )


class ParameterBounds(KubeModel):
    """Bounds on the parameters of actions."""

    scale: ScaleBounds | None = Field(None, description="Bounds for scale.")
    resources: ResourceBounds | None = Field(None, description="Bounds for setResources.")


class Limits(KubeModel):
    """Rate, concurrency and blast-radius limits."""

    actions_per_hour: int = Field(6, ge=0, le=1000, description="Actions executed per hour under this policy, at most.")
    max_concurrent: int = Field(1, ge=1, le=100, description="Actions running at once under this policy, at most.")
    cooldown: Cooldown = Field(
        "10m", description="Quiet time after an action on a target before the next one (at most 24h).")
    min_healthy_percent: int = Field(
        50, ge=0, le=100,
        description="Share of the target's replicas that must stay healthy; an action that could take it lower is refused.",
    )


class Weekday(str, Enum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


class TimeWindowRule(KubeModel):
    """A recurring window in which actions may execute (start inclusive, end exclusive)."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel("self.start != self.end", "start and end must differ", ".end"))
    )

    days: list[Weekday] | None = Field(
        None, max_length=7, description="Days of the week; every day when empty.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    start: str = Field(..., pattern=HHMM, max_length=5, description="Start time, HH:MM.")
    end: str = Field(..., pattern=HHMM, max_length=5, description="End time, HH:MM; before start means overnight.")
    timezone: str = Field("UTC", max_length=64, description="IANA time zone, e.g. Europe/Berlin.")


class Verification(KubeModel):
    """How an executed action is checked, and what happens when it did not help."""

    timeout: VerificationTimeout = Field(
        "5m", description="Time within which the target must be healthy again (1s to 1h).")
    revert_on_failure: bool = Field(True, description="Revert the action when verification fails (where it can be).")


class Approvers(KubeModel):
    """Who may approve actions in approve mode."""

    users: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=64, description="User names, as the API server authenticates them.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    groups: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=64, description="Groups whose members may approve.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    expire_after: ApprovalExpiry = Field(
        "1h", description="How long an action waits for approval; an approval given later does not count, and the "
        "action is decided again (with a new revision to approve).")


class RemediationPolicySpec(KubeModel):
    """What may be repaired, how far, and within what limits."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(self.mode == 'approve' || (has(self.actions) && self.actions.exists(a, has(a.mode) && a.mode == 'approve')))"
                " || (has(self.approvers) && ((has(self.approvers.users) && size(self.approvers.users) > 0)"
                " || (has(self.approvers.groups) && size(self.approvers.groups) > 0)))",
                "approve mode needs at least one approver (approvers.users or approvers.groups)",
                ".approvers",
            ),
        )
    )

    targets: PolicyTargets | None = Field(None, description="Which objects the policy governs.")
    mode: RemediationMode = Field(
        RemediationMode.OBSERVE, description="Mode for the actions listed without one of their own."
    )
    actions: list[ActionRule] | None = Field(
        None,
        max_length=16,
        description="The actions allowed, each with its mode; actions not listed are denied.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    bounds: ParameterBounds | None = Field(None, description="Bounds on action parameters.")
    limits: Limits | None = Field(None, description="Rate, concurrency and blast-radius limits.")
    windows: list[TimeWindowRule] | None = Field(
        None, max_length=16, description="When actions may execute; any time when empty."
    )
    paused: bool = Field(False, description="Stop every action under this policy (decisions are still recorded).")
    verification: Verification | None = Field(None, description="How executed actions are verified.")
    approvers: Approvers | None = Field(None, description="Who may approve actions in approve mode.")
    allow_git_ops_managed: bool = Field(
        False,
        description="Allow direct changes to objects managed by Argo CD or Flux; otherwise those stay suggest-only, "
        "because the GitOps controller would revert the patch.",
    )


class LastAction(KubeModel):
    """The most recent action decided under this policy."""

    id: str = Field(..., max_length=64, description="Action id.")
    type: ActionType = Field(..., description="The action.")
    target: ResourceRef = Field(..., description="Its target.")
    decision: str = Field(..., max_length=64, description="The decision.")
    at: dt.datetime = Field(..., description="When.")


class RemediationPolicyStatus(ObservedStatus):
    """How the policy is being applied. Written by the operator only."""

    actions_summary: str | None = Field(None, max_length=512, description="The allowed actions and modes, for display.")
    executed_last_hour: int = Field(0, ge=0, description="Actions executed in the last hour.")
    decisions_total: int = Field(0, ge=0, description="Decisions made under this policy.")
    last_action: LastAction | None = Field(None, description="The most recent decision.")


class RemediationPolicy(KubeModel):
    """RemediationPolicy says which repairs aisre may make, in which mode, within which
    bounds, limits and time windows, and who may approve them. Kept in Git."""

    KIND: ClassVar[str] = "RemediationPolicy"
    PLURAL: ClassVar[str] = "remediationpolicies"
    SHORT_NAMES: ClassVar[list[str]] = ["rpol"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        printer_column("Mode", ".spec.mode"),
        printer_column("Actions", ".status.actionsSummary"),
        printer_column("Paused", ".spec.paused", "boolean"),
        AGE_COLUMN,
    ]

    spec: RemediationPolicySpec
    status: RemediationPolicyStatus | None = None
