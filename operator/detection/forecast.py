"""The forecast loop: every ``forecast_interval`` seconds, read the series of the forecast
targets (aisre.forecast.targets) from Prometheus and the certificates from the cluster, run
the pure model on each, and open, update or resolve Predicted Incidents as
``aisre.forecast.plan`` decides.

Who it talks to: Prometheus through the metrics agent's ``range_query`` (one seam), the API server
through the detection service's client. Predicted Incidents carry the operator's mark and a
label of their own (``aisre.dev/forecast-fingerprint``), so the reactive detector never
adopts them and only the operator's own are ever updated or resolved. A query that fails
leaves its open Incidents as they are (an outage of the monitoring is not a turn of the
trend). Secret data never leaves ``aisre.forecast.certificates``: only notAfter and subject.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from aisre.agents.base import PrometheusSettings
from aisre.agents.metrics import range_query, spec_limits  # the metrics agent's seam to Prometheus
from aisre.api.incident import ForecastModel
from aisre.api.meta import GROUP, VERSION, ResourceRef
from aisre.api.signing import MARK_ANNOTATION, has_mark, object_mark
from aisre.forecast.certificates import (CertificateUnreadable, CertificateValidity, expiry_prediction,
                                         from_cert_manager, read_tls_secret)
from aisre.forecast.model import ForecastSettings, forecast
from aisre.forecast.plan import (Forecasted, OpenPredicted, OpenRecord, PlanStep, ResolvePredicted, UpdatePredicted,
                                 incident_spec, plan)
from aisre.forecast.targets import (CERTIFICATE_ADVICE, CERTIFICATE_CATEGORY, CERTIFICATE_SIGNAL, MEMORY, TARGETS,
                                   Subject, Target, plain_subject_labels, selector_of)
from aisre.kube.reader import ClusterReader
from aisre.kube.scope import TargetNotFound, resolve_scope
from aisre.operator.investigation import rfc3339
from aisre.operator.metrics import FORECASTS, INCIDENTS

log = structlog.get_logger("aisre.detection.forecast")

FORECAST_LABEL = f"{GROUP}/forecast-fingerprint"
ROOT_ANNOTATION = f"{GROUP}/root"
MERGE = {"Content-Type": "application/merge-patch+json"}
MAX_POINTS = 1440  # per series and query: the step grows with the lookback
MAX_SERIES = 2000  # per target and sweep; more is cut and logged
STALE_AFTER_S = 600.0  # a series whose last sample is older than this (or 3 steps) is gone
MIN_STEP_S = 15.0
QUERY_DEADLINE_S = 30.0
REWRITE_SHIFT_S = 600.0
KSM_MEMORY_LIMITS = 'max by (namespace, pod, container) (kube_pod_container_resource_limits{resource="memory"})'

Series = tuple[dict[str, str], list[float], list[float]]  # labels, times (epoch s), values


@dataclass(frozen=True)
class ForecastConfig:
    horizon_s: float = 12 * 3600.0
    confidence: float = 0.8
    lookback_s: float = 3 * 86400.0
    min_history_s: float = 3600.0

    @property
    def model(self) -> ForecastSettings:
        return ForecastSettings(horizon_s=self.horizon_s, min_confidence=self.confidence, min_span_s=self.min_history_s)


# --- reading ------------------------------------------------------------------------------------


def _query_range(settings: PrometheusSettings, promql: str, start: float, end: float, step: float) -> list[Series]:
    raw = range_query(settings, promql, dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC),
                      step)
    out = []
    for item in raw:
        points = [(float(t), float(v)) for t, v in item.get("values") or []]
        out.append((dict(item.get("metric") or {}), [t for t, _ in points], [v for _, v in points]))
    return out


def step_of(window_s: float) -> float:
    return max(MIN_STEP_S, window_s / MAX_POINTS)


async def query_range(settings: PrometheusSettings, promql: str, start: float, end: float) -> list[Series]:
    """Every series of ``promql`` over [start, end], at most ``MAX_POINTS`` samples each."""
    step = step_of(end - start)
    return await asyncio.wait_for(asyncio.to_thread(_query_range, settings, promql, start, end, step), QUERY_DEADLINE_S)


# --- forecasting the series ----------------------------------------------------------------------


def model_of(seasonal_amplitude: float | None) -> ForecastModel:
    return ForecastModel.LINEAR_TREND_DAILY if seasonal_amplitude is not None else ForecastModel.LINEAR_TREND


def forecast_series(target: Target, subject: Subject, times: list[float], values: list[float], limit: float,
                    now: float, settings: ForecastSettings) -> Forecasted:
    p = forecast(times, values, limit, now, settings)
    seasonal = p.fit.seasonal_amplitude if p.fit else None
    return Forecasted(subject, p, target.category, model_of(seasonal), target.action, target.advice)


@dataclass
class Sweep:
    """What one sweep found: the forecasts, and which signals answered."""

    forecasts: list[Forecasted] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)


async def forecast_prometheus(prometheus: PrometheusSettings, reader: ClusterReader | None, config: ForecastConfig,
                              now: float, allowed: Callable[[str], bool], operator_namespace: str,
                              targets: tuple[Target, ...] = TARGETS) -> Sweep:
    """Every target's series forecast. Memory needs each container's limit and workload: the
    pod spec (through ``reader``), or kube-state-metrics' limit series when there is no reader."""
    sweep = Sweep()
    settings = config.model
    start = now - config.lookback_s
    for target in targets:
        try:
            found = await query_range(prometheus, target.promql, start, now)
        except Exception as error:
            log.warning("forecast query failed", signal=target.signal, error=f"{type(error).__name__}: {error}"[:300])
            FORECASTS.labels(target.signal, "QueryFailed").inc()
            continue
        sweep.answered.add(target.signal)
        # A series with no recent sample is an object gone (a replaced pod, a deleted claim):
        # extrapolating its old trend would forecast for nothing that exists.
        fresh_after = now - max(STALE_AFTER_S, 3 * step_of(config.lookback_s))
        found = [s for s in found if (target.cluster_scoped or allowed(s[0].get("namespace", "")))
                 and s[1] and s[1][-1] >= fresh_after]
        if len(found) > MAX_SERIES:
            log.warning("forecast series cut", signal=target.signal, series=len(found), kept=MAX_SERIES)
            found = found[:MAX_SERIES]
        if target is MEMORY:
            jobs = await _memory(found, prometheus, reader, now)
        else:
            jobs = [(subject, times, values, target.limit) for labels, times, values in found
                    if target.limit is not None
                    and (subject := plain_subject_labels(target, labels, operator_namespace)) is not None]
        # The fits are CPU-bound (Theil-Sen is quadratic in the samples kept): off the event loop.
        sweep.forecasts.extend(await asyncio.to_thread(_fit_all, target, jobs, now, settings))
    return sweep


