"""The Investigation kind: a question about a target, answered with evidence, ranked
hypotheses over the root-cause taxonomy and typed recommended actions.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from aisre.api.meta import (
    AGE_COLUMN,
    KubeModel,
    ObservedStatus,
    LabelSelector,
    LocalObjectReference,
    ResourceRef,
    TimelineEntry,
    bounded_duration,
    cel,
    printer_column,
    validations,
)
from aisre.api.runbook import RunbookAction, RunbookLink
from aisre.api.taxonomy import ActionType, AgentName, RootCauseCategory

Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
EvidenceId = Annotated[str, Field(max_length=64)]
Lookback = bounded_duration("168h", "1s")


class InvestigationTarget(KubeModel):
    """What to investigate: one object (kind and name), or the objects a label selector
    picks, in the Investigation's namespace. An empty selector means the whole namespace."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.name) != has(self.selector)",
                "target names an object (kind and name) or a label selector, not both and not neither",
            ),
            cel("has(self.name) == has(self.kind)", "target.kind and target.name go together"),
        )
    )

    api_version: str | None = Field(
        None, max_length=253, description="API group/version of the target, e.g. apps/v1; inferred from kind when empty."
    )
    kind: str | None = Field(
        None, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$", description="Kind of the target object, e.g. Deployment."
    )
    name: str | None = Field(None, min_length=1, max_length=253, description="Name of the target object.")
    selector: LabelSelector | None = Field(
        None, description="Label selector for the pods (or workloads) to investigate; {} means the whole namespace."
    )


