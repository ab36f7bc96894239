"""The Incident kind: something is wrong somewhere, since some time, this often.

Detection writes the spec (or a person does); the operator writes the status: the state,
the root cause mirrored from the Investigation, the timeline, the remediation journal and,
once resolved, the post-incident report. Approvals of recommended actions are recorded in
the spec, where the API server can check who wrote them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from aisre.api.investigation import RootCause
from aisre.api.meta import (
    AGE_COLUMN,
    KubeModel,
    ObservedStatus,
    ResourceRef,
    TimelineEntry,
    cel,
    printer_column,
    validations,
)
from aisre.api.signing import has_mark
from aisre.api.taxonomy import ActionType, RootCauseCategory, Severity


class IncidentSource(str, Enum):
    DETECTION = "detection"
    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    EXTERNAL = "external"  # signals from outside the Kubernetes API, read from Kafka (docs/fleet.md)
    MANUAL = "manual"


class SignalSummary(KubeModel):
    """A kind of signal seen for this Incident, folded: how often, first and last seen."""

    source: str = Field(..., max_length=64, description="Where the signal came from, e.g. pod, event, alertmanager.")
    reason: str = Field(..., max_length=128, description="The signal's reason, e.g. CrashLoopBackOff.")
    count: int = Field(1, ge=1, description="How many times it was seen.")
    first_seen: dt.datetime | None = Field(None, description="When it was first seen.")
    last_seen: dt.datetime | None = Field(None, description="When it was last seen.")
    message: str = Field("", max_length=1024, description="The latest message (never part of the fingerprint).")


class Approval(KubeModel):
    """An approval of one recommended action; the API server checks the approver is the
    requesting user and is allowed to approve (ValidatingAdmissionPolicy in the chart)."""

    action_id: str = Field(..., min_length=1, max_length=64, description="Id of the action in the remediation journal.")
    approved_by: str = Field(..., min_length=1, max_length=253, description="The approving user, as the API server knows them.")
    comment: str = Field("", max_length=1024, description="Why it was approved.")
    revision: str | None = Field(
        None, max_length=128,
        description="The revision of the pending action approved, as the journal shows it (status.remediations[].revision): "
        "an approval counts only for that decision on that revision of the target, before it expires.",
    )
    groups: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=32,
        description="Groups of the approver that make them an approver; the API server checks they are the "
        "requesting user's own groups.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class Verdict(str, Enum):
    CORRECT = "correct"
    WRONG = "wrong"


class Feedback(KubeModel):
    """A person's verdict on the root cause found; the API server checks ``by`` is the
    requesting user (ValidatingAdmissionPolicy in the chart)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("self.verdict == 'wrong' || (!has(self.category) && !has(self.resource))",
                "a correct verdict names no other category or resource"),
        )
    )

    verdict: Verdict = Field(..., description="correct: the root cause found is the cause; wrong: it is not.")
    category: RootCauseCategory | None = Field(None, description="For a wrong verdict: the category it really was.")
    resource: ResourceRef | None = Field(None, description="For a wrong verdict: the object that really was the cause.")
    by: str = Field(..., min_length=1, max_length=253, description="Who gave it, as the API server knows them.")
    comment: str = Field("", max_length=1024, description="Why, in a few words.")


class PagerSystem(str, Enum):
    PAGERDUTY = "pagerDuty"
    OPSGENIE = "opsgenie"


class PageRef(KubeModel):
    """A page (PagerDuty incident, Opsgenie alert) this Incident was raised from."""

    system: PagerSystem = Field(..., description="pagerDuty or opsgenie.")
    id: str = Field(..., min_length=1, max_length=128, description="The pager's id of the incident or alert.")
    key: str | None = Field(
        None, max_length=255,
        description="What resolves it through the pager's event API: PagerDuty's incident_key (the Events API v2 "
        "dedup_key), Opsgenie's alias.")
    url: str | None = Field(None, max_length=1024, description="Where people see it.")
    closed: bool = Field(False, description="The pager said it is resolved (so aisre never resolves it again).")


class ForecastModel(str, Enum):
    LINEAR_TREND = "linearTrend"
    LINEAR_TREND_DAILY = "linearTrendDailySeasonal"
    CERTIFICATE_EXPIRY = "certificateExpiry"