Job = tuple[Subject, list[float], list[float], float]  # what to forecast: subject, times, values, limit


def _fit_all(target: Target, jobs: list[Job], now: float, settings: ForecastSettings) -> list[Forecasted]:
    return [forecast_series(target, subject, times, values, limit, now, settings) for subject, times, values, limit in jobs]


async def _memory(found: list[Series], prometheus: PrometheusSettings, reader: ClusterReader | None,
                  now: float) -> list[Job]:
    limits: dict[tuple[str, str, str], float] = {}
    owners: dict[tuple[str, str], ResourceRef] = {}
    try:  # kube-state-metrics' view, where it runs
        for labels, _, values in await query_range(prometheus, KSM_MEMORY_LIMITS, now - 600, now):
            if values:
                limits[(labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))] = values[-1]
    except Exception:  # no kube-state-metrics, or no answer: the pod specs say it
        pass
    if reader is not None:
        for namespace in sorted({labels.get("namespace", "") for labels, _, _ in found}):
            try:
                scope = await resolve_scope(reader, namespace, selector={})
            except TargetNotFound:
                continue
            for (pod, container, resource), value in spec_limits(scope.pods).items():
                if resource == "memory":
                    limits.setdefault((namespace, pod, container), value)
            for pod in scope.pods:
                top = scope.top_owner(pod)
                owners[(namespace, pod["metadata"]["name"])] = ResourceRef(
                    kind=top.get("kind", "Pod"), name=top["metadata"]["name"], namespace=namespace)
    out: list[Job] = []
    for labels, times, values in found:
        namespace, pod, container = labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", "")
        limit = limits.get((namespace, pod, container))
        if not limit:
            continue  # no limit: nothing to reach (the node's memory is another target)
        workload = owners.get((namespace, pod)) or ResourceRef(kind="Pod", name=pod, namespace=namespace)
        subject = Subject(MEMORY.signal, workload, namespace, selector_of(MEMORY, labels), f"container {container}",
                          container or None)
        out.append((subject, times, values, limit))
    return out


# --- certificates ---------------------------------------------------------------------------


def certificate_forecast(validity: CertificateValidity, ref: ResourceRef, now: dt.datetime, horizon_s: float) -> Forecasted:
    subject = Subject(CERTIFICATE_SIGNAL, ref, ref.namespace or "", "", validity.subject)
    # An expired certificate fails its clients' handshakes: they see a dependency fail.
    return Forecasted(subject, expiry_prediction(validity, now, horizon_s), CERTIFICATE_CATEGORY,
                      ForecastModel.CERTIFICATE_EXPIRY, None, CERTIFICATE_ADVICE)


