"""Serving the operator: Kopf's settings, the HTTP server, leader election, logging and
shutdown.

``serve`` runs until ``stop`` is set (or SIGTERM/SIGINT when run from ``aisre run``),
so tests run the very same entry point in-process.

High availability (``AISRE_PEERING`` set): every replica serves HTTP and campaigns for
the leader Lease (``aisre.operator.leader``); only the replica holding it runs Kopf. Kopf
is our whole engine — its handlers, and the startup handlers that start detection (with
the Alertmanager webhook's intake) and remediation (with its in-memory retries) — so
gating Kopf gates all of it at one point, and nothing of ours runs outside it. Kopf's own
peering is not used: it pauses *every* operator of equal priority, and a crashed peer
stays "alive" in it for its 60 s lifetime, so a replacement would sit paused; the Lease
gives client-go's semantics (take-over after 15 s, at once after a clean release). A
leader that loses the Lease stops Kopf and exits non-zero, as controller-runtime does, and
comes back as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from typing import Any

import kopf
import structlog

from aisre import plugins, tracing
from aisre.api.meta import GROUP
from aisre.operator import handlers  # noqa: F401  (registers the Kopf handlers)
from aisre.operator.config import OperatorConfig
from aisre.kube.reader import connect
from aisre.operator.http import Webhook, start_http
from aisre.operator.leader import LeaderElector, Role
from aisre.operator.logs import configure_logging
from aisre.operator.metrics import LEADER
from aisre.operator.namespace_sight import Insights, keep_in_sight, uses_globs
from aisre.operator.signing_key import signing_key

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
    # A handler that fails unexpectedly (a timeout while the API server is busy, a
    # connection the pool had not opened yet) is retried after 5 s, not Kopf's 60 s: the
    # first Incident after a start must not wait a minute for its Investigation. Our
    # handlers are idempotent (marks, uids, the journal's claim), so a retry is safe.
    settings.execution.default_backoff = 5
    # A 429 says when to come back ("storage is (re)initializing" after a CRD changes: 1 s);
    # Kopf's own schedule would wait up to 21 s between tries and start a watch that late.
    settings.networking.enforce_retry_after = True
    # Kopf runs standalone even with peering: the leader Lease decides which replica runs it.
    settings.peering.standalone = True
    return settings


class LeadershipLost(RuntimeError):
    """The leader could not renew its Lease (or another replica took it): it stopped."""


async def serve(
    config: OperatorConfig,
    *,
    stop: asyncio.Event | threading.Event | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Run Kopf (on the leader, or always without peering) and the HTTP server until
    stopped; then shut both down cleanly and release the Lease."""
    kopf_ready = asyncio.Event()
    found = plugins.reload(config.plugins)  # loaded once, before anything calls a plugin
    for plugin in found.problems():
        log.warning("plugin not running", group=plugin.group.short, plugin=plugin.name, state=plugin.state.value,
                    reason=plugin.reason)
    if tracing.configure():  # OTEL_* variables; off (no-op spans) without an endpoint
        log.info("tracing on", endpoint=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                 or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    async with connect(config.kubeconfig) as client:
        key = await signing_key(config, client)
    elector = _elector(config)
    role = Role(elector)
    webhook = Webhook(role=role if elector is not None else None)
    runner = await start_http(kopf_ready, config.http_host, config.http_port, webhook)
    log.info("http server started", host=config.http_host, port=config.http_port)

    async def mark_ready() -> None:
        while not role.ready(kopf_ready.is_set()):
            await asyncio.sleep(0.1)
        if ready is not None:
            ready.set()
        log.info("operator ready", role=role.name, namespaces=list(config.namespaces) or "all")

    marker = asyncio.create_task(mark_ready())
    try:
        if elector is None:
            LEADER.set(1)
            await _run_kopf(config, stop, kopf_ready, webhook, key)
        else:
            await _campaign_then_run(config, elector, stop, kopf_ready, webhook, key)
    finally:
        marker.cancel()
        await runner.cleanup()
        await asyncio.to_thread(tracing.shutdown)  # flushes the spans still batched
        log.info("operator stopped")


def _elector(config: OperatorConfig) -> LeaderElector | None:
    if config.peering_name is None:
        return None
    LEADER.set(0)
    return LeaderElector(connect(config.kubeconfig), config.operator_namespace, config.lease_name, config.instance,
                         config.lease, on_change=lambda leading: LEADER.set(1 if leading else 0))


async def _run_kopf(config: OperatorConfig, stop: asyncio.Event | threading.Event | None,
                    kopf_ready: asyncio.Event, webhook: Webhook, key: bytes,
                    elector: LeaderElector | None = None) -> None:
    kwargs: dict[str, Any] = {}
    if config.namespaces:
        kwargs["namespaces"] = list(config.namespaces)
    else:
        kwargs["clusterwide"] = True
    insights = Insights()
    # Started before Kopf, so Kopf's shutdown (which cancels what started after it) leaves it to us.
    sight = (asyncio.create_task(keep_in_sight(insights, config.namespaces, connect(config.kubeconfig)),
                                 name="namespace-sight") if uses_globs(config.namespaces) else None)
    try:
        await kopf.operator(
            settings=kopf_settings(config),
            standalone=True,
            stop_flag=stop,
            ready_flag=kopf_ready,
            insights=insights,
            memo=kopf.Memo(config=config, webhook=webhook, signing_key=key, elector=elector),
            **kwargs,
        )
    finally:
        if sight is not None:
            sight.cancel()
            await asyncio.gather(sight, return_exceptions=True)


async def _campaign_then_run(config: OperatorConfig, elector: LeaderElector,
                             stop: asyncio.Event | threading.Event | None,
                             kopf_ready: asyncio.Event, webhook: Webhook, key: bytes) -> None:
    """Stand by until this replica holds the Lease, then run Kopf until stopped or the
    Lease is lost. Every task here is created before Kopf starts, so Kopf's shutdown
    (which cancels the tasks it finds were started after it) leaves them alone."""
    halt = asyncio.Event()  # stops the standby wait and Kopf: a stop request, or the Lease lost
    elector.on_lost = halt.set
    stopper = asyncio.create_task(_relay_stop(stop, halt), name="stop-relay")
    campaign = asyncio.create_task(elector.run(), name="leader-election")
    leading = asyncio.create_task(elector.leading.wait())
    halted = asyncio.create_task(halt.wait())
    try:
        await asyncio.wait({leading, halted, campaign}, return_when=asyncio.FIRST_COMPLETED)
        if campaign.done():
            campaign.result()  # the campaign never ends on its own while standing by: raise why
        if elector.is_leader and not halt.is_set():
            await _run_kopf(config, halt, kopf_ready, webhook, key, elector)
    finally:
        lost = elector.lost.is_set()
        for task in (stopper, campaign, leading, halted):
            task.cancel()
        await asyncio.gather(stopper, campaign, leading, halted, return_exceptions=True)
        await elector.release()
        await elector.client.aclose()
    if lost:
        raise LeadershipLost(f"lost the leader Lease {config.operator_namespace}/{config.lease_name}")


async def _relay_stop(stop: asyncio.Event | threading.Event | None, halt: asyncio.Event) -> None:
    """Sets ``halt`` on a stop request: the caller's flag, or SIGTERM/SIGINT (in the main
    thread; once Kopf runs, its own handlers take the signals and it stops by itself)."""
    if stop is None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, halt.set)
        return
    if isinstance(stop, asyncio.Event):
        await stop.wait()
    else:
        while not stop.is_set():
            await asyncio.sleep(0.2)
    halt.set()


def run(config: OperatorConfig | None = None) -> None:
    """Entry point of ``aisre run``: SIGTERM/SIGINT stop it gracefully (Kopf handles them)."""
    config = config or OperatorConfig.from_env()
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(serve(config))
    except LeadershipLost as error:
        log.error("exiting to stand by again", reason=str(error))
        raise SystemExit(1) from error
