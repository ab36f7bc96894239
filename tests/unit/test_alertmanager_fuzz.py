"""The Alertmanager intake under hostile input (hypothesis): whatever else a batch holds —
malformed alerts, non-objects, names that are not Kubernetes names, huge or odd label
values, times without zones or out of range — the valid alert in it is taken, exactly
as it would be alone, and nothing raises. Also the caps: alerts per request, held alerts."""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisre.api.signal import SignalSource
from aisre.operator.detection import alertmanager
from aisre.operator.detection.detector import MAX_HELD_ALERTS, Detector
from aisre.operator.detection.index import ClusterIndex
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.metrics import SIGNALS

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
GOOD = {"status": "firing", "labels": {"alertname": "Good", "namespace": "shop", "deployment": "web"},
        "startsAt": "2026-12-01T11:59:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "good"}

KEYS = ["alertname", "namespace", "exported_namespace", "pod", "deployment", "statefulset", "daemonset", "job_name",
        "service", "persistentvolumeclaim", "node", "kubernetes_node", "severity", "x" * 300]
hostile_text = st.one_of(
    st.text(max_size=80), st.text(alphabet=string.ascii_lowercase + "-.", min_size=60, max_size=300),
    st.sampled_from(["n" * 64, "UPPER", "-lead", "trail-", "a..b", "../../etc", "a/b", "\x00", "ns;rm -rf /", "",
                     "é", "default", "kube-system", "web"]))
times = st.one_of(st.none(), st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-12-01T12:00:00",
                                              "not a time", "2026-02-30T00:00:00Z", 12, -1, "1970-01-01T00:00:00+14:00"]),
                  st.datetimes(timezones=st.none() | st.just(dt.UTC)).map(lambda d: d.isoformat()))
hostile_alert = st.one_of(
    st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved", "weird", None, 1]),
                           "labels": st.one_of(st.dictionaries(st.sampled_from(KEYS), hostile_text, max_size=8),
                                               st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), st.none()),
                           "annotations": st.one_of(st.dictionaries(st.text(max_size=10), hostile_text, max_size=3),
                                                    st.just([])),
                           "startsAt": times, "endsAt": times,
                           "fingerprint": st.one_of(st.none(), hostile_text, st.text(min_size=300, max_size=400))}),
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3), st.just({}))


def intake(alerts: list) -> tuple[list, list[str]]:
    payload = alertmanager.parse({"version": "4", "status": "firing", "alerts": alerts})
    return alertmanager.signals_from(payload, ClusterIndex(), NOW, lambda ns: ns != "kube-system")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_alert, max_size=25), st.integers(0, 25))
def test_a_valid_alert_is_taken_whatever_else_the_batch_holds(hostiles, position) -> None:
    alone, _ = intake([GOOD])
    signals, skipped = intake(hostiles[:position] + [GOOD] + hostiles[position:])
    assert [s for s in signals if s.key == alone[0].key] == alone
    assert len(signals) + len(skipped) == len(hostiles) + 1  # every alert is accounted for, each on its own
    for signal in signals:  # whatever was taken names real objects in a watched namespace
        assert signal.object.namespace is None or (len(signal.object.namespace) <= 63
                                                   and alertmanager.DNS1123_LABEL.match(signal.object.namespace)
                                                   and signal.object.namespace != "kube-system")
        assert alertmanager.DNS1123_SUBDOMAIN.match(signal.object.name) and len(signal.object.name) <= 253


def test_caps_per_request_and_on_held_alerts() -> None:
    many = [{**GOOD, "fingerprint": f"f{i}", "labels": {**GOOD["labels"], "pod": f"web-{i}"}}
            for i in range(alertmanager.MAX_ALERTS + 5)]
    signals, skipped = intake(many)
    assert len(signals) == alertmanager.MAX_ALERTS and skipped == [f"5 alerts beyond the first {alertmanager.MAX_ALERTS} of one request"]
    detector = Detector(Thresholds(), "aisre-system")
    taken = 0
    for batch in range(MAX_HELD_ALERTS // alertmanager.MAX_ALERTS + 1):
        alerts = [{**a, "fingerprint": f"b{batch}-{a['fingerprint']}"} for a in many[:alertmanager.MAX_ALERTS]]
        taken += sum(detector.alert(s) for s in intake(alerts)[0])
    assert taken == MAX_HELD_ALERTS == len(detector.alerts)
    # resolving still works at the cap, and frees room
    first = next(iter(detector.alerts.values()))
    assert detector.alert(first.model_copy(update={"firing": False})) and len(detector.alerts) == MAX_HELD_ALERTS - 1


def test_ends_at_is_honoured() -> None:
    past = {**GOOD, "endsAt": "2026-12-01T11:00:00Z"}
    [over], _ = intake([past])
    assert not over.firing
    soon = {**GOOD, "endsAt": "2026-12-01T12:05:00Z"}
    [held], _ = intake([soon])
    detector = Detector(Thresholds(), "aisre-system")
    detector.alert(held)
    assert detector.due_signals(NOW) == [held]
    assert detector.due_signals(NOW + dt.timedelta(minutes=6)) == [] and not detector.alerts


def test_alert_names_never_become_metric_labels() -> None:
    names = [f"Name{i}" for i in range(20)]
    alerts = [{**GOOD, "fingerprint": n, "labels": {**GOOD["labels"], "alertname": n, "pod": f"web-{i}"}}
              for i, n in enumerate(names)]
    detector = Detector(Thresholds(settle=0), "aisre-system")
    for signal in intake(alerts)[0]:
        detector.alert(signal)
    detector.decide(NOW)
    reasons = {labels[1] for metric in SIGNALS.collect() for sample in metric.samples
               if (labels := (sample.labels.get("source"), sample.labels.get("reason")))[0] == SignalSource.ALERTMANAGER.value}
    assert reasons == {"Alert"}
