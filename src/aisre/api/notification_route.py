"""The NotificationRoute kind: which Incidents go to which chat rooms, pagers and webhooks,
declared in Git like every other aisre object.

The operator never writes a route's spec. A route sees the Incidents of its own namespace;
one in the operator's namespace applies cluster-wide (narrowed by ``selector.namespaces``).
Credentials are never in the spec: every token, routing key and webhook URL that carries a
secret is a reference to a key of a Secret in the route's own namespace (a reference has
no namespace field, so a route cannot point at another team's Secret).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from aisre.api.meta import (
    AGE_COLUMN,
    DNS1123_LABEL,
    KubeModel,
    LabelSelector,
    ObservedStatus,
    cel,
    printer_column,
    validations,
)
from aisre.api.taxonomy import RootCauseCategory, Severity

# An http(s) URL without user:password@ (credentials belong in a Secret, not in Git).
URL_PATTERN = r"^https?://[^\s/@]+(/[^\s]*)?$"
NO_USERINFO = "self.matches('^https?://[^/@]+(/.*)?$')"


class SecretKeyRef(KubeModel):
    """A key of a Secret in the route's own namespace (there is no namespace field: a route
    never reads another namespace's Secrets)."""

    name: str = Field(..., min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                      description="Name of the Secret, in the route's namespace.")
    key: str = Field(..., min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="The key in the Secret's data.")


def _api_url(default: str) -> Any:
    return Field(default, max_length=2048, pattern=URL_PATTERN,
                 description=f"Base URL of the API (default {default}); for proxies, regional endpoints and tests.",
                 json_schema_extra={"x-kubernetes-validations": [cel(NO_USERINFO, "no credentials in a URL: use a Secret")]})


class SlackSink(KubeModel):
    """Slack's Web API (chat.postMessage with Block Kit): one thread per Incident, the first
    message when it is first sent, every later change as a reply in that thread."""

    channel: str = Field(..., min_length=1, max_length=80, description="Channel id or name (C0123456789, #oncall).")
    token_secret_ref: SecretKeyRef = Field(..., description="The bot token (xoxb-…), chat:write scope.")
    api_url: str = _api_url("https://slack.com/api")


class WebhookUrlSink(KubeModel):
    """A webhook whose URL is itself the credential (Slack incoming webhook, Teams workflow)."""

    url_secret_ref: SecretKeyRef = Field(..., description="The webhook URL, kept in a Secret (it is the credential).")


class PagerDutySink(KubeModel):
    """PagerDuty Events API v2: a trigger with a dedup_key stable for the Incident, and a
    resolve with the same key when the Incident resolves."""

    routing_key_secret_ref: SecretKeyRef = Field(..., description="The integration's routing key.")
    api_url: str = _api_url("https://events.pagerduty.com")


class OpsgenieSink(KubeModel):
    """Opsgenie's Alert API: create with an alias stable for the Incident, close by that
    alias when the Incident resolves."""

    api_key_secret_ref: SecretKeyRef = Field(..., description="An API integration's key (sent as GenieKey).")
    api_url: str = _api_url("https://api.opsgenie.com")
    responders: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        None, max_length=10, description="Team names to notify (responders of type team).")


class WebhookSink(KubeModel):
    """A generic webhook: each change is POSTed as a CloudEvents 1.0 event in structured JSON."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("has(self.url) != has(self.urlSecretRef)", "exactly one of url and urlSecretRef")))

    url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN,
                            description="The receiver's URL, when it is not a secret.",
                            json_schema_extra={"x-kubernetes-validations": [
                                cel(NO_USERINFO, "no credentials in a URL: use urlSecretRef")]})
    url_secret_ref: SecretKeyRef | None = Field(None, description="The receiver's URL, kept in a Secret.")
    authorization_secret_ref: SecretKeyRef | None = Field(
        None, description="Sent as the Authorization header (e.g. 'Bearer …'), optional.")


SINK_TYPES = ("slack", "slackWebhook", "teams", "pagerDuty", "opsgenie", "webhook")
ONE_SINK_TYPE = " + ".join(f"(has(self.{t}) ? 1 : 0)" for t in SINK_TYPES) + " == 1"


class Sink(KubeModel):
    """One destination, of exactly one type."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel(ONE_SINK_TYPE, f"a sink has exactly one of {', '.join(SINK_TYPES)}")))

    name: str = Field(..., min_length=1, max_length=63, pattern=DNS1123_LABEL,
                      description="Name of the sink, unique in the route; delivery records name it.")
    slack: SlackSink | None = Field(None, description="Slack chat.postMessage, threaded per Incident.")
    slack_webhook: WebhookUrlSink | None = Field(None, description="A Slack incoming webhook (no threads).")
    teams: WebhookUrlSink | None = Field(None, description="A Microsoft Teams workflow webhook (Adaptive Card).")
    pager_duty: PagerDutySink | None = Field(None, description="PagerDuty Events API v2.")
    opsgenie: OpsgenieSink | None = Field(None, description="Opsgenie Alert API.")
    webhook: WebhookSink | None = Field(None, description="A generic webhook receiving CloudEvents.")

    @property
    def type(self) -> str:
        return next(t for t in SINK_TYPES if getattr(self, _field(t)) is not None)