class ForecastFit(KubeModel):
    """How a forecast was computed: the window, the fit and its uncertainty (docs/forecasts.md)."""

    window_start: dt.datetime = Field(..., description="First sample read.")
    window_end: dt.datetime = Field(..., description="Last sample read.")
    segment_start: dt.datetime | None = Field(
        None, description="First sample used: after the last reset (log rotation, compaction) when there was one.")
    points: int = Field(..., ge=0, description="Samples in the segment used.")
    slope_per_hour: float = Field(..., description="Theil-Sen slope, in the series' unit per hour.")
    slope_low_per_hour: float = Field(..., description="Lower end of the slope's 95 % interval (Kendall's tau).")
    slope_high_per_hour: float = Field(..., description="Upper end of the slope's 95 % interval.")
    r2: float = Field(..., le=1, description="Share of the segment's variance the model explains.")
    residual_sd: float = Field(..., ge=0, description="Standard deviation of what the model does not explain.")
    resets: int = Field(0, ge=0, description="Resets (sharp falls) seen in the window.")
    seasonal_amplitude: float | None = Field(
        None, description="Peak-to-trough of the daily profile taken out, when there was enough history for one.")


def forecast_fingerprint(signal: str, home: str, resource: ResourceRef) -> str:
    """The fingerprint of a forecast's Incident: what is forecast, where the Incident lives,
    and the object to fix (structured fields only, so it is stable across sweeps)."""
    text = f"forecast|{signal}|{home}|{resource.kind}|{resource.namespace or ''}|{resource.name}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def operator_forecast(incident: Mapping[str, Any], key: bytes | None) -> bool:
    """Whether the Incident's ``spec.prediction`` is the operator's own: it carries the
    operator's mark over its fingerprint, and that fingerprint is the one the prediction's
    signal, the Incident's namespace and the resource give. A prediction anyone with edit
    rights added to an Incident is not one: ``predictedMode`` must not stand in for
    ``mode`` on their word."""
    meta, spec = incident.get("metadata") or {}, incident.get("spec") or {}
    prediction, resource = spec.get("prediction"), spec.get("resource")
    if key is None or not isinstance(prediction, Mapping) or not isinstance(resource, Mapping):
        return False
    try:
        ref = ResourceRef.model_validate(resource)
    except ValueError:
        return False
    fingerprint = spec.get("fingerprint") or ""
    return (bool(fingerprint) and has_mark(key, incident, "Incident", fingerprint)
            and forecast_fingerprint(str(prediction.get("signal") or ""), meta.get("namespace") or "", ref) == fingerprint)


class PredictedFailure(KubeModel):
    """A failure that has not happened yet: what will fail, when, how sure, and what to do first."""

    category: RootCauseCategory = Field(..., description="The root-cause category it will become, e.g. StorageFailure.")
    signal: str = Field(..., max_length=64, description="What is forecast, e.g. volumeFull, memoryLimit, quota, "
                        "certificateExpiry.")
    failure_time: dt.datetime = Field(..., description="When the limit is reached on the central forecast.")
    earliest: dt.datetime | None = Field(None, description="Early end of the interval (the slope's upper bound).")
    latest: dt.datetime | None = Field(
        None, description="Late end of the interval (the slope's lower bound); empty when that never reaches it.")
    confidence: float = Field(..., ge=0, le=1, description="Probability the limit is reached within the horizon.")
    model: ForecastModel = Field(..., description="linearTrend, linearTrendDailySeasonal or certificateExpiry.")
    series: str = Field("", max_length=1024, description="The PromQL series forecast (empty for a certificate).")
    current: float | None = Field(None, description="The model's value now, in the series' unit.")
    limit: float | None = Field(None, description="The limit it reaches, in the series' unit.")
    fit: ForecastFit | None = Field(None, description="The window, fit and uncertainty.")
    container: str | None = Field(None, max_length=253, description="The container whose series it is (memoryLimit).")
    action: ActionType | None = Field(None, description="The recommended pre-emptive action, when the catalog has one.")
    advice: str = Field("", max_length=1024, description="What to do before it fails, in words.")
    explanation: str = Field("", max_length=1024, description="The forecast in one sentence.")