class TimeWindow(KubeModel):
    """The period to look at: a lookback from now, or a start (and optional end) time."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("!(has(self.lookback) && has(self.start))", "give either lookback or start, not both"),
            cel("!has(self.end) || has(self.start)", "end needs start"),
            cel(
                "!has(self.end) || self.end > self.start",
                "end must be after start",
                ".end",
            ),
        )
    )

    lookback: Lookback | None = Field(
        None, description="How far back from now, e.g. 30m or 2h (at most 168h).")
    start: dt.datetime | None = Field(None, description="Start of the window (RFC 3339).")
    end: dt.datetime | None = Field(None, description="End of the window (RFC 3339); now when empty.")


class LLMSettings(KubeModel):
    """Whether this Investigation may use the optional LLM, and within what budget."""

    enabled: bool = Field(False, description="Use the LLM planner and narrator when the operator has an API key.")
    max_cost_usd: float = Field(0.10, ge=0.0, le=100.0, description="Cost cap for this Investigation, in US dollars.")


class InvestigationSpec(KubeModel):
    """What a person (or detection, for an Incident) asks aisre to investigate."""

    target: InvestigationTarget = Field(..., description="The object or selector to investigate.")
    question: str | None = Field(
        None, max_length=2000, description="Optional question in plain words, e.g. why is checkout failing?"
    )
    window: TimeWindow | None = Field(None, description="Optional time window; the last hour when empty.")
    agents: list[AgentName] | None = Field(
        None,
        max_length=16,
        description="Evidence agents to run; the planner picks from the symptoms when empty.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    llm: LLMSettings | None = Field(None, description="LLM use and budget; off when empty.")
    deadline_seconds: int = Field(
        30, ge=1, le=600, description="Deadline for the whole investigation; agents still running then are cut off."
    )
    incident_ref: LocalObjectReference | None = Field(
        None, description="The Incident this Investigation was started for, if any."
    )


class InvestigationState(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class RootCause(KubeModel):
    """The conclusion: what is wrong, which object to change, and how sure we are."""

    category: RootCauseCategory = Field(..., description="Category from the root-cause taxonomy.")
    resource: ResourceRef | None = Field(None, description="The object a person must change to fix it.")
    summary: str = Field("", max_length=1024, description="One sentence that says what is wrong.")
    confidence: Confidence = Field(..., description="Calibrated confidence, 0 to 1.")


class HypothesisSource(str, Enum):
    RANKING = "ranking"
    LLM = "llm"


class ChainLink(KubeModel):
    """One step from the workload that hurts to the root cause, and the evidence for it."""

    ref: str = Field(..., max_length=320, description="The object of this step, Kind/name (client, Service, workload, change).")
    evidence_ids: list[EvidenceId] = Field(
        default_factory=list, max_length=8, description="Ids of the evidence that ties this step to the one before."
    )


class Hypothesis(RootCause):
    """A candidate root cause, with the evidence that supports it."""

    source: HypothesisSource | None = Field(
        None, description="Who proposed it: the deterministic ranking, or the LLM planner (validated, uncalibrated)."
    )
    evidence_ids: list[EvidenceId] = Field(
        default_factory=list, max_length=32, description="Ids of the evidence items that support it."
    )
    score: Confidence | None = Field(
        None, description="The ranking's evidence strength before calibration (what the calibration map is fitted on)."
    )
    chain: list[ChainLink] = Field(
        default_factory=list, max_length=6,
        description="The causal chain that leads to it: client → Service → workload → change, each with its evidence.",
    )


class Evidence(KubeModel):
    """One observation an agent made, citable by id."""

    id: EvidenceId = Field(..., description="Stable id, cited by hypotheses and reports.")
    agent: str = Field(..., max_length=32, description="The agent that found it.")
    kind: str = Field(..., max_length=64, description="What sort of observation, e.g. ContainerWaiting or LogSignature.")
    summary: str = Field(..., max_length=1024, description="The observation in one line.")
    resource: ResourceRef | None = Field(None, description="The object it was observed on.")
    time: dt.datetime | None = Field(None, description="When it was observed or happened.")
    data: dict[str, Any] | None = Field(
        None,
        description="Structured detail (bounded in size).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class AgentStatus(str, Enum):
    SUCCESS = "SUCCESS"
    NO_DATA = "NO_DATA"
    ERROR = "ERROR"


class AgentRun(KubeModel):
    """How one agent fared: status, latency, cost and what it found."""

    name: str = Field(..., max_length=32, description="The agent.")
    status: AgentStatus = Field(..., description="SUCCESS, NO_DATA or ERROR (a timeout is an ERROR).")
    latency_seconds: float = Field(0.0, ge=0.0, description="Wall time the agent took.")
    cost_usd: float = Field(0.0, ge=0.0, description="Cost the agent incurred (LLM or paid APIs), in US dollars.")
    findings: int = Field(0, ge=0, description="How many evidence items it produced.")
    message: str = Field("", max_length=1024, description="Why it ended as it did, for NO_DATA and ERROR.")


class RecommendedAction(KubeModel):
    """A repair from the typed action catalog; never a free-form manifest."""

    id: str = Field(..., max_length=64, description="Stable id of the action, used for approvals.")
    type: ActionType = Field(..., description="The action from the catalog.")
    target: ResourceRef = Field(..., description="The object the action applies to.")
    parameters: dict[str, Any] | None = Field(
        None,
        description="Typed parameters of the action (e.g. replicas, container, memory).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    reason: str = Field("", max_length=1024, description="Why this action would help.")
    evidence_ids: list[EvidenceId] = Field(default_factory=list, max_length=32, description="Supporting evidence.")
    signature: str | None = Field(
        None, max_length=64, pattern=r"^[0-9a-f]{64}$",
        description="The operator's HMAC over the Incident, this Investigation and the action: the executor runs only "
        "actions whose signature verifies.",
    )


class CostSummary(KubeModel):
    """What the investigation cost."""

    llm_input_tokens: int = Field(0, ge=0, description="LLM input tokens used.")
    llm_output_tokens: int = Field(0, ge=0, description="LLM output tokens used.")
    usd: float = Field(0.0, ge=0.0, description="Total cost in US dollars.")


class DiscardedHypothesis(KubeModel):
    """An LLM hypothesis that did not count, and why (not in the taxonomy, unknown resource,
    evidence ids that do not exist)."""

    category: str = Field("", max_length=64, description="The category the LLM gave, as given.")
    resource: str = Field("", max_length=256, description="The resource the LLM named, as given.")
    reason: str = Field(..., max_length=512, description="Why it was discarded.")


class LLMReport(KubeModel):
    """What the optional LLM did in this Investigation (see the LLMUsed condition for whether)."""

    model: str | None = Field(None, max_length=128, description="The model used.")
    calls: int = Field(0, ge=0, description="Messages API calls made.")
    planner_steps: int = Field(0, ge=0, description="Tool-use steps of the planner (0: it did not run).")
    narrative: str | None = Field(
        None, max_length=2048, description="The LLM-written summary, for people; never acted on."
    )
    accepted: int = Field(0, ge=0, description="LLM hypotheses that passed validation.")
    discarded: list[DiscardedHypothesis] | None = Field(
        None, max_length=10, description="LLM hypotheses that were discarded, with the reason."
    )


class MatchedRunbook(KubeModel):
    """A Runbook that applies to the root cause, why it matched, and its steps as they read
    when the Investigation concluded."""

    name: str = Field(..., max_length=253, description="The Runbook's name.")
    namespace: str = Field(..., max_length=63, description="Its namespace (the operator's: it applies cluster-wide).")
    title: str = Field(..., max_length=200, description="Its title.")
    matched_on: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=8, description="Which of its match fields held, and on what.")
    steps: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, max_length=20, description="What a person should check and do, in order (Markdown).")
    links: list[RunbookLink] | None = Field(None, max_length=10, description="Its links.")
    actions: list[RunbookAction] | None = Field(None, max_length=5, description="The actions it proposes.")


class SimilarIncident(KubeModel):
    """A past Incident like this one, from the operator's memory, and why it is alike."""

    name: str = Field(..., max_length=253, description="The past Incident.")
    namespace: str = Field(..., max_length=63, description="Its namespace.")
    concluded_at: dt.datetime | None = Field(None, description="When its root cause was found.")
    category: str = Field(..., max_length=64, description="Its root-cause category.")
    resource: str = Field("", max_length=320, description="Its root cause's resource, Kind/name, as it was then.")
    similarity: Confidence = Field(..., description="0 to 1: category, kind, workload identity and evidence signature.")
    matched_on: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=8, description="Which parts of the signature matched.")
    outcome: str = Field("", max_length=256, description="What was done about it, and whether verification passed.")
    verdict: str | None = Field(None, max_length=16, description="A person's feedback on its root cause, if any.")