async def forecast_certificates(client: httpx.AsyncClient, namespaces: tuple[str, ...] | None,
                                allowed: Callable[[str], bool], now: dt.datetime, horizon_s: float,
                                tls_secrets: bool = False) -> Sweep:
    """cert-manager Certificates' expiry, and TLS Secrets' when ``tls_secrets`` (opt-in: listing
    them returns their data, keys included, even though only tls.crt is parsed). No access
    (the chart grants none to Secrets by default) or no cert-manager: that part is skipped."""
    sweep = Sweep()
    scopes = [f"/namespaces/{ns}" for ns in namespaces] if namespaces else [""]
    issued: set[tuple[str, str]] = set()  # Secrets a Certificate manages: cert-manager's record speaks for them
    certificates: list[dict[str, Any]] = []
    for scope in scopes:
        response = await client.get(f"/apis/cert-manager.io/v1{scope}/certificates")
        if response.status_code == 200:
            certificates.extend(response.json().get("items") or [])
    for certificate in certificates:
        meta = certificate.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if not allowed(namespace):
            continue
        issued.add((namespace, (certificate.get("spec") or {}).get("secretName", "")))
        validity = from_cert_manager(certificate)
        if validity is not None:
            ref = ResourceRef(kind="Certificate", name=meta.get("name", ""), namespace=namespace)
            sweep.forecasts.append(certificate_forecast(validity, ref, now, horizon_s))
    secrets_read = tls_secrets
    for scope in scopes if tls_secrets else ():
        response = await client.get(f"/api/v1{scope}/secrets", params={"fieldSelector": "type=kubernetes.io/tls"})
        if response.status_code != 200:
            secrets_read = False
            continue
        for secret in response.json().get("items") or []:
            meta = secret.get("metadata") or {}
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            if not allowed(namespace) or (namespace, name) in issued:
                continue
            try:
                validity = read_tls_secret(secret)
            except CertificateUnreadable as error:
                log.info("certificate not readable", secret=f"{namespace}/{name}", reason=str(error))
                continue
            sweep.forecasts.append(certificate_forecast(validity, ResourceRef(kind="Secret", name=name, namespace=namespace),
                                                        now, horizon_s))
        del response  # the list held Secret data: drop it now
    if secrets_read:
        sweep.answered.add(CERTIFICATE_SIGNAL)
    return sweep


# --- writing ------------------------------------------------------------------------------------


def _path(namespace: str, name: str | None = None, status: bool = False) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents" + (f"/{name}" if name else "") + (
        "/status" if status else "")


async def open_predicted(client: httpx.AsyncClient, namespaces: tuple[str, ...] | None, key: bytes) -> list[OpenRecord]:
    """The operator's own open Predicted Incidents (mark verified; look-alikes are ignored)."""
    paths = [_path(ns) for ns in namespaces] if namespaces else [f"/apis/{GROUP}/{VERSION}/incidents"]
    out = []
    for path in paths:
        response = await client.get(path, params={"labelSelector": FORECAST_LABEL})
        if response.status_code == 404:
            continue
        response.raise_for_status()
        for item in response.json().get("items") or []:
            spec, status = item.get("spec") or {}, item.get("status") or {}
            fingerprint = spec.get("fingerprint") or ""
            if status.get("state") == "Resolved" or not spec.get("prediction") or not has_mark(
                    key, item, "Incident", fingerprint):
                continue
            out.append(OpenRecord(item["metadata"]["name"], fingerprint, spec["prediction"].get("signal", ""),
                                  item["metadata"]["namespace"]))
    return out


def _condition(type_: str, reason: str, message: str, now: dt.datetime, generation: int) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message[:1024],
            "lastTransitionTime": rfc3339(now), "observedGeneration": generation}


async def apply(client: httpx.AsyncClient, step: PlanStep, now: dt.datetime, key: bytes) -> None:
    if isinstance(step, OpenPredicted):
        await _open(client, step.forecast, now, key)
    elif isinstance(step, UpdatePredicted):
        f = step.forecast
        current = await client.get(_path(f.subject.home, step.name))
        current.raise_for_status()
        before = current.json().get("spec") or {}
        first = before.get("firstSeen")
        spec = incident_spec(f, now, dt.datetime.fromisoformat(first.replace("Z", "+00:00")) if first else None)
        if not worth_writing(before, spec):
            return
        response = await client.patch(_path(f.subject.home, step.name), json={"spec": spec}, headers=MERGE)
        response.raise_for_status()
    else:
        await _resolve(client, step, now)