class IncidentSpec(KubeModel):
    """What is wrong, where, since when and how often."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.firstSeen) || !has(self.lastSeen) || self.lastSeen >= self.firstSeen",
                "lastSeen must not be before firstSeen",
                ".lastSeen",
            ),
        )
    )

    title: str = Field(..., min_length=1, max_length=256, description="What is wrong, in a few words.")
    severity: Severity = Field(Severity.MEDIUM, description="critical, high, medium or low.")
    source: IncidentSource = Field(
        IncidentSource.MANUAL,
        description="Who raised it: detection, alertmanager, pagerduty, opsgenie, external (signals read from Kafka) "
        "or manual.")
    origin: str | None = Field(
        None, max_length=63, description="For an Incident raised from outside the cluster: the system that sent its "
        "first signal (for source external, the producer named in the Kafka envelope's tenant).")
    pages: list[PageRef] | None = Field(
        None, max_length=16, description="The pages it was raised from; resolved with it where a NotificationRoute "
        "has the pager's credentials (docs/pagers.md).")
    resource: ResourceRef = Field(..., description="The object the Incident is about (its root, not each pod).")
    affected: list[ResourceRef] | None = Field(None, max_length=50, description="Other objects affected (pods, nodes).")
    fingerprint: str | None = Field(
        None, max_length=128, pattern=r"^[a-z0-9]+$",
        description="Stable dedupe key built from structured fields only, never message text.",
    )
    signals: list[SignalSummary] | None = Field(None, max_length=32, description="Signals folded into this Incident.")
    first_seen: dt.datetime | None = Field(None, description="When the trouble was first seen.")
    last_seen: dt.datetime | None = Field(None, description="When it was last seen.")
    occurrences: int = Field(1, ge=1, description="How many signals were folded into this Incident.")
    investigate: bool = Field(True, description="Start an Investigation for this Incident.")
    prediction: PredictedFailure | None = Field(
        None, description="Set on a Predicted Incident (docs/forecasts.md): the failure forecast, not yet happened.")
    feedback: Feedback | None = Field(
        None, description="A person's verdict on the root cause (aisre feedback); the memory of past incidents and "
        "the share of confirmed root causes use it.")
    approvals: list[Approval] | None = Field(
        None,
        max_length=32,
        description="Approvals of recommended actions, one per action id.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["actionId"]},
    )


class IncidentState(str, Enum):
    PREDICTED = "Predicted"  # a forecast failure, not yet happened (spec.prediction)
    OPEN = "Open"
    INVESTIGATING = "Investigating"
    IDENTIFIED = "Identified"
    REMEDIATING = "Remediating"
    MITIGATED = "Mitigated"
    RESOLVED = "Resolved"


class Decision(str, Enum):
    """What the policy chain decided for an action."""

    DENIED = "Denied"
    OBSERVED = "Observed"
    SUGGESTED = "Suggested"
    DRY_RUN = "DryRun"
    AWAITING_APPROVAL = "AwaitingApproval"
    EXECUTE = "Execute"


class ActionResult(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REVERTED = "Reverted"
    SKIPPED = "Skipped"


class Effect(str, Enum):
    """How the state after an executed action compares with the state before it."""

    CLEARED = "Cleared"
    IMPROVED = "Improved"
    UNCHANGED = "Unchanged"
    WORSE = "Worse"


class Assessment(KubeModel):
    """Whether an executed action worked: written when its verification ends."""

    cleared: bool = Field(..., description="The fault's signal is gone: the workload rolled out, every replica "
                          "available, no new OOM kill or restart in its new pods (a drained node: the moved pods Ready again elsewhere).")
    effect: Effect = Field(..., description="Cleared, Improved, Unchanged or Worse, against the state before the action.")
    time_to_clear_seconds: int | None = Field(
        None, ge=0, description="From the start of the action to the moment the fault was seen cleared.")
    side_effects: list[Annotated[str, Field(max_length=320)]] | None = Field(
        None, max_length=10, description="Other workloads of the namespace (Kind/name) not fully available after the "
        "window that were before it.")
    detail: str = Field("", max_length=1024, description="What was compared, in words.")


class JournalEntry(KubeModel):
    """One action in the remediation journal, written before it runs and after."""

    id: str = Field(..., max_length=64, description="Id of the action.")
    type: ActionType = Field(..., description="The action from the catalog.")
    target: ResourceRef = Field(..., description="The object acted on.")
    decision: Decision = Field(..., description="The policy's decision.")
    reason: str = Field("", max_length=1024, description="Why the policy decided so (CamelCase reason, then detail).")
    policy: str | None = Field(None, max_length=253, description="The RemediationPolicy that decided.")
    approved_by: str | None = Field(None, max_length=253, description="Who approved it, when approval was needed.")
    decided_at: dt.datetime | None = Field(None, description="When the decision was made.")
    started_at: dt.datetime | None = Field(None, description="When execution started.")
    finished_at: dt.datetime | None = Field(None, description="When execution and verification ended.")
    result: ActionResult = Field(ActionResult.PENDING, description="Outcome of execution and verification.")
    detail: str = Field("", max_length=2048, description="Dry-run diff, verification result or error.")
    marker: str | None = Field(
        None, max_length=512,
        description="Value of the aisre.dev/remediation annotation sent with the change (or the deleted pod's uid); "
        "after a restart it tells whether a Running action reached the API server, so it is never run twice.",
    )
    undo: str | None = Field(
        None, max_length=4096, description="What reverts the action (JSON), recorded before it runs; empty when it cannot be reverted.",
    )
    revision: str | None = Field(
        None, max_length=128,
        description="For an action awaiting approval: what an approval must name (the target's revision, bound to this "
        "decision). A new revision replaces it when the target changes or the approval window expires.",
    )
    expires_at: dt.datetime | None = Field(None, description="For an action awaiting approval: when an approval stops counting.")
    assessment: Assessment | None = Field(
        None, description="For an executed action: did it clear the fault, how fast, with what side effects. The memory "
        "of past incidents prefers actions that cleared similar faults.")


class InvestigationRef(KubeModel):
    """The Investigation the operator created for an Incident: its name and uid. Only that
    object's recommendations are ever executed (a look-alike of the same name is not it)."""

    name: str = Field(..., min_length=1, max_length=253, description="Name of the Investigation.")
    uid: str | None = Field(None, max_length=64, description="Its uid.")


