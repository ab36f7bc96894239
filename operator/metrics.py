"""Prometheus metrics of the operator (served on /metrics by ``aisre.operator.http``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HANDLER_CALLS = Counter(
    "aisre_handler_calls_total",
    "Kopf handler invocations by kind and outcome.",
    ["kind", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "aisre_handler_duration_seconds",
    "Wall time of Kopf handlers by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INVESTIGATIONS = Counter(
    "aisre_investigations_total",
    "Investigations concluded, by condition reason (RootCauseFound, NoFaultFound, TargetNotFound, ...).",
    ["reason"],
)
LLM_TOKENS = Counter(
    "aisre_llm_tokens_total",
    "LLM tokens used, from the API's usage fields, by direction (input includes cache reads and writes).",
    ["model", "direction"],
)
LLM_COST = Counter(
    "aisre_llm_cost_usd_total",
    "LLM cost in US dollars, from usage and the configured price table.",
    ["model"],
)
INVESTIGATION_SECONDS = Histogram(
    "aisre_investigation_duration_seconds",
    "Wall time from start to conclusion of an investigation.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
SIGNALS = Counter(
    "aisre_signals_total",
    "Signals observed by detection, by source and reason.",
    ["source", "reason"],
)
INCIDENTS = Counter(
    "aisre_incidents_total",
    "Incidents opened and resolved by detection, and its writes the API server refused or that failed.",
    ["event"],
)
ALERTMANAGER_REQUESTS = Counter(
    "aisre_alertmanager_requests_total",
    "Alertmanager webhook requests, by HTTP status.",
    ["code"],
)

PAGER_REQUESTS = Counter(
    "aisre_pager_requests_total",
    "Pager webhook requests (pagerduty, opsgenie), by HTTP status.",
    ["pager", "code"],
)

PAGES = Counter(
    "aisre_pages_total",
    "Pages received, by pager and outcome: accepted (a signal), unmatched (names nothing the cluster has, or a "
    "namespace not watched), ignored (not a trigger or resolve, or aisre's own page), refused (held alerts at their cap); "
    "and when their Incident resolved: resolved, resolve_failed, no_route (no NotificationRoute has the credentials).",
    ["pager", "outcome"],
)
REMEDIATIONS = Counter(
    "aisre_remediations_total",
    "Remediation journal entries recorded, by action type, policy decision and result.",
    ["action", "decision", "result"],
)
LEADER = Gauge(
    "aisre_leader",
    "1 while this replica leads (holds the leader Lease and runs Kopf, detection and remediation; "
    "always 1 without AISRE_PEERING), 0 while it stands by.",
)
MEMORY_CASES = Gauge(
    "aisre_memory_cases",
    "Past incidents in the memory's index (concluded Incidents with a root cause).",
)
ROOT_CAUSES_CONFIRMED = Gauge(
    "aisre_root_causes_confirmed_ratio",
    "Of the Incidents people gave feedback on (aisre feedback), the share whose root cause they confirmed.",
)
NEO4J_UP = Gauge(
    "aisre_graph_up",
    "1 while the knowledge graph's Neo4j answers, 0 while it does not (memory falls back to the embedded index).",
)
NEO4J_WRITES = Counter(
    "aisre_graph_writes_total",
    "Investigations written to the knowledge graph, by outcome: written, failed (retried), dropped (queue full).",
    ["outcome"],
)
NEO4J_WRITE_SECONDS = Histogram(
    "aisre_graph_write_duration_seconds",
    "Wall time of writing one Investigation's batches to Neo4j.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NEO4J_QUEUE = Gauge(
    "aisre_graph_queue",
    "Investigations waiting to be written to the knowledge graph (bounded).",
)
FORECASTS = Counter(
    "aisre_forecasts_total",
    "Forecasts made by detection (docs/forecasts.md), by signal and outcome (Predicted, BeyondHorizon, NoTrend, "
    "PoorFit, ResetsFirst, Reset, TooLittleHistory, AtLimit; QueryFailed: Prometheus did not answer).",
    ["signal", "outcome"],
)
NOTIFICATIONS = Counter(
    "aisre_notifications_total",
    "Messages to NotificationRoutes' sinks, by sink type (slack, slackWebhook, teams, pagerDuty, opsgenie, webhook) "
    "and result (Sent, Failed, RateLimited).",
    ["sink", "result"],
)

# The fleet's Kafka publisher and consumer (docs/fleet.md), by tenant.
FLEET_BUFFER = Gauge("aisre_fleet_buffer_pending", "Fleet envelopes waiting for the Kafka broker", ["tenant"])
FLEET_BUFFER_CAPACITY = Gauge("aisre_fleet_buffer_capacity", "Fleet envelopes the buffer holds at most", ["tenant"])
FLEET_ENVELOPES = Counter("aisre_fleet_envelopes_total", "Fleet envelopes by outcome (published, dropped: buffer "
                          "full, failed: refused by the broker)", ["tenant", "outcome"])
FLEET_BROKER_UP = Gauge("aisre_fleet_broker_up", "1 while a Kafka broker answers the fleet publisher", ["tenant"])
FLEET_EXTERNAL = Counter("aisre_fleet_external_signals_total", "External signals read from Kafka by outcome "
                         "(stored, deadLettered)", ["tenant", "outcome"])
