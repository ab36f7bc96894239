"""Detection running inside the operator: the watches, the decision loop, the writes.

Started from Kopf's startup handler with the operator's API client, stopped at cleanup.
At start it adopts the open Incidents it wrote before (so a restart neither duplicates
them nor recounts their signals), then lists and watches the cluster.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

from aisre.agents.base import PrometheusSettings
from aisre.api.incident import IncidentSource
from aisre.api.meta import GROUP, VERSION
from aisre.api.signal import Signal
from aisre.api.taxonomy import Severity
from aisre.kube.reader import ClusterReader
from aisre.operator.detection import forecast, log_watch, metric_watch, store
from aisre.operator.detection.detector import Detector, Open, Operation, Resolve, Tracked, Update
from aisre.operator.detection.pipeline import Pipeline
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.detection.watch import WatchSpec, watch_forever
from aisre.operator.investigation import rfc3339
from aisre.operator.metrics import INCIDENTS
from aisre.report import render_incident
from aisre.tracing import span, traceparent

log = structlog.get_logger("aisre.detection")

# (kind, core API?, group/version path, plural, field selector)
WATCHED = [
    ("Node", "/api/v1", "nodes", None),
    ("Pod", "/api/v1", "pods", "status.phase!=Succeeded"),
    ("Event", "/api/v1", "events", "type=Warning"),
    ("Service", "/api/v1", "services", None),
    ("PersistentVolumeClaim", "/api/v1", "persistentvolumeclaims", None),
    ("Deployment", "/apis/apps/v1", "deployments", None),
    ("StatefulSet", "/apis/apps/v1", "statefulsets", None),
    ("DaemonSet", "/apis/apps/v1", "daemonsets", None),
    ("ReplicaSet", "/apis/apps/v1", "replicasets", None),
    ("Job", "/apis/batch/v1", "jobs", None),
]


def namespace_filter(include: tuple[str, ...], exclude: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Globs to watch (empty: all) minus globs to leave alone (``!x`` in include works too)."""
    positive = [p for p in include if not p.startswith("!")]
    negative = [p[1:] for p in include if p.startswith("!")] + list(exclude)

    def allowed(namespace: str) -> bool:
        if positive and not any(fnmatch.fnmatchcase(namespace, p) for p in positive):
            return False
        return not any(fnmatch.fnmatchcase(namespace, p) for p in negative)

    return allowed


def explicit_namespaces(include: tuple[str, ...]) -> tuple[str, ...] | None:
    """A plain list of names (no globs, no exclusions) is watched namespace by namespace."""
    if include and all(not any(c in p for c in "*?[!") for p in include):
        return include
    return None


def watch_specs(include: tuple[str, ...]) -> list[WatchSpec]:
    names = explicit_namespaces(include)
    specs = []
    for kind, prefix, plural, field in WATCHED:
        if names is None:
            specs.append(WatchSpec(kind, f"{prefix}/{plural}", field))
        elif kind != "Node":  # a namespaced install cannot watch nodes
            specs.extend(WatchSpec(kind, f"{prefix}/namespaces/{ns}/{plural}", field) for ns in names)
    return specs



def incident_itself_gone(status: int, response: httpx.Response | None) -> bool:
    """A 404 about the Incident object (someone deleted it), not about its namespace."""
    if status != 404 or response is None:
        return False
    try:
        details = response.json().get("details") or {}
    except ValueError:
        return False
    return details.get("kind") == "incidents"