class CaseRecord(KubeModel):
    """The Incident as a case in the memory of past incidents (the index is rebuilt from these)."""

    category: str = Field(..., max_length=64, description="The root cause's category.")
    kind: str = Field("", max_length=63, description="The root cause's resource kind.")
    resource: str = Field("", max_length=320, description="The root cause's resource, Kind/name.")
    identity: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=4,
        description="Who the workload is across renames: its name without generated suffixes, its app label.")
    signature: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list, max_length=64,
        description="The evidence signature: reasons, evidence kinds, log signatures and templates, changed fields, "
        "the causal chain's shape.")
    concluded_at: dt.datetime = Field(..., description="When the root cause was found.")


class DeliveryResult(str, Enum):
    SENT = "Sent"
    FAILED = "Failed"  # gave up after retries, or the sink refused it (see error)
    RATE_LIMITED = "RateLimited"  # the route's own limit: sent later


class NotificationDelivery(KubeModel):
    """One delivery of a change of this Incident to one sink of one NotificationRoute."""

    route: str = Field(..., max_length=320, description="The NotificationRoute, namespace/name.")
    sink: str = Field(..., max_length=63, description="The sink's name in the route.")
    type: str = Field(..., max_length=32, description="The sink's type (slack, pagerDuty, ...).")
    event: str = Field(..., max_length=32, description="The change sent (Opened, Identified, Resolved, ...).")
    time: dt.datetime = Field(..., description="When the delivery ended.")
    result: DeliveryResult = Field(..., description="Sent, Failed or RateLimited.")
    attempts: int = Field(1, ge=0, le=100, description="HTTP requests made for it (retries included).")
    error: str = Field("", max_length=512, description="Why it failed, for Failed.")


class SinkState(KubeModel):
    """What one sink of one route was last sent for this Incident; checked before sending,
    so a restart or a redelivered event never posts a second thread or a second page."""

    route: str = Field(..., max_length=320, description="The NotificationRoute, namespace/name.")
    sink: str = Field(..., max_length=63, description="The sink's name in the route.")
    sent: str = Field("", max_length=256, description="Digest of the last change sent (event and what it said).")
    events: list[Annotated[str, Field(max_length=32)]] | None = Field(
        None, max_length=8, description="Changes sent so far.", json_schema_extra={"x-kubernetes-list-type": "set"})
    thread: str | None = Field(None, max_length=64, description="Slack: the ts of the thread's first message.")
    channel: str | None = Field(None, max_length=80, description="Slack: the channel id the thread is in.")
    key: str | None = Field(None, max_length=255, description="PagerDuty dedup_key / Opsgenie alias used.")