def worth_writing(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Rewrite the spec only when the forecast moved (time by ``REWRITE_SHIFT_S`` or more, the
    severity, the category): every spec write is an acceptance pass and a watch event."""
    old, new = before.get("prediction") or {}, after.get("prediction") or {}
    if before.get("severity") != after.get("severity") or old.get("category") != new.get("category"):
        return True
    try:
        shift = abs((dt.datetime.fromisoformat(str(old.get("failureTime")).replace("Z", "+00:00"))
                     - dt.datetime.fromisoformat(str(new.get("failureTime")).replace("Z", "+00:00"))).total_seconds())
    except ValueError:
        return True
    return shift >= REWRITE_SHIFT_S


def _manifest(f: Forecasted, name: str, now: dt.datetime, key: bytes) -> dict[str, Any]:
    s = f.subject
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident",
            "metadata": {"name": name, "namespace": s.home,
                         "labels": {FORECAST_LABEL: s.fingerprint, "app.kubernetes.io/managed-by": "aisre"},
                         "annotations": {ROOT_ANNOTATION: f"{s.resource.kind}/{s.resource.namespace or ''}/{s.resource.name}",
                                         MARK_ANNOTATION: object_mark(key, "Incident", s.home, name, s.fingerprint)}},
            "spec": incident_spec(f, now)}


async def _open(client: httpx.AsyncClient, f: Forecasted, now: dt.datetime, key: bytes) -> None:
    s, name = f.subject, f.subject.incident_name
    for _ in range(3):
        response = await client.post(_path(s.home), json=_manifest(f, name, now, key))
        if response.status_code != 409:
            break
        # The name is held: an earlier Predicted Incident of the same object, now resolved (open
        # ones are updated, never opened again), or someone else's object. Another name.
        name = f"{s.incident_name}-{secrets.token_hex(2)}"
    response.raise_for_status()
    # The status is the Incident handlers' to write from the spec (acceptance: state Predicted;
    # the Investigation's start: the timeline from the Predicted entry): a second writer here
    # would race them for the timeline.
    INCIDENTS.labels("predicted").inc()
    log.info("predicted incident opened", incident=name, namespace=s.home,
             in_hours=round((f.prediction.eta_s or 0.0) / 3600, 2), confidence=f.prediction.confidence)


async def _resolve(client: httpx.AsyncClient, step: ResolvePredicted, now: dt.datetime) -> None:
    assert step.namespace
    current = await client.get(_path(step.namespace, step.name))
    if current.status_code == 404:
        return
    current.raise_for_status()
    incident = current.json()
    status = incident.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Resolved"]
    conditions.append(_condition("Resolved", step.reason, step.message, now, incident["metadata"].get("generation", 1)))
    timeline = list(status.get("timeline") or [])[-98:] + [{"time": rfc3339(now), "event": step.reason,
                                                            "message": step.message[:1024]}]
    patch = {"status": {"state": "Resolved", "resolvedAt": rfc3339(now), "conditions": conditions, "timeline": timeline}}
    response = await client.patch(_path(step.namespace, step.name, status=True), json=patch, headers=MERGE)
    response.raise_for_status()
    INCIDENTS.labels("predicted_resolved").inc()
    log.info("predicted incident resolved", incident=step.name, namespace=step.namespace, reason=step.reason)


# --- the loop's one turn ------------------------------------------------------------------------


async def sweep_once(client: httpx.AsyncClient, prometheus: PrometheusSettings | None, config: ForecastConfig,
                     namespaces: tuple[str, ...] | None, allowed: Callable[[str], bool], operator_namespace: str,
                     key: bytes, now: dt.datetime | None = None, tls_secrets: bool = False) -> list[PlanStep]:
    """Forecast everything, then open, update and resolve Predicted Incidents; returns the steps."""
    at = now or dt.datetime.now(dt.UTC)
    found = Sweep()
    if prometheus is not None:
        found = await forecast_prometheus(prometheus, ClusterReader(client), config, at.timestamp(), allowed,
                                          operator_namespace)
    try:
        certs = await forecast_certificates(client, namespaces, allowed, at, config.horizon_s, tls_secrets)
        found.forecasts.extend(certs.forecasts)
        found.answered |= certs.answered
    except httpx.HTTPError as error:
        log.warning("certificates not read", error=f"{type(error).__name__}: {error}"[:300])
    for f in found.forecasts:
        FORECASTS.labels(f.subject.signal, f.prediction.outcome.value).inc()
    homes = tuple(dict.fromkeys((*namespaces, operator_namespace))) if namespaces else None
    steps = plan(found.forecasts, await open_predicted(client, homes, key), found.answered, config.horizon_s)
    for step in steps:
        try:
            await apply(client, step, at, key)
        except httpx.HTTPError as error:  # the next sweep decides again from what is there
            log.warning("predicted incident write failed", step=type(step).__name__, error=f"{type(error).__name__}: {error}"[:300])
    return steps
