"""``aisre bench --mode forecast``: forecast scenarios played through the real Prometheus.

A forecast scenario is a scenario-v1 file with a ``forecast`` block instead of a fault
(docs/forecasts.md has the format): series described by summed components (constant, ramp,
daily or weekly wave, log-rotation sawtooth, noise) relative to t=0 = the moment the bench
writes them, and optional TLS certificates with their remaining validity. ``expect`` says
whether a Predicted Incident is right (``incident``, ``rootCause``) and, for a failing one,
``failureIn``: the true time to the limit from t=0.

Each scenario gets a label namespace of its own (``bench-fc-…``), so series of different
scenarios and runs never mix. The series are written by remote write (aisre.bench.metrics),
then the operator's own forecast code (``forecast_prometheus``: the same PromQL, the same
model) is run at several times ``replay`` before t=0, each reading only what Prometheus held
up to then. Scored: precision and recall (an alert counts as right only with the expected
category and resource), the error of the predicted time at t=0, the lead time (true time
to failure at the first alert), and false alarms on healthy scenarios (any alert at any
replay time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import statistics
import uuid
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from aisre.agents.base import PrometheusSettings
from aisre.api.meta import ResourceRef
from aisre.api.taxonomy import RootCauseCategory
from aisre.bench.metrics import Series, remote_write
from aisre.bench.scenario import DNS1123_LABEL, Labels, Seconds, substitute
from aisre.forecast.certificates import read_pem
from aisre.forecast.plan import Forecasted, most_urgent
from aisre.operator.detection.forecast import ForecastConfig, certificate_forecast, forecast_prometheus

HOUR = 3600.0
MAX_SAMPLES = 5000  # per series
REPLAY = (-6 * HOUR, -4 * HOUR, -2 * HOUR, -1 * HOUR, 0.0)  # evaluation times relative to t=0
SETTLE_S = 1.0  # Prometheus answers remote-written samples at once; a moment for the head's index


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Component(_Model):
    """One additive part of a series (values before ``scale``)."""

    kind: Literal["constant", "ramp", "wave", "sawtooth", "noise"]
    value: float = 0.0  # constant
    at: Seconds = 0.0  # ramp: starts rising here; sawtooth: a reset here (and every period around it)
    until: Seconds | None = None  # ramp: stops rising here (None: keeps rising)
    per_hour: float = 0.0  # ramp: rise per hour
    period: Seconds = 86400.0  # wave, sawtooth
    amplitude: float = 0.0  # wave: half of peak-to-trough
    peak: Seconds = 0.0  # wave: a time (relative to t=0) at which it peaks
    rise: float = 0.0  # sawtooth: how much it grows over one period before it resets
    stop: Seconds | None = None  # sawtooth: no reset after this time (rotation stopped)
    stddev: float = 0.0  # noise
    seed: int = 0


def component_value(c: Component, t: float, rng: random.Random) -> float:
    if c.kind == "constant":
        return c.value
    if c.kind == "ramp":
        end = t if c.until is None else min(t, c.until)
        return c.per_hour * max(0.0, end - c.at) / HOUR
    if c.kind == "wave":
        return c.amplitude * math.cos(2 * math.pi * (t - c.peak) / c.period)
    if c.kind == "sawtooth":
        if c.stop is not None and t > c.stop:  # the last reset before the stop, then growth never reset
            last = c.at + math.floor((c.stop - c.at) / c.period) * c.period
            return c.rise * (t - last) / c.period
        return c.rise * (((t - c.at) % c.period) / c.period)
    return rng.gauss(0.0, c.stddev)


class ForecastSeries(_Model):
    series: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: Labels = Field(default_factory=dict)
    from_: Seconds = Field(-20 * HOUR, alias="from")
    step: Seconds = 120.0
    scale: float = 1.0
    components: list[Component] = Field(min_length=1)

    def samples(self, salt: str) -> list[tuple[float, float]]:
        count = int(-self.from_ // self.step) + 1
        if count > MAX_SAMPLES:
            raise ValueError(f"series {self.series}: {count} samples, more than {MAX_SAMPLES}")
        rngs = [random.Random(f"{c.seed}:{self.series}:{salt}:{i}") for i, c in enumerate(self.components)]
        out = []
        for k in range(count):
            t = self.from_ + k * self.step
            out.append((t, max(0.0, self.scale * sum(component_value(c, t, r) for c, r in zip(self.components, rngs)))))
        return out


class ForecastCertificate(_Model):
    name: str = Field(pattern=DNS1123_LABEL)
    common_name: str = "service.example.com"
    expires_in: Seconds


class ForecastBlock(_Model):
    series: list[ForecastSeries] = Field(default_factory=list)
    certificates: list[ForecastCertificate] = Field(default_factory=list)
    horizon: Seconds = 12 * HOUR


class ExpectedCause(_Model):
    category: RootCauseCategory
    resource: dict[str, str]


class ForecastExpect(_Model):
    incident: bool
    root_cause: ExpectedCause | None = None
    failure_in: Seconds | None = None


class ForecastScenario(_Model):
    api_version: Literal["aisre.dev/scenario-v1"]
    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    forecast: ForecastBlock
    expect: ForecastExpect


def load_dir(directory: Path) -> list[ForecastScenario]:
    """Every file of the directory with a ``forecast`` block (others are not forecast scenarios)."""
    out = []
    for path in sorted(directory.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "forecast" in doc:
            try:
                out.append(ForecastScenario.model_validate(doc))
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from error
    return out


def self_signed_pem(cn: str, not_after: dt.datetime) -> bytes:
    """A self-signed certificate (the bench's stand-in for a TLS Secret's tls.crt)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_after - dt.timedelta(days=90))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _matches(f: Forecasted, expected: ExpectedCause | None) -> bool:
    if expected is None:
        return False
    r = f.subject.resource
    return f.category == expected.category and r.kind == expected.resource.get("kind") and r.name == expected.resource.get("name")


