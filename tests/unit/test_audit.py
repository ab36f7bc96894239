"""The audit trail: one stable schema, redacted, on its own logger; what an Investigation
and a remediation decision write to it."""

from __future__ import annotations

import datetime as dt

from structlog.testing import capture_logs

from aisre import audit
from aisre.operator.investigation import Outcome
from aisre.operator.run_investigation import _audit


def test_a_record_has_the_stable_schema_and_nothing_secret() -> None:
    at = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    entry = audit.record("RemediationExecute", actor="aisre-operator/a", time=at, trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                         obj={"kind": "Incident", "namespace": "shop", "name": "inc", "uid": "u-1", "extra": "dropped"},
                         reason="rollback Deployment/checkout: Authorization: Bearer abcdefgh12345678",
                         detail={"approvedBy": "alice", "password": "hunter2"})
    assert set(entry) == {"schema", "id", "time", "actor", "object", "decision", "reason", "detail", "traceId"}
    assert entry["schema"] == "aisre.audit/v1" and entry["time"] == "2026-12-07T09:00:00.000000Z"
    assert entry["object"] == {"kind": "Incident", "namespace": "shop", "name": "inc", "uid": "u-1"}
    assert "abcdefgh12345678" not in entry["reason"] and entry["detail"]["password"] != "hunter2"
    assert entry["detail"]["approvedBy"] == "alice"
    with capture_logs() as logs:
        written = audit.emit("RootCauseChosen", actor="a", obj={"kind": "Investigation", "name": "i"}, reason="r")
    assert logs == [{"event": "audit", "audit": written, "log_level": "info"}]


def test_an_investigation_audits_its_plan_and_its_root_cause() -> None:
    body = {"metadata": {"namespace": "shop", "name": "inv", "uid": "u-2"}}
    now = dt.datetime.now(dt.UTC)
    outcome = Outcome(True, "RootCauseFound", "done", timeline=[{"time": now, "event": "Planned", "message": "workloads, logs"}])
    status = {"rootCause": {"category": "BadImage", "resource": {"kind": "Deployment", "name": "web"}, "confidence": 0.95,
                            "summary": "tag 1.2.4 does not exist"},
              "hypotheses": [{"category": "BadImage", "confidence": 0.95}, {"category": "ImagePullAuth", "confidence": 0.2}],
              "runbooks": [{"name": "bad-image"}]}
    with capture_logs() as logs:
        _audit(body, outcome, status, {"name": "inc", "uid": "u-3"})
    decisions = [(log["audit"]["decision"], log["audit"]["reason"]) for log in logs]
    assert decisions == [("PlanChosen", "agents: workloads, logs"), ("RootCauseChosen", "tag 1.2.4 does not exist")]
    chosen = logs[1]["audit"]
    assert chosen["object"] == {"kind": "Investigation", "namespace": "shop", "name": "inv", "uid": "u-2"}
    assert chosen["detail"]["alternatives"] == [{"category": "ImagePullAuth", "confidence": 0.2}]
    assert chosen["detail"]["runbooks"] == ["bad-image"] and chosen["detail"]["incident"] == "inc"
