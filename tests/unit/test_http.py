"""The operator's HTTP endpoints: health, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx

from aisre.bench.operator_thread import free_port
from aisre.operator.http import start_http
from aisre.operator.metrics import HANDLER_CALLS


async def test_health_ready_and_metrics() -> None:
    ready = asyncio.Event()
    port = free_port()
    runner = await start_http(ready, "127.0.0.1", port)
    HANDLER_CALLS.labels("Investigation", "accepted").inc()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            ready.set()
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert 'aisre_handler_calls_total{kind="Investigation",outcome="accepted"}' in metrics.text
            assert (await client.get("/nope")).status_code == 404
    finally:
        await runner.cleanup()


async def test_a_standby_is_live_and_ready_but_not_leader_and_refers_alerts_on() -> None:
    from aisre.operator.http import Webhook
    from aisre.operator.leader import LeaderElector, Record, Role

    elector = LeaderElector(httpx.AsyncClient(), "ns", "aisre-leader", "aisre-1")
    elector.record = Record(holder="aisre-0", duration=15)
    hook = Webhook(token="t", role=Role(elector))
    ready = asyncio.Event()  # Kopf never starts on a standby
    port = free_port()
    runner = await start_http(ready, "127.0.0.1", port, hook)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/readyz")).json() == {"status": "starting", "role": "starting"}
            elector.tried.set()
            assert (await client.get("/healthz")).json() == {"status": "ok", "role": "standby"}
            ready_ = await client.get("/readyz")
            body = ready_.json()
            assert set(body.pop("plugins")) == {"counts", "notRunning"}  # plugins that are not running, and why
            assert ready_.status_code == 200 and body == {"status": "ready", "role": "standby", "leader": "aisre-0"}
            leader = await client.get("/leaderz")
            assert leader.status_code == 503 and leader.json()["holder"] == "aisre-0"
            alert = await client.post("/alertmanager", json={}, headers={"Authorization": "Bearer t"})
            assert alert.status_code == 503 and alert.headers["Retry-After"] == "5" and "aisre-0" in alert.json()["error"]
            elector.leading.set()  # leading, but Kopf not started yet: not ready
            assert (await client.get("/readyz")).status_code == 503
            ready.set()
            assert (await client.get("/readyz")).json()["role"] == "leader"
            assert (await client.get("/leaderz")).status_code == 200
    finally:
        await runner.cleanup()
        await elector.client.aclose()