class PageResult(str, Enum):
    RESOLVED = "Resolved"  # the pager took the resolve (202)
    FAILED = "Failed"  # the pager refused it, or gave up after retries (see error)
    NO_ROUTE = "NoRoute"  # no NotificationRoute that sees this Incident has credentials for that pager


class PageResolution(KubeModel):
    """What aisre did about one page when this Incident resolved."""

    system: PagerSystem = Field(..., description="pagerDuty or opsgenie.")
    id: str = Field(..., max_length=128, description="The page's id (spec.pages[].id).")
    result: PageResult = Field(..., description="Resolved, Failed or NoRoute.")
    route: str | None = Field(None, max_length=320, description="The NotificationRoute whose credentials were used.")
    time: dt.datetime = Field(..., description="When it was tried.")
    error: str = Field("", max_length=512, description="Why it was not resolved.")


class IncidentStatus(ObservedStatus):
    """The Incident as aisre sees it. Written by the operator only."""

    state: IncidentState | None = Field(None, description="Short state derived from the conditions, for display.")
    root_cause: RootCause | None = Field(None, description="Root cause, mirrored from the Investigation.")
    investigation_ref: InvestigationRef | None = Field(None, description="The Investigation started for it.")
    investigations: int | None = Field(None, ge=0, le=100, description="How many Investigations were started for it.")
    timeline: list[TimelineEntry] | None = Field(None, max_length=100, description="What happened, in time order.")
    remediations: list[JournalEntry] | None = Field(None, max_length=32, description="The remediation journal.")
    case: CaseRecord | None = Field(None, description="This Incident in the memory of past incidents.")
    recurrences: int | None = Field(
        None, ge=0, description="Earlier Incidents with the same root cause on the same workload within 30 days.")
    seen_before: str | None = Field(None, max_length=512, description="How often it recurred, and what was done last time.")
    resolved_at: dt.datetime | None = Field(None, description="When the signals cleared.")
    notified: list[SinkState] | None = Field(
        None, max_length=64, description="Per route and sink: what was last sent (NotificationRoutes).")
    notifications: list[NotificationDelivery] | None = Field(
        None, max_length=30, description="The latest deliveries to NotificationRoutes' sinks, oldest first (bounded).")
    pages: list[PageResolution] | None = Field(
        None, max_length=16, description="The pages (spec.pages) aisre resolved, or could not, when it resolved.")
    report: str | None = Field(None, max_length=65536, description="Post-incident report (Markdown), once resolved.")


class Incident(KubeModel):
    """Incident records that something in the cluster is broken: what, where, since when,
    how often, the root cause found, and what was done about it."""

    KIND: ClassVar[str] = "Incident"
    PLURAL: ClassVar[str] = "incidents"
    SHORT_NAMES: ClassVar[list[str]] = ["inc"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        printer_column("Severity", ".spec.severity"),
        printer_column("State", ".status.state"),
        # A string, not a date: kubectl shows a date as the time since, "<invalid>" for the future.
        printer_column("Predicted", ".spec.prediction.failureTime",
                       description="When a Predicted Incident's failure is forecast (the central time)."),
        printer_column("Root Cause", ".status.rootCause.category"),
        printer_column("Confidence", ".status.rootCause.confidence", "number"),
        printer_column("Recurrences", ".status.recurrences", "integer",
                       description="Earlier Incidents like it on the same workload within 30 days."),
        printer_column("Source", ".spec.source", description="Who raised it: detection, alertmanager, pagerduty, "
                       "opsgenie, external or manual."),
        printer_column("Origin", ".spec.origin", priority=1,
                       description="The system outside the cluster that raised it (an external signal's producer)."),
        printer_column("Resource", ".spec.resource.name", priority=1),
        AGE_COLUMN,
    ]

    spec: IncidentSpec
    status: IncidentStatus | None = None
