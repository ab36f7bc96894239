"""The operator's HTTP server: /healthz (the event loop answers), /readyz (ready for
its part: the leader, or a single replica, once Kopf has started watching; a standby once
it has read the leader Lease; it lists plugins that are not running, and why), /leaderz (200 only on the replica that leads), /metrics
(Prometheus), POST /alertmanager (the webhook: a bearer token is required; a payload
that is not Alertmanager's v4 is refused with 400 and the reason, and changes nothing; a
standby answers 503 with Retry-After, so Alertmanager's retry reaches the leader), and the
pagers' webhooks: POST /pagerduty (v3, its X-PagerDuty-Signature checked with the shared
secret) and POST /opsgenie (a bearer token, as Alertmanager's). A page is answered 202
whether or not it names something the cluster has (detection/pagers.py). A W3C
``traceparent`` header on any of them is carried into the Incident's Investigation trace.

It runs on aiohttp, the server library Kopf itself depends on, in the operator's loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import ValidationError

from aisre.operator.detection.alertmanager import parse, signals_from
from aisre.operator.detection.detector import MAX_HELD_ALERTS
from aisre.operator.detection.pagers import Kind, Skipped, page_of, pagerduty_signed, signal_of
from aisre.operator.leader import Role
from aisre.operator.metrics import ALERTMANAGER_REQUESTS, PAGER_REQUESTS, PAGES
from aisre.plugins import registry
from aisre.tracing import valid_traceparent

MAX_ALERT_BODY = 4 * 1024 * 1024
MAX_PAGE_BODY = 1024 * 1024  # one incident or alert per delivery


@dataclass
class Webhook:
    """What the Alertmanager endpoint needs; filled in once detection has started."""

    token: str | None = None
    detection: Any = None  # DetectionService
    role: Role | None = None  # None: a single replica, always in charge
    graph: Any = None  # GraphStore, when the knowledge graph is configured
    fleet: Any = None  # FleetService, when Kafka is configured
    pagerduty_secrets: tuple[str, ...] = ()  # the webhook subscription's secret(s); two while rotating
    opsgenie_token: str | None = None


def _answer(code: int, **body: Any) -> web.Response:
    ALERTMANAGER_REQUESTS.labels(str(code)).inc()
    return web.json_response(body, status=code)


def _standby(hook: Webhook, answer: Any) -> web.Response | None:
    """503 with Retry-After on a replica that does not lead (the sender's retry reaches the leader)."""
    if hook.role is None or hook.role.leads:
        return None
    response: web.Response = answer(503, error=f"this replica is {hook.role.name}; the leader is {hook.role.holder or 'unknown'}")
    response.headers["Retry-After"] = "5"
    return response


def _bearer_ok(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode())


async def alertmanager(request: web.Request, hook: Webhook) -> web.Response:
    if (standby := _standby(hook, _answer)) is not None:
        return standby
    if not hook.token:
        return _answer(503, error="the webhook has no token configured (AISRE_ALERTMANAGER_TOKEN_FILE or _SECRET)")
    if not _bearer_ok(request, hook.token):
        return _answer(401, error="missing or wrong bearer token")
    if hook.detection is None:
        return _answer(503, error="detection is not running")
    if (request.content_length or 0) > MAX_ALERT_BODY:
        return _answer(413, error=f"payload larger than {MAX_ALERT_BODY} bytes")
    try:
        payload = parse(json.loads(await request.text()))
    except json.JSONDecodeError as error:
        return _answer(400, error=f"not JSON: {error}")
    except ValidationError as error:
        reasons = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:10]]
        return _answer(400, error="not an Alertmanager v4 webhook payload", reasons=reasons)
    signals, skipped = signals_from(payload, hook.detection.pipeline.index, dt.datetime.now(dt.UTC),
                                    hook.detection.pipeline.allowed)
    if (traceparent := valid_traceparent(request.headers.get("traceparent"))) is not None:
        signals = [s.model_copy(update={"traceparent": traceparent}) for s in signals]
    refused = hook.detection.alerts(signals)
    skipped += [f"{s.reason[:64]}: {MAX_HELD_ALERTS} alerts are held already" for s in refused[:20]]
    accepted = [s for s in signals if s not in refused]
    return _answer(200, accepted=len(accepted), firing=sum(s.firing for s in accepted), skipped=skipped[:50])