class DetectionService:
    def __init__(self, thresholds: Thresholds, operator_namespace: str, include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = (), prometheus: PrometheusSettings | None = None,
                 signing_key: bytes | None = None, forecast_tls_secrets: bool = False) -> None:
        self.th = thresholds
        self.forecast_tls_secrets = forecast_tls_secrets  # forecasts read TLS Secrets' tls.crt
        # The mark on the Incidents it opens; without the operator's key, a key of its own
        # (it then adopts nothing after a restart, which is safe).
        self.key = signing_key or secrets.token_bytes(32)
        self.prometheus = prometheus  # None: metric-only faults reach detection only as alerts
        self.operator_namespace = operator_namespace
        self.include = include
        self.detector = Detector(thresholds, operator_namespace, write_interval=max(0.5, thresholds.tick * 2))
        self.pipeline = Pipeline(self.detector, thresholds, namespace_filter(include, exclude))
        self.client: httpx.AsyncClient | None = None
        self.watch_client: httpx.AsyncClient | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        self.metric_views: dict[str, str] = {}  # per namespace, what the last sweep saw
        self.log_views: dict[str, str] = {}
        self.metric_first_seen: dict[str, tuple[str, dt.datetime]] = {}  # per namespace: its signal, since when

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, client: httpx.AsyncClient, watch_client: httpx.AsyncClient) -> None:
        """``client`` writes Incidents and reads for the metric sweeps; ``watch_client`` (no
        connection cap) holds the watches. Both are the service's from now on: ``stop`` closes them."""
        self.client = client
        self.watch_client = watch_client
        now = dt.datetime.now(dt.UTC)
        names = explicit_namespaces(self.include)
        homes = (*names, self.operator_namespace) if names else ()
        for tracked in await store.load_open(client, tuple(dict.fromkeys(homes)), now, self.key, self.operator_namespace):
            self.detector.adopt(tracked)
        if self.detector.tracked:
            log.info("adopted open incidents", count=len(self.detector.tracked))
        specs = watch_specs(self.include)
        events = [asyncio.Event() for _ in specs]
        self.tasks = [asyncio.create_task(watch_forever(watch_client, spec, self._handle, synced=ev), name=f"watch-{spec.kind}")
                      for spec, ev in zip(specs, events, strict=True)]
        self.tasks.append(asyncio.create_task(self._synced(events), name="detection-synced"))
        self.tasks.append(asyncio.create_task(self._every(self.th.tick, self.tick, "detection tick failed"),
                                              name="detection-loop"))
        if self.prometheus is not None:
            self.tasks.append(asyncio.create_task(
                self._every(self.th.metrics_interval, self.look_at_metrics, "metric sweep failed"), name="detection-metrics"))
        if self.th.logs_interval > 0:
            self.tasks.append(asyncio.create_task(
                self._every(self.th.logs_interval, self.look_at_logs, "log sweep failed"), name="detection-logs"))
        if self.th.forecast_interval > 0:
            self.tasks.append(asyncio.create_task(
                self._every(self.th.forecast_interval, self.look_ahead, "forecast sweep failed"), name="detection-forecast"))

    async def _synced(self, events: list[asyncio.Event]) -> None:
        await asyncio.gather(*(e.wait() for e in events))
        self.synced.set()
        log.info("detection watching", objects=len(self.pipeline.index.pods), incidents=len(self.detector.tracked))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        for client in (self.client, self.watch_client):  # both were handed over at start
            if client is not None:
                await client.aclose()

    # --- input ---------------------------------------------------------------------------

    def _handle(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        try:
            self.pipeline.handle(kind, event_type, obj)
        except Exception as error:  # one odd object must not stop a watch
            log.warning("could not read an object", kind=kind, error=f"{type(error).__name__}: {error}"[:300])

    def alerts(self, signals: list[Signal]) -> list[Signal]:
        """Hand the alerts' signals to the detector; returns those refused (held alerts at their cap)."""
        return [signal for signal in signals if not self.detector.alert(signal)]

    def settled(self, keys: list[str]) -> set[str]:
        """Of these signal keys, those on record (or owed nothing more): ``Detector.settled``."""
        return self.detector.settled(keys)

    # --- the decision loop ---------------------------------------------------------------

    async def _every(self, seconds: float, step: Callable[[], Awaitable[Any]], failure: str) -> None:
        """After the first full listing, ``step`` every ``seconds``; a failing step is logged
        and tried again at the next turn."""
        await self.synced.wait()
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error(failure, error=f"{type(error).__name__}: {error}"[:500])
            await asyncio.sleep(seconds)

    async def look_at_metrics(self, now: dt.datetime | None = None) -> list[Signal]:
        """One sweep over the namespaces with pods: their metric-borne signals, now current."""
        assert self.client is not None and self.prometheus is not None
        reader, prometheus, at = ClusterReader(self.client), self.prometheus, now or dt.datetime.now(dt.UTC)

        async def held(namespaces: set[str]) -> list[metric_watch.Verdict]:
            verdicts = await metric_watch.sweep(reader, prometheus, namespaces, at, self.th.metrics_confidence)
            return metric_watch.held(verdicts, self.metric_first_seen)

        return await self._sweep("metrics", self.th.metrics_interval, self.metric_views, held)

    async def look_at_logs(self, now: dt.datetime | None = None) -> list[Signal]:
        """One sweep over the namespaces with pods: the faults only their logs show, now current."""
        assert self.client is not None
        reader, at = ClusterReader(self.client), now or dt.datetime.now(dt.UTC)
        since = at - dt.timedelta(seconds=self.th.post_change_window)
        return await self._sweep("logs", self.th.logs_interval, self.log_views, lambda namespaces: metric_watch.sweep_with(
            lambda ns: log_watch.look_at(reader, ns, at, self.th.logs_confidence, self.pipeline.changed_since(ns, since)),
            namespaces, "log sweep failed"))

    async def look_ahead(self, now: dt.datetime | None = None) -> list[forecast.PlanStep]:
        """One forecast sweep: Predicted Incidents opened, updated or resolved (docs/forecasts.md)."""
        assert self.client is not None
        config = forecast.ForecastConfig(self.th.forecast_horizon, self.th.forecast_confidence, self.th.forecast_lookback,
                                         self.th.forecast_min_history)
        return await forecast.sweep_once(self.client, self.prometheus, config, explicit_namespaces(self.include),
                                         self.pipeline.allowed, self.operator_namespace, self.key, now,
                                         tls_secrets=self.forecast_tls_secrets)

    async def _sweep(self, what: str, interval: float, views: dict[str, str],
                     run: Callable[[set[str]], Awaitable[list[metric_watch.Verdict]]]) -> list[Signal]:
        namespaces = {pod.namespace for pod in self.pipeline.index.pods.values()}
        began = time.monotonic()
        verdicts = await run(namespaces)
        took = time.monotonic() - began
        if took > interval:
            log.warning(f"{what} sweep slower than its interval", seconds=round(took, 2), namespaces=len(namespaces))
        found = []
        for verdict in verdicts:
            if views.get(verdict.namespace) != verdict.why:
                log.info(f"{what} view changed", namespace=verdict.namespace, now=verdict.why[:300],
                         signal=verdict.signal is not None)
            key = f"{what}/{verdict.namespace}"
            if verdict.signal is not None and what == "logs" and self.detector.reports_trouble_in(verdict.namespace, key):
                # The watches already report this namespace's trouble: its Incident is theirs,
                # and its Investigation reads the logs too.
                continue
            if verdict.answered:
                self.detector.observe(key, [verdict.signal] if verdict.signal else [])
            if verdict.signal is not None:
                found.append(verdict.signal)
        views.clear()
        views.update({v.namespace: v.why for v in verdicts})
        return found

    async def tick(self, now: dt.datetime | None = None) -> list[Operation]:
        now = now or dt.datetime.now(dt.UTC)
        operations = self.detector.decide(now)
        for operation in operations:
            await self._apply(operation, now)
        return operations

    async def _apply(self, operation: Operation, now: dt.datetime) -> None:
        assert self.client is not None
        tracked = operation.tracked
        try:
            if isinstance(operation, Open):
                # The Incident's trace continues the webhook request's, if one came with it;
                # its Investigation's trace continues this span (store writes it as an annotation).
                with span("incident open", parent=tracked.traceparent, attributes={
                        "aisre.incident": f"{tracked.namespace}/{tracked.name}", "aisre.root": tracked.root.display,
                        "aisre.source": IncidentSource(tracked.source).value,
                        "aisre.severity": Severity(tracked.severity).value, "aisre.signals": tracked.occurrences}):
                    tracked.traceparent = traceparent()
                    await store.create(self.client, tracked, now, self.key, self.operator_namespace)
                self.detector.written(tracked)
                INCIDENTS.labels("opened").inc()
            elif isinstance(operation, Update):
                await store.update(self.client, tracked, now, self.key)
                self.detector.written(tracked)
                tracked.dirty = False
                tracked.written_at = now
            elif isinstance(operation, Resolve):
                if tracked.dirty:  # a page its pager closed since the last write is on record first
                    await store.update(self.client, tracked, now, self.key)
                    self.detector.written(tracked)
                await store.resolve(self.client, tracked, now, await self._report(tracked, now))
                INCIDENTS.labels("resolved").inc()
        except Exception as error:  # whatever failed, the Incident is retried, never left half-open
            response = error.response if isinstance(error, httpx.HTTPStatusError) else None
            status = response.status_code if response is not None else 0
            detail = response.text[:300] if response is not None else f"{type(error).__name__}: {error}"[:300]
            if status in (403, 404) and isinstance(operation, Open | Update):
                # The namespace is being deleted, we may not write there, or someone deleted
                # the Incident (404 about the incident itself): nothing to keep.
                log.warning("incident cannot be written; dropped", incident=tracked.name, status=status, error=detail)
                INCIDENTS.labels("dropped").inc()
                self.detector.drop(tracked, now, namespace_gone=not incident_itself_gone(status, response))
                return
            # Not the server's or the network's answer (a bug, a bad value): worth an error.
            report = log.warning if isinstance(error, httpx.HTTPError) else log.error
            report("incident write failed; retrying", incident=tracked.name, op=type(operation).__name__, error=detail)
            INCIDENTS.labels("write_failed").inc()
            self._retry(operation, tracked)

    def _retry(self, operation: Operation, tracked: Tracked) -> None:
        if isinstance(operation, Open):
            self.detector.unopen(tracked)  # opens again on the next tick
        elif isinstance(operation, Resolve):
            self.detector.tracked[tracked.fingerprint] = tracked
        tracked.dirty = True

    async def _report(self, tracked: Tracked, now: dt.datetime) -> str | None:
        assert self.client is not None
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{tracked.namespace}"
        response = await self.client.get(f"{base}/incidents/{tracked.name}")
        if response.status_code != 200:
            return None
        incident = response.json()
        investigation = None
        ref = ((incident.get("status") or {}).get("investigationRef") or {}).get("name")
        if ref:
            got = await self.client.get(f"{base}/investigations/{ref}")
            investigation = got.json() if got.status_code == 200 else None
        return render_incident(incident, investigation, resolved_at=rfc3339(now))
