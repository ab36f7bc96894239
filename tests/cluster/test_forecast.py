"""Forecasts on the real control plane and the real Prometheus: a volume filling for hours
(written into Prometheus by remote write) opens a Predicted Incident with its time, interval
and fit, investigated with the forecast as its root cause and shown with its time by
``kubectl get incidents``; the clean-up that empties it resolves it by itself. A TLS Secret
whose certificate expires within the horizon opens one too, read from tls.crt. A memory
limit forecast to be reached is raised before it is, only where the policy's predictedMode
says auto."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aisre.agents.base import PrometheusSettings
from aisre.api.incident import ForecastModel
from aisre.bench.metrics import Series, remote_write
from aisre.bench.operator_thread import OperatorThread, free_port
from aisre.operator.detection.forecast import ForecastConfig, forecast_prometheus
from aisre.operator.detection.thresholds import Thresholds
from conftest_helpers import OWN_PREFIX, REPO, Kubectl, deployment, temporary_namespace
from remediation_helpers import policy, reapply_crds

HOUR = 3600.0
CAPACITY = 10 * 2**30
THRESHOLDS = dataclasses.replace(Thresholds.compressed(), forecast_interval=2.0, forecast_lookback=4 * HOUR)


def _volume(namespace: str, claim: str, points: list[tuple[float, float]]) -> list[Series]:
    labels = {"namespace": namespace, "persistentvolumeclaim": claim, "job": "kubelet"}
    ms = [int(t * 1000) for t, _ in points]
    return [Series({**labels, "__name__": "kubelet_volume_stats_used_bytes"}, [(m, v) for m, (_, v) in zip(ms, points)]),
            Series({**labels, "__name__": "kubelet_volume_stats_capacity_bytes"}, [(m, CAPACITY) for m in ms])]


def _incidents(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "incidents", "-n", namespace, "-o", "json").stdout)["items"]


def _until(what: str, probe: Callable[[], Any], timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _tls_secret(namespace: str, name: str, expires_in: dt.timedelta) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=80))
            .not_valid_after(now + expires_in).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(pem).decode(), "tls.key": base64.b64encode(key_pem).decode()}}


def test_a_filling_volume_is_predicted_then_resolved_by_its_clean_up(
        kubectl: Kubectl, kubeconfig: Path, own_namespace: str, prometheus: str) -> None:
    namespace = own_namespace
    now = time.time()
    # Three hours from 50 % to 70 %: at 100 % in 4.5 h. Noise of 0.5 % of the capacity.
    history = [(now - 3 * HOUR + i * 60, CAPACITY * (0.5 + 0.2 * i / 180 + 0.005 * ((i * 7919) % 11 - 5) / 5))
               for i in range(181)]
    remote_write(prometheus, _volume(namespace, "data", history))
    kubectl("apply", "-f", "-", input=json.dumps(_tls_secret(namespace, "shop-tls", dt.timedelta(hours=6))))
    # A worker whose memory climbs toward its 256Mi limit: at it in about 5 h.
    worker = deployment("worker", replicas=1)
    worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "256Mi"}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(worker))
    kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment/worker", "--timeout=60s")
    pod = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=worker", "-o", "json").stdout)["items"][0]
    limit = 256 * 2**20
    remote_write(prometheus, [Series(
        {"__name__": "container_memory_working_set_bytes", "namespace": namespace, "pod": pod["metadata"]["name"],
         "container": "worker"},
        [(int(t * 1000), limit * v / CAPACITY) for t, v in history])])
    started = time.monotonic()
    with OperatorThread(kubeconfig, free_port(), namespaces=(namespace,), detection=True, operator_namespace=namespace,
                        thresholds=THRESHOLDS, prometheus_url=prometheus, forecast_tls_secrets=True):
        def predicted(kind: str) -> dict[str, Any] | None:
            return next((i for i in _incidents(kubectl, namespace) if i["spec"]["resource"]["kind"] == kind
                         and (i.get("status") or {}).get("state") == "Predicted"), None)

        volume = _until("a Predicted Incident for the volume", lambda: predicted("PersistentVolumeClaim"))
        spec = volume["spec"]
        p = spec["prediction"]
        assert spec["resource"] == {"kind": "PersistentVolumeClaim", "name": "data", "namespace": namespace}
        assert spec["investigate"] is True and p["category"] == "StorageFailure" and p["signal"] == "volumeFull"
        eta = (dt.datetime.fromisoformat(p["failureTime"]) - dt.datetime.now(dt.UTC)).total_seconds()
        assert abs(eta - 4.5 * HOUR) < 0.5 * HOUR, p
        assert p["earliest"] < p["failureTime"] < p["latest"] and p["confidence"] >= 0.8
        assert p["fit"]["r2"] > 0.9 and p["fit"]["points"] > 100 and p["model"] == "linearTrend"
        assert "kubelet_volume_stats_used_bytes" in p["series"] and p["limit"] == 1.0
        # Investigated like any Incident: the forecast is its root cause, its fit the evidence.
        concluded = _until("the volume's Investigation concluded", lambda: next(
            (i for i in _incidents(kubectl, namespace) if i["metadata"]["name"] == volume["metadata"]["name"]
             and (i.get("status") or {}).get("rootCause")), None))
        assert concluded["status"]["state"] == "Predicted"  # nothing has failed yet
        assert [e["event"] for e in concluded["status"]["timeline"]][:2] == ["Predicted", "InvestigationStarted"]
        root = concluded["status"]["rootCause"]
        assert root["category"] == "StorageFailure" and root["resource"]["name"] == "data"
        investigation = json.loads(kubectl("get", "investigation", concluded["status"]["investigationRef"]["name"],
                                           "-n", namespace, "-o", "json").stdout)
        cited = {e["id"]: e for e in investigation["status"]["evidence"]}
        forecast = cited[investigation["status"]["hypotheses"][0]["evidenceIds"][0]]
        assert forecast["kind"] == "Forecast" and forecast["data"]["fit"]["r2"] > 0.9

        # kubectl shows when: the PREDICTED column is the central failure time.
        reapply_crds(kubectl)  # this checkout's CRDs (a shared cluster may hold another's)
        table = _until("the PREDICTED column", lambda: (lines := kubectl("get", "incidents", "-n", namespace).stdout
                                                        .splitlines()) and "PREDICTED" in lines[0] and lines, timeout=15)
        assert table[0].split()[:4] == ["NAME", "SEVERITY", "STATE", "PREDICTED"], table
        row = next(line.split() for line in table if line.startswith(volume["metadata"]["name"]))
        assert row[2] == "Predicted" and row[3] == p["failureTime"], table

        memory = _until("a Predicted Incident for the worker", lambda: predicted("Deployment"))["spec"]
        assert memory["resource"]["name"] == "worker" and memory["prediction"]["category"] == "MemoryLimitTooLow"
        assert memory["prediction"]["action"] == "setResources" and memory["prediction"]["limit"] == limit
        assert "container worker" in memory["title"]

        cert = _until("a Predicted Incident for the certificate", lambda: predicted("Secret"))["spec"]
        assert cert["resource"]["name"] == "shop-tls" and cert["prediction"]["model"] == "certificateExpiry"
        assert cert["prediction"]["signal"] == "certificateExpiry" and cert["prediction"]["confidence"] == 1.0
        assert "BEGIN" not in json.dumps(cert)  # nothing of the Secret's data

        # Someone cleans up: the volume falls to 10 % and stays there.
        last, at = history[-1][0], time.time()
        remote_write(prometheus, _volume(namespace, "data", [(last + (at - last) * k / 4, CAPACITY * 0.1)
                                                              for k in range(1, 5)]))
        resolved = _until("the volume's Incident resolved", lambda: next(
            (i for i in _incidents(kubectl, namespace) if i["metadata"]["name"] == volume["metadata"]["name"]
             and (i.get("status") or {}).get("state") == "Resolved"), None))
        reasons = {c["type"]: c["reason"] for c in resolved["status"]["conditions"]}
        assert reasons["Resolved"] == "TrendTurned" and resolved["status"]["resolvedAt"]
        assert [i for i in _incidents(kubectl, namespace) if i["metadata"]["name"] == volume["metadata"]["name"]]
        # The certificate's is still open: its time is not a trend.
        assert predicted("Secret") is not None
    assert time.monotonic() - started < 100


def test_the_forecast_bench_scores_scenarios_through_the_real_prometheus(prometheus: str, tmp_path: Path) -> None:
    from aisre.bench import forecast as bench

    chosen = ["disk-rotation-stopped-fails-in-5h", "healthy-log-rotation-sawtooth", "memory-limit-in-6h"]
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for name in chosen:
        (scenarios / f"{name}.yaml").write_text((REPO / "scenarios-forecast" / f"{name}.yaml").read_text())
    out = tmp_path / "forecast.json"
    started = time.monotonic()
    assert bench.run(scenarios, out, prometheus) == 0
    assert time.monotonic() - started < 60
    report = json.loads(out.read_text())
    by_name = {r["name"]: r for r in report["results"]}
    assert set(by_name) == set(chosen) and all(r["error"] is None for r in by_name.values())
    assert report["recall"] == 1.0 and report["precision"] == 1.0 and report["false_alarms_healthy"] == 0
    stopped = by_name["disk-rotation-stopped-fails-in-5h"]
    assert stopped["right"] and stopped["error_h"] < 1.0 and stopped["lead_time_h"] >= 5
    assert not by_name["healthy-log-rotation-sawtooth"]["ever_alerted"]


def _climbing_worker(kubectl: Kubectl, prometheus: str, namespace: str, **rule: str) -> None:
    """A worker whose memory climbs toward its 256Mi limit (at it in about 5 h), under a policy
    that runs setResources in auto for failures, with ``rule`` for forecasts."""
    policy(kubectl, namespace, actions=[{"type": "setResources", "mode": "auto", **rule}])
    worker = deployment("worker", replicas=1)
    worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "256Mi"}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(worker))
    kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment/worker", "--timeout=60s")
    pod = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=worker", "-o", "json").stdout)["items"][0]
    now, limit = time.time(), 256 * 2**20
    remote_write(prometheus, [Series(
        {"__name__": "container_memory_working_set_bytes", "namespace": namespace, "pod": pod["metadata"]["name"],
         "container": "worker"},
        [(int((now - 3 * HOUR + i * 60) * 1000), limit * (0.3 + 0.3 * i / 180 + 0.005 * ((i * 7919) % 11 - 5) / 5))
         for i in range(181)])])


def _memory_limit(kubectl: Kubectl, namespace: str) -> str:
    return json.loads(kubectl("get", "deployment", "worker", "-n", namespace, "-o", "json").stdout)[
        "spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]


def test_a_forecast_memory_limit_is_raised_before_it_is_reached_only_where_predicted_mode_is_auto(
        kubectl: Kubectl, kubeconfig: Path, own_namespace: str, prometheus: str) -> None:
    allowed = own_namespace
    with temporary_namespace(kubectl, OWN_PREFIX) as unset:
        _climbing_worker(kubectl, prometheus, allowed, predictedMode="auto")
        _climbing_worker(kubectl, prometheus, unset)  # predictedMode unset: observe
        started = time.monotonic()
        with OperatorThread(kubeconfig, free_port(), namespaces=(allowed, unset), detection=True,
                            operator_namespace=allowed, thresholds=THRESHOLDS, prometheus_url=prometheus):
            def decided(namespace: str, final: bool) -> dict[str, Any] | None:
                for incident in _incidents(kubectl, namespace):
                    for entry in (incident.get("status") or {}).get("remediations") or []:
                        if incident["spec"].get("prediction") and entry["type"] == "setResources" and (
                                not final or entry.get("result") in ("Succeeded", "Failed", "Reverted", "Skipped")):
                            return {**entry, "incident": incident}
                return None

            executed = _until("the pre-emptive setResources", lambda: decided(allowed, final=True), timeout=75)
            incident = executed.pop("incident")
            assert executed["decision"] == "Execute" and executed["result"] == "Succeeded", executed
            assert executed["target"]["name"] == "worker" and incident["spec"]["resource"]["name"] == "worker"
            # Before the failure: the forecast time is hours away, and the limit is raised now.
            ahead = dt.datetime.fromisoformat(incident["spec"]["prediction"]["failureTime"]) - dt.datetime.now(dt.UTC)
            assert ahead > dt.timedelta(hours=3), incident["spec"]["prediction"]
            assert _memory_limit(kubectl, allowed) == "384Mi"  # +50 %, the policy's bound

            observed = _until("the unset policy's decision", lambda: decided(unset, final=False), timeout=30)
            assert observed["decision"] == "Observed", observed
            assert _memory_limit(kubectl, unset) == "256Mi"
        assert time.monotonic() - started < 100


PROMETHEUS_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": HOUR, "d": 24 * HOUR, "w": 7 * 24 * HOUR, "y": 365 * 24 * HOUR}


def _backfill_reach(prometheus: str) -> float:
    """How far back remote write can put samples in this Prometheus (seconds): its out-of-order
    window, bounded by its retention (older blocks are deleted at compaction)."""
    config = yaml.safe_load(httpx.get(f"{prometheus}/api/v1/status/config", timeout=10).json()["data"]["yaml"])
    flags = httpx.get(f"{prometheus}/api/v1/status/flags", timeout=10).json()["data"]

    def seconds(text: str) -> float:
        return sum(float(n) * PROMETHEUS_UNITS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text or "0s"))
    window = seconds(((config.get("storage") or {}).get("tsdb") or {}).get("out_of_order_time_window", "0s"))
    return min(window, seconds(flags.get("storage.tsdb.retention.time", "15d")))


def test_daily_seasonality_through_prometheus_forecasts_the_nightly_peak(prometheus: str) -> None:
    history = 60 * HOUR  # two and a half days: the daily profile needs two
    if _backfill_reach(prometheus) < history + HOUR:
        pytest.skip(f"{prometheus} takes less than {history / HOUR:.0f} h of backfill (hack/prometheus.sh: 4d window)")
    namespace = f"aisre-fc-{int(time.time() * 1000) % 10**9}"  # a label value only: nothing in the cluster
    now = time.time()

    # A volume at 85 % growing 0.5 %/h (the trend alone: full in about 30 h) with a daily swing
    # of ±15 % that peaks in 6 h: tonight's peak is the first to reach the capacity.
    def used(t: float) -> float:
        return 0.85 + 0.005 * t / HOUR + 0.15 * math.cos(2 * math.pi * (t - 6 * HOUR) / (24 * HOUR)) + \
            0.004 * ((int(t) * 7919) % 11 - 5) / 5
    remote_write(prometheus, _volume(namespace, "data", [(now + t, CAPACITY * used(t))
                                                         for t in (-history + k * 120.0 for k in range(int(history / 120) + 1))]))
    settings = PrometheusSettings(url=prometheus, query_timeout_s=20.0)

    def volume(lookback_s: float) -> Any:
        sweep = asyncio.run(forecast_prometheus(settings, None, ForecastConfig(lookback_s=lookback_s), now,
                                                lambda ns: ns == namespace, namespace))
        return next(f for f in sweep.forecasts if f.subject.resource.name == "data" and f.subject.home == namespace)

    seasonal = volume(3 * 24 * HOUR)
    p = seasonal.prediction
    assert seasonal.model == ForecastModel.LINEAR_TREND_DAILY and p.fit is not None, p.why
    assert p.fit.seasonal_amplitude is not None and abs(p.fit.seasonal_amplitude - 0.3) < 0.06, p.fit
    assert abs(p.fit.slope_per_hour - 0.005) < 0.001, p.fit  # the trend, with the swing taken out
    assert p.alerts and p.eta_s is not None and 3 * HOUR < p.eta_s < 5.5 * HOUR, p.why  # on the way to the peak, not in 30 h
    # Seen over one day only, the same series has no daily profile to reach the limit with.
    one_day = volume(24 * HOUR)
    assert one_day.model == ForecastModel.LINEAR_TREND and not one_day.prediction.alerts, one_day.prediction.why
