"""Kopf handlers. Each unpacks the body, calls one function, and writes its result.

Importing this module registers the handlers with Kopf's default registry.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import kopf

from aisre.api.conditions import ACCEPTED, is_true
from aisre.api.incident import Incident
from aisre.api.investigation import Investigation
from aisre.api.meta import GROUP, VERSION, KubeModel
from aisre.api.notification_route import NotificationRoute
from aisre.api.remediation_policy import RemediationPolicy
from aisre.kube.reader import connect
from aisre.operator.webhook_token import opsgenie_token, pagerduty_secrets, webhook_token
from aisre.operator.acceptance import accept
from aisre.operator.detection.service import DetectionService
from aisre.operator.incidents import StartGate, reinvestigate, seed_start_gate, start_investigation
from aisre.operator.llm_step import LLMService
from aisre.operator.graph_store import GraphStore
from aisre.operator.memory_step import observe_incident
from aisre.knowledge.memory import Memory
from aisre.ranking.calibration import use_knots
from aisre.operator.login import connection_info
from aisre.operator.run_investigation import Slots, already_done
from aisre.operator.runbook_step import RunbookShelf
from aisre.operator.run_investigation import run as run_investigation
from aisre.operator.metrics import HANDLER_CALLS, HANDLER_SECONDS
from aisre.operator.handlers import remediation as _remediation  # noqa: F401  (registers its handlers)
from aisre.operator.handlers import notifications as _notifications  # noqa: F401  (registers its handlers)
from aisre.operator.handlers import pages as _pages  # noqa: F401  (registers its handlers)
from aisre.operator.handlers import fleet as _fleet  # noqa: F401  (registers its handlers)


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(memo.config.kubeconfig)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _accept_into(model: type[KubeModel], body: kopf.Body, patch: kopf.Patch) -> None:
    kind: str = model.KIND  # type: ignore[attr-defined]
    started = time.perf_counter()
    status = accept(model, body, _now())
    patch.status.update(status)
    HANDLER_SECONDS.labels(kind).observe(time.perf_counter() - started)
    outcome = "accepted" if is_true(status["conditions"], ACCEPTED) else "rejected"
    HANDLER_CALLS.labels(kind, outcome).inc()


def _register(model: type[KubeModel]) -> None:
    plural: str = model.PLURAL  # type: ignore[attr-defined]
    kind: str = model.KIND  # type: ignore[attr-defined]

    # create, resume after a restart, and every spec change: all re-accept the spec.
    @kopf.on.resume(GROUP, VERSION, plural, id=f"accept-{kind.lower()}-resume")
    @kopf.on.create(GROUP, VERSION, plural, id=f"accept-{kind.lower()}")
    @kopf.on.update(GROUP, VERSION, plural, field="spec", id=f"accept-{kind.lower()}-update")
    def on_spec(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        _accept_into(model, body, patch)


for _model in (Incident, Investigation, RemediationPolicy, NotificationRoute):
    _register(_model)


@kopf.on.startup()
async def open_clients(memo: kopf.Memo, **_: Any) -> None:
    memo.kube = connect(memo.config.kubeconfig)
    memo.llm = LLMService.from_config(memo.config.llm)
    memo.slots = Slots(memo.config.max_concurrent_investigations)
    memo.incident_gate = StartGate(memo.config.thresholds.storm_per_minute)
    memo.memory = Memory()
    use_knots(memo.config.calibration_knots)
    memo.graph = None
    if memo.config.neo4j is not None:
        memo.graph = GraphStore(memo.config.neo4j)
        memo.graph.start()
        memo.webhook.graph = memo.graph  # /readyz reports it
    await seed_start_gate(memo.incident_gate, memo.kube)


@kopf.on.startup()
async def start_detection(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    config = memo.config
    memo.webhook.token = await webhook_token(config, memo.kube, logger)
    memo.webhook.pagerduty_secrets = await pagerduty_secrets(config, memo.kube, logger)
    memo.webhook.opsgenie_token = await opsgenie_token(config, memo.kube, logger)
    if not config.detection:
        return
    memo.detection = DetectionService(config.thresholds, config.operator_namespace, config.namespaces,
                                      config.exclude_namespaces, prometheus=config.prometheus,
                                      signing_key=memo.signing_key, forecast_tls_secrets=config.forecast_tls_secrets)
    # Clients of its own: Incident writes and metric sweeps never wait behind the
    # investigations' reads for a connection, nor they behind detection's.
    await memo.detection.start(connect(config.kubeconfig), connect(config.kubeconfig, max_connections=None))
    memo.webhook.detection = memo.detection
    if memo.get("fleet") is not None:  # the fleet started first: it publishes what detection sees
        memo.fleet.attach(memo.detection)


@kopf.on.cleanup()
async def close_clients(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "detection", None) is not None:
        await memo.detection.stop()
    if getattr(memo, "kube", None) is not None:
        await memo.kube.aclose()
    if getattr(memo, "llm", None) is not None:
        await memo.llm.close()
    if getattr(memo, "graph", None) is not None:
        await memo.graph.close()


# After acceptance: an Incident starts the Investigation it owns (once).
@kopf.on.resume(GROUP, VERSION, "incidents", id="incident-investigate-resume")
@kopf.on.create(GROUP, VERSION, "incidents", id="incident-investigate")
async def on_incident(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    patch.status.update(await start_investigation(body, memo.kube, memo.signing_key, memo.incident_gate))


@kopf.on.update(GROUP, VERSION, "incidents", field="spec.affected", id="incident-reinvestigate")
async def on_incident_grown(body: kopf.Body, old: Any, new: Any, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    patch.status.update(await reinvestigate(body, old, new, memo.kube, memo.signing_key))


# Runbooks as the watch sees them: Kopf fills the index from its initial listing before any
# other handler runs, so a concluding Investigation reads them without a round trip.
@kopf.index(GROUP, VERSION, "runbooks")
def runbook_index(namespace: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace: dict(body)}


# Registered after the acceptance handlers, so a new Investigation is accepted first.
@kopf.on.resume(GROUP, VERSION, "investigations", id="investigate-resume")
@kopf.on.create(GROUP, VERSION, "investigations", id="investigate")
@kopf.on.update(GROUP, VERSION, "investigations", field="spec", id="investigate-update")
async def on_investigation(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, runbook_index: kopf.Index,
                           **_: Any) -> None:
    if already_done(body):
        return
    await run_investigation(body, patch, memo.kube, getattr(memo, "llm", None), memo.config.prometheus,
                            memo.signing_key, memo.config.operator_namespace, memo.slots, getattr(memo, "memory", None),
                            getattr(memo, "graph", None), RunbookShelf(runbook_index, memo.config.namespaces))


# Every Incident's case joins the memory of past incidents; the initial listing rebuilds it.
@kopf.on.event(GROUP, VERSION, "incidents", id="memory")
def remember_incident(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memory = getattr(memo, "memory", None)
    if memory is not None:
        observe_incident(memory, event.get("type"), dict(body), getattr(memo, "graph", None))