async def pager(request: web.Request, hook: Webhook, kind: Kind) -> web.Response:
    """One page: authenticated (PagerDuty's signature, Opsgenie's bearer token), read, and
    handed to detection as a signal; 202 for every page that was read, matched or not."""
    def answer(code: int, **body: Any) -> web.Response:
        PAGER_REQUESTS.labels(kind, str(code)).inc()
        return web.json_response(body, status=code)

    if (standby := _standby(hook, answer)) is not None:
        return standby
    if (request.content_length or 0) > MAX_PAGE_BODY:
        return answer(413, error=f"payload larger than {MAX_PAGE_BODY} bytes")
    raw = await request.read()
    if kind == "pagerduty":
        if not hook.pagerduty_secrets:
            return answer(503, error="no PagerDuty webhook secret configured (AISRE_PAGERDUTY_SECRET_FILE or _SECRET)")
        if not pagerduty_signed(raw, request.headers.get("X-PagerDuty-Signature"), hook.pagerduty_secrets):
            return answer(401, error="missing or wrong X-PagerDuty-Signature")
    else:
        if not hook.opsgenie_token:
            return answer(503, error="no Opsgenie webhook token configured (AISRE_OPSGENIE_TOKEN_FILE or _SECRET)")
        if not _bearer_ok(request, hook.opsgenie_token):
            return answer(401, error="missing or wrong bearer token")
    if hook.detection is None:
        return answer(503, error="detection is not running")
    try:
        page = page_of(kind, json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return answer(400, error=f"not JSON: {error}")
    except ValidationError as error:
        reasons = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:10]]
        return answer(400, error=f"not a {kind} webhook payload", reasons=reasons)
    pipeline = hook.detection.pipeline
    found = page if isinstance(page, Skipped) else signal_of(
        page, pipeline.index, dt.datetime.now(dt.UTC), pipeline.allowed, hook.detection.th.page_hold,
        valid_traceparent(request.headers.get("traceparent")))
    if isinstance(found, Skipped):
        PAGES.labels(kind, found.outcome).inc()
        return answer(202, accepted=0, skipped=[found.reason])
    if hook.detection.alerts([found]):
        PAGES.labels(kind, "refused").inc()
        return answer(503, error=f"{MAX_HELD_ALERTS} alerts are held already")
    PAGES.labels(kind, "accepted").inc()
    return answer(202, accepted=1, firing=found.firing, object=f"{found.object.namespace}/{found.object.display()}")


def build_app(ready: asyncio.Event, hook: Webhook | None = None) -> web.Application:
    """``ready``: Kopf has started (it only ever starts on the replica that leads)."""
    hook = hook or Webhook()
    role = hook.role or Role()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": role.name})

    async def readyz(_: web.Request) -> web.Response:
        # A standby is ready: it serves /metrics and stands by, and a rollout waits for it.
        if role.ready(ready.is_set()):
            # A Neo4j outage degrades memory to the embedded index: reported, still ready.
            graph = {"neo4j": hook.graph.state()} if hook.graph is not None else {}
            # Kafka away or the fleet buffer filling: reported (condition FleetPublishing), still ready.
            graph |= {"fleet": hook.fleet.state()} if hook.fleet is not None else {}
            # A plugin that failed to load or lacks a prerequisite is reported, still ready:
            # the Investigations say NO_DATA with the same reason for that agent.
            return web.json_response({"status": "ready", "role": role.name, "leader": role.holder or None, **graph,
                                      "plugins": registry().readiness()})
        return web.json_response({"status": "starting" if role.name != "stepped-down" else "stopping",
                                  "role": role.name}, status=503)

    async def leaderz(_: web.Request) -> web.Response:
        return web.json_response({"leader": role.leads, "role": role.name, "holder": role.holder or None},
                                 status=200 if role.leads else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/leaderz", leaderz)
    app.router.add_get("/metrics", metrics)
    async def webhook(request: web.Request) -> web.Response:
        return await alertmanager(request, hook)

    app.router.add_post("/alertmanager", webhook)

    async def pagerduty(request: web.Request) -> web.Response:
        return await pager(request, hook, "pagerduty")

    async def opsgenie(request: web.Request) -> web.Response:
        return await pager(request, hook, "opsgenie")

    app.router.add_post("/pagerduty", pagerduty)
    app.router.add_post("/opsgenie", opsgenie)
    return app


async def start_http(ready: asyncio.Event, host: str, port: int, hook: Webhook | None = None) -> web.AppRunner:
    runner = web.AppRunner(build_app(ready, hook), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