async def _evaluate(scenario: ForecastScenario, namespace: str, prometheus: PrometheusSettings, t0: float,
                    at: float) -> list[Forecasted]:
    """Every alerting forecast of the scenario as of ``t0 + at``."""
    config = ForecastConfig(horizon_s=scenario.forecast.horizon, lookback_s=24 * HOUR)
    now = t0 + at
    sweep = await forecast_prometheus(prometheus, None, config, now, lambda ns: ns == namespace, namespace)
    found = [f for f in sweep.forecasts if f.subject.home == namespace
             and (f.subject.resource.namespace == namespace or f.subject.resource.name.startswith(namespace))]
    for cert in scenario.forecast.certificates:
        validity = read_pem(self_signed_pem(cert.common_name, dt.datetime.fromtimestamp(t0 + cert.expires_in, dt.UTC)))
        found.append(certificate_forecast(validity, ResourceRef(kind="Secret", name=cert.name, namespace=namespace),
                                          dt.datetime.fromtimestamp(now, dt.UTC), scenario.forecast.horizon))
    return [f for f in most_urgent(found).values() if f.prediction.alerts]


async def play(scenario: ForecastScenario, prometheus_url: str) -> dict[str, Any]:
    namespace = f"bench-fc-{uuid.uuid4().hex[:8]}"
    t0 = dt.datetime.now(dt.UTC).timestamp()
    block = substitute(scenario.forecast.model_dump(by_alias=True), namespace)
    series = [ForecastSeries.model_validate(s) for s in block["series"]]
    written = [Series({**s.labels, "namespace": namespace, "__name__": s.series},
                      [(int((t0 + t) * 1000), v) for t, v in s.samples(salt=scenario.name)]) for s in series]
    if written:
        remote_write(prometheus_url, written)
        await asyncio.sleep(SETTLE_S)
    settings = PrometheusSettings(url=prometheus_url, query_timeout_s=20.0)
    expected = scenario.expect.root_cause
    if expected is not None:
        expected = ExpectedCause.model_validate(substitute(expected.model_dump(by_alias=True), namespace))
    timeline = []
    for at in REPLAY:
        alerts = await _evaluate(scenario, namespace, settings, t0, at)
        timeline.append({"at_h": at / HOUR, "alerts": [{
            "category": f.category.value if hasattr(f.category, "value") else f.category,
            "resource": f.subject.resource.display(), "eta_h": round((f.prediction.eta_s or 0) / HOUR, 3),
            "early_h": round((f.prediction.eta_early_s or 0) / HOUR, 3),
            "late_h": None if f.prediction.eta_late_s is None else round(f.prediction.eta_late_s / HOUR, 3),
            "confidence": f.prediction.confidence, "right": _matches(f, expected), "why": f.prediction.why[:300]}
            for f in alerts]})
    final = timeline[-1]["alerts"]
    right = [a for a in final if a["right"]]
    first = next((step for step in timeline if any(a["right"] for a in step["alerts"])), None)
    failure_h = None if scenario.expect.failure_in is None else scenario.expect.failure_in / HOUR
    return {
        "name": scenario.name, "expected_incident": scenario.expect.incident,
        "expected": None if expected is None else {"category": expected.category.value if hasattr(expected.category, "value")
                                                   else expected.category,
                                                   "resource": f"{expected.resource.get('kind')}/{expected.resource.get('name')}"},
        "failure_in_h": failure_h, "raised": bool(final), "right": bool(right),
        "wrong_alerts": len(final) - len(right), "ever_alerted": any(step["alerts"] for step in timeline),
        "predicted_in_h": right[0]["eta_h"] if right else None,
        "error_h": round(abs(right[0]["eta_h"] - failure_h), 3) if right and failure_h is not None else None,
        "lead_time_h": round(failure_h - first["at_h"], 3) if first is not None and failure_h is not None else None,
        "timeline": timeline, "error": None,
    }


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision, recall, time error, lead time and false alarms over the scenarios' results."""
    failing = [r for r in results if r["expected_incident"]]
    healthy = [r for r in results if not r["expected_incident"]]
    tp = sum(1 for r in failing if r["right"])
    fp = sum(r["wrong_alerts"] for r in failing) + sum(1 for r in healthy if r["raised"])
    errors = [r["error_h"] for r in results if r["error_h"] is not None]
    relative = [r["error_h"] / r["failure_in_h"] for r in results if r["error_h"] is not None and r["failure_in_h"]]
    leads = [r["lead_time_h"] for r in results if r["lead_time_h"] is not None]
    return {
        "scenarios": len(results), "failing": len(failing), "healthy": len(healthy),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / len(failing), 4) if failing else None,
        "false_alarms_healthy": sum(1 for r in healthy if r["ever_alerted"]),
        "time_error_mean_h": round(statistics.fmean(errors), 3) if errors else None,
        "time_error_max_h": round(max(errors), 3) if errors else None,
        "time_error_mean_relative": round(statistics.fmean(relative), 4) if relative else None,
        "lead_time_mean_h": round(statistics.fmean(leads), 3) if leads else None,
        "lead_time_min_h": round(min(leads), 3) if leads else None,
        "replay_h": [at / HOUR for at in REPLAY],
        "results": results,
    }


def run(scenarios_dir: Path, json_out: Path, prometheus_url: str, tags: list[str] | None = None) -> int:
    scenarios = [s for s in load_dir(scenarios_dir) if not tags or set(tags) & set(s.tags)]
    results = []
    for scenario in scenarios:
        try:
            results.append(asyncio.run(play(scenario, prometheus_url)))
        except Exception as error:  # one scenario's trouble is its result, not the run's end
            results.append({"name": scenario.name, "expected_incident": scenario.expect.incident, "raised": False,
                            "right": False, "wrong_alerts": 0, "ever_alerted": False, "error_h": None,
                            "lead_time_h": None, "failure_in_h": None, "error": f"{type(error).__name__}: {error}"[:500]})
        r = results[-1]
        print(f"{r['name']:<44} expected={'alert' if r['expected_incident'] else 'none':<5} "
              f"raised={r['raised']!s:<5} right={r['right']!s:<5} eta={r.get('predicted_in_h')} "
              f"truth={r.get('failure_in_h')} lead={r.get('lead_time_h')} {r['error'] or ''}")
    report = score(results)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))
    return 0 if all(r["error"] is None for r in results) else 1
