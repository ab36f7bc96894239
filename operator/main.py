"""Serving the operator: Kopf's settings, the HTTP server, logging and shutdown.

``serve`` runs until ``stop`` is set (or SIGTERM/SIGINT when run from ``aisre run``),
so tests run the very same entry point in-process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf
import structlog

from aisre.api.meta import GROUP
from aisre.operator import handlers  # noqa: F401  (registers the Kopf handlers)
from aisre.operator.config import OperatorConfig
from aisre.operator.http import Webhook, start_http
from aisre.operator.logs import configure_logging

log = structlog.get_logger("aisre.operator")


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Our CRDs have structural schemas: anything Kopf wrote under .status would be
    # pruned, so its bookkeeping goes to annotations under our own prefix.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Kubernetes Events are posted on purpose by our code, not for every log line.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "aisre"
    settings.posting.reporting_instance = config.instance
    # Reconnect watches before load balancers cut idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = 8
    settings.peering.standalone = config.peering_name is None
    if config.peering_name:
        settings.peering.name = config.peering_name
    return settings


async def serve(
    config: OperatorConfig,
    *,
    stop: asyncio.Event | threading.Event | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Run Kopf and the HTTP server until stopped; then shut both down cleanly."""
    kopf_ready = asyncio.Event()
    webhook = Webhook()
    runner = await start_http(kopf_ready, config.http_host, config.http_port, webhook)
    log.info("http server started", host=config.http_host, port=config.http_port)

    async def mark_ready() -> None:
        await kopf_ready.wait()
        if ready is not None:
            ready.set()
        log.info("operator ready", namespaces=list(config.namespaces) or "all")

    marker = asyncio.create_task(mark_ready())
    kwargs: dict[str, Any] = {}
    if config.namespaces:
        kwargs["namespaces"] = list(config.namespaces)
    else:
        kwargs["clusterwide"] = True
    try:
        await kopf.operator(
            settings=kopf_settings(config),
            standalone=config.peering_name is None,
            peering_name=config.peering_name,
            stop_flag=stop,
            ready_flag=kopf_ready,
            memo=kopf.Memo(config=config, webhook=webhook),
            **kwargs,
        )
    finally:
        marker.cancel()
        await runner.cleanup()
        log.info("operator stopped")


def run(config: OperatorConfig | None = None) -> None:
    """Entry point of ``aisre run``: SIGTERM/SIGINT stop it gracefully (Kopf handles them)."""
    config = config or OperatorConfig.from_env()
    configure_logging(config.log_level, config.log_format)
    asyncio.run(serve(config))