class RemediationNote(KubeModel):
    """What a person must do when no action of the catalog can fix the root cause: the
    recommendation says so rather than offer an action that cannot (a restart after a
    config change), and points at the runbook."""

    category: RootCauseCategory = Field(..., description="The root cause's category.")
    message: str = Field(..., max_length=1024, description="Why no catalog action fits, and the fix in words.")
    runbook: str | None = Field(
        None, max_length=320, description="The best-matching Runbook, namespace/name (status.runbooks); empty when "
        "none matches.")


class InvestigationStatus(ObservedStatus):
    """What aisre found. Written by the operator only."""

    state: InvestigationState | None = Field(None, description="Short state derived from the conditions, for display.")
    target: str | None = Field(None, max_length=512, description="The resolved target, e.g. Deployment/checkout.")
    started_at: dt.datetime | None = Field(None, description="When the investigation started.")
    completed_at: dt.datetime | None = Field(None, description="When it concluded.")
    duration_seconds: float | None = Field(None, ge=0.0, description="Wall time from start to conclusion, in seconds.")
    trace_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{32}$",
        description="The OpenTelemetry trace of this investigation (32 hex digits), when tracing is on: look it up in "
        "the trace backend (docs/tracing.md).")
    trace_parent: str | None = Field(
        None, max_length=55,
        description="The W3C traceparent of the investigation's root span; remediation of its Incident continues it.")
    root_cause: RootCause | None = Field(None, description="The top hypothesis.")
    hypotheses: list[Hypothesis] | None = Field(None, max_length=10, description="Ranked hypotheses, best first.")
    evidence: list[Evidence] | None = Field(None, max_length=200, description="Evidence items, cited by id.")
    agents: list[AgentRun] | None = Field(None, max_length=16, description="Per-agent status, latency and cost.")
    timeline: list[TimelineEntry] | None = Field(None, max_length=100, description="What happened, in time order.")
    recommended_actions: list[RecommendedAction] | None = Field(
        None, max_length=10, description="Typed repairs, for the RemediationPolicy to decide on."
    )
    remediation_note: RemediationNote | None = Field(
        None, description="Set when no recommended action can fix the root cause: what a person must do, and the "
        "runbook to follow.")
    runbooks: list[MatchedRunbook] | None = Field(
        None, max_length=3, description="Runbooks that apply to the root cause, best first, and why each matched.")
    similar_incidents: list[SimilarIncident] | None = Field(
        None, max_length=3, description="The most similar past Incidents of this namespace, best first.")
    seen_before: str | None = Field(
        None, max_length=512, description="How often this root cause recurred on this workload lately, and what was "
        "done last time.")
    cost: CostSummary | None = Field(None, description="Tokens and money spent.")
    llm: LLMReport | None = Field(None, description="What the optional LLM planner and narrator did.")
    truncated: list[Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=16, description="What was cut to keep the status small, and how much."
    )


class Investigation(KubeModel):
    """Investigation asks aisre why something is failing; its status holds the evidence,
    the ranked hypotheses, the root cause and the recommended actions."""

    KIND: ClassVar[str] = "Investigation"
    PLURAL: ClassVar[str] = "investigations"
    SHORT_NAMES: ClassVar[list[str]] = ["inv"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        printer_column("Target", ".status.target", description="The resolved target."),
        printer_column("State", ".status.state"),
        printer_column("Root Cause", ".status.rootCause.category"),
        printer_column("Confidence", ".status.rootCause.confidence", "number"),
        printer_column("Runbook", ".status.runbooks[0].name", description="The best-matching runbook.", priority=1),
        AGE_COLUMN,
    ]

    spec: InvestigationSpec
    status: InvestigationStatus | None = None
