"""The forecast sweep with Prometheus' answers and the API server's given: which series are
forecast (allowed namespaces, fresh ones), memory limits joined, failures not answered, and
a Predicted Incident whose name is taken opened under another."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from aisre.agents.base import PrometheusSettings
from aisre.api.meta import ResourceRef
from aisre.api.signing import has_mark
from aisre.forecast.certificates import CertificateValidity
from aisre.forecast.model import Outcome
from aisre.forecast.plan import OpenPredicted
from aisre.forecast.targets import MEMORY, QUOTA, VOLUME
from aisre.operator.detection import forecast as loop

NOW = 1_800_000_000.0
HOUR = 3600.0


def ramp(start: float, per_hour: float, hours: float = 6, end: float = NOW) -> tuple[list[float], list[float]]:
    times = [end - hours * HOUR + i * 60 for i in range(int(hours * 60) + 1)]
    return times, [start + per_hour * (t - times[0]) / HOUR for t in times]


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    table: dict[str, Any] = {}

    async def fake(settings: PrometheusSettings, promql: str, start: float, end: float) -> list[Any]:
        answer = table.get(promql)
        if isinstance(answer, Exception):
            raise answer
        return answer or []

    monkeypatch.setattr(loop, "query_range", fake)
    return table


async def test_allowed_fresh_series_are_forecast_and_failures_are_not_answered(answers: dict[str, Any]) -> None:
    answers[VOLUME.promql] = [
        ({"namespace": "shop", "persistentvolumeclaim": "data"}, *ramp(0.2, 0.1)),  # full in 2 h
        ({"namespace": "kube-system", "persistentvolumeclaim": "etcd"}, *ramp(0.4, 0.1)),  # not watched
        ({"namespace": "shop", "persistentvolumeclaim": "old"}, *ramp(0.4, 0.1, end=NOW - 2 * HOUR)),  # gone
    ]
    answers[QUOTA.promql] = RuntimeError("no answer")
    sweep = await loop.forecast_prometheus(PrometheusSettings(url="http://x"), None, loop.ForecastConfig(lookback_s=6 * HOUR),
                                           NOW, lambda ns: ns == "shop", "aisre-system", (VOLUME, QUOTA))
    assert [f.subject.resource.display() for f in sweep.forecasts] == ["PersistentVolumeClaim/data"]
    p = sweep.forecasts[0].prediction
    assert p.outcome == Outcome.PREDICTED and p.eta_s is not None and abs(p.eta_s - 2 * HOUR) < 0.1 * HOUR
    assert sweep.answered == {"volumeFull"}


async def test_memory_is_forecast_against_its_containers_limit(answers: dict[str, Any]) -> None:
    labels = {"namespace": "shop", "pod": "api-0", "container": "api"}
    answers[MEMORY.promql] = [(labels, *ramp(1.5e8, 2.0e7)),  # at 3.0e8 in 1.5 h
                              ({"namespace": "shop", "pod": "free-0", "container": "x"}, *ramp(2.0e8, 2.0e7))]
    answers[loop.KSM_MEMORY_LIMITS] = [(labels, [NOW], [3.0e8])]  # free-0 has no limit: nothing to reach
    sweep = await loop.forecast_prometheus(PrometheusSettings(url="http://x"), None, loop.ForecastConfig(lookback_s=6 * HOUR),
                                           NOW, lambda ns: True, "aisre-system", (MEMORY,))
    assert len(sweep.forecasts) == 1
    f = sweep.forecasts[0]
    assert f.subject.resource.display() == "Pod/api-0" and f.prediction.limit == 3.0e8
    assert f.action is not None and f.category == "MemoryLimitTooLow" and f.prediction.outcome == Outcome.PREDICTED
    assert f.prediction.eta_s is not None and abs(f.prediction.eta_s - 1.5 * HOUR) < 0.1 * HOUR


async def test_a_taken_name_opens_under_another_and_the_status_is_left_to_the_handlers() -> None:
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    f = loop.certificate_forecast(CertificateValidity(now + dt.timedelta(hours=3), "CN=x"),
                             ResourceRef(kind="Secret", name="x-tls", namespace="shop"), now, 12 * HOUR)
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        seen.append((request.method, request.url.path, body))
        if request.method == "POST" and body["metadata"]["name"] == f.subject.incident_name:
            return httpx.Response(409, json={"kind": "Status", "reason": "AlreadyExists"})
        return httpx.Response(201 if request.method == "POST" else 200, json=body)

    key = b"k" * 32
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://api") as client:
        await loop.apply(client, OpenPredicted(f), now, key)
    posts = [b for m, _, b in seen if m == "POST"]
    assert [p["metadata"]["name"] == f.subject.incident_name for p in posts] == [True, False]
    second = posts[1]
    assert second["metadata"]["name"].startswith(f.subject.incident_name + "-")
    assert has_mark(key, second, "Incident", f.subject.fingerprint)
    # The status (state Predicted, the timeline) is written by the Incident's handlers from
    # the spec: a write here would race them for the timeline.
    assert [m for m, _, _ in seen if m == "PATCH"] == []
    assert second["spec"]["investigate"] is True and second["spec"]["prediction"]["category"] == "DependencyFailure"