def _field(sink_type: str) -> str:
    return {"slackWebhook": "slack_webhook", "pagerDuty": "pager_duty"}.get(sink_type, sink_type)


class NotifyOn(str, Enum):
    """The changes of an Incident a route can be told about."""

    OPENED = "Opened"
    IDENTIFIED = "Identified"  # a root cause was named
    AWAITING_APPROVAL = "AwaitingApproval"  # an action waits for a person's approval
    REMEDIATED = "Remediated"  # an action ran (succeeded, failed or was reverted)
    RESOLVED = "Resolved"


class RouteSelector(KubeModel):
    """Which Incidents the route sends. Every field given must hold."""

    namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS1123_LABEL)]] | None = Field(
        None, min_length=1, max_length=64,
        description="Namespaces of the Incidents; only a route in the operator's namespace sees other namespaces "
        "(a route elsewhere sees its own namespace only, whatever this says).",
        json_schema_extra={"x-kubernetes-list-type": "set"})
    min_severity: Severity = Field(Severity.LOW, description="The least severe Incident sent: critical, high, medium or low.")
    categories: list[RootCauseCategory] | None = Field(
        None, min_length=1, max_length=25,
        description="Root-cause categories; an Incident without a root cause yet does not match.",
        json_schema_extra={"x-kubernetes-list-type": "set"})
    labels: LabelSelector | None = Field(None, description="Labels the Incident must carry.")
    changes: list[NotifyOn] = Field(
        default_factory=lambda: [NotifyOn.IDENTIFIED, NotifyOn.AWAITING_APPROVAL, NotifyOn.RESOLVED],
        min_length=1, max_length=5,
        description="Changes of the Incident that are sent: Opened, Identified, AwaitingApproval, Remediated, Resolved.",
        json_schema_extra={"x-kubernetes-list-type": "set"})


class NotificationRouteSpec(KubeModel):
    """What is sent (selector) and where (sinks)."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("self.sinks.all(a, self.sinks.exists_one(b, b.name == a.name))", "sink names must be unique",
            ".sinks")))

    selector: RouteSelector = Field(default_factory=RouteSelector, description="Which Incidents, and which of their changes.")
    sinks: list[Sink] = Field(..., min_length=1, max_length=8, description="Where to send them; at least one.")
    max_per_minute: int = Field(
        30, ge=1, le=600,
        description="Messages the route sends per minute over all its sinks; more wait for the next minute.")
    paused: bool = Field(False, description="Send nothing while true (delivery state is kept).")


class NotificationRouteStatus(ObservedStatus):
    """Written by the operator: the sink types, for the printer column."""

    sinks: str | None = Field(None, max_length=256, description="The sinks' types, comma-separated.")


class NotificationRoute(KubeModel):
    """NotificationRoute sends Incidents to Slack, Microsoft Teams, PagerDuty, Opsgenie or a
    webhook: which Incidents (namespaces, severity, root cause, labels, changes) to which sinks."""

    KIND: ClassVar[str] = "NotificationRoute"
    PLURAL: ClassVar[str] = "notificationroutes"
    SHORT_NAMES: ClassVar[list[str]] = ["nr"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        printer_column("Sinks", ".status.sinks", description="The sinks' types."),
        printer_column("Severity", ".spec.selector.minSeverity", description="The least severe Incident sent."),
        printer_column("Paused", ".spec.paused", "boolean", priority=1),
        AGE_COLUMN,
    ]

    spec: NotificationRouteSpec
    status: NotificationRouteStatus | None = None
