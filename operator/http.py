"""The operator's HTTP server: /healthz (the event loop answers), /readyz (Kopf has
started watching), /metrics (Prometheus). Later: the Alertmanager webhook.

It runs on aiohttp, the server library Kopf itself depends on, in the operator's loop.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def build_app(ready: asyncio.Event) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_http(ready: asyncio.Event, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(ready), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
