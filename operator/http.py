"""The operator's HTTP server: /healthz (the event loop answers), /readyz (ready for
its part: the leader, or a single replica, once Kopf has started watching; a standby once
it has read the leader Lease), /leaderz (200 only on the replica that leads), /metrics
(Prometheus), and POST /alertmanager (the webhook: a bearer token is required; a payload
that is not Alertmanager's v4 is refused with 400 and the reason, and changes nothing; a
standby answers 503 with Retry-After, so Alertmanager's retry reaches the leader).

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
from aisre.operator.leader import Role
from aisre.operator.metrics import ALERTMANAGER_REQUESTS

MAX_ALERT_BODY = 4 * 1024 * 1024


@dataclass
class Webhook:
    """What the Alertmanager endpoint needs; filled in once detection has started."""

    token: str | None = None
    detection: Any = None  # DetectionService
    role: Role | None = None  # None: a single replica, always in charge
    graph: Any = None  # GraphStore, when the knowledge graph is configured


def _answer(code: int, **body: Any) -> web.Response:
    ALERTMANAGER_REQUESTS.labels(str(code)).inc()
    return web.json_response(body, status=code)


async def alertmanager(request: web.Request, hook: Webhook) -> web.Response:
    if hook.role is not None and not hook.role.leads:
        response = _answer(503, error=f"this replica is {hook.role.name}; the leader is {hook.role.holder or 'unknown'}")
        response.headers["Retry-After"] = "5"
        return response
    if not hook.token:
        return _answer(503, error="the webhook has no token configured (AISRE_ALERTMANAGER_TOKEN_FILE or _SECRET)")
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip().encode(), hook.token.encode()):
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
    refused = hook.detection.alerts(signals)
    skipped += [f"{s.reason[:64]}: {MAX_HELD_ALERTS} alerts are held already" for s in refused[:20]]
    accepted = [s for s in signals if s not in refused]
    return _answer(200, accepted=len(accepted), firing=sum(s.firing for s in accepted), skipped=skipped[:50])


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
            return web.json_response({"status": "ready", "role": role.name, "leader": role.holder or None, **graph})
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
    return app


async def start_http(ready: asyncio.Event, host: str, port: int, hook: Webhook | None = None) -> web.AppRunner:
    runner = web.AppRunner(build_app(ready, hook), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
