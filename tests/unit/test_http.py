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
