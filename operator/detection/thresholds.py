"""When a signal becomes an incident: thresholds and timings, from the environment.

The defaults suit a production cluster: a single restart is not an incident, pods may be
Pending or NotReady for a while during rollouts and scale-ups, and nodes get a grace
after the node controller already waited. Every value can be set with an
``AISRE_DETECT_<NAME>`` variable (seconds for times), e.g. AISRE_DETECT_NOT_READY_GRACE=60.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    restarts: int = 3  # restarts of one container within restart_window make an incident
    restart_window: float = 600.0
    image_pull_grace: float = 60.0  # ErrImagePull for this long (ImagePullBackOff counts at once)
    pending_grace: float = 120.0  # Pending and unschedulable for this long
    not_ready_grace: float = 120.0  # running but not Ready for this long
    init_grace: float = 300.0  # an init container still running after this long
    node_grace: float = 30.0  # node NotReady / unreachable for this long
    pvc_grace: float = 120.0  # a claim Pending for this long
    event_window: float = 600.0  # a Warning event counts as active this long after it was last seen
    settle: float = 10.0  # how long signals gather before an incident opens (so related ones fold)
    resolve_after: float = 300.0  # an incident resolves when its signals have been clear this long
    storm_per_minute: int = 10  # new incidents per namespace per minute; the rest fold into one
    tick: float = 1.0  # how often the detector decides
    metrics_interval: float = 60.0  # how often Prometheus series are looked at (when a Prometheus is configured)
    metrics_confidence: float = 0.6  # a metric-borne cause must rank at least this sure to raise a signal
    logs_interval: float = 120.0  # how often container logs are read for faults only they show; 0: never
    logs_confidence: float = 0.6  # a cause seen in logs must rank at least this sure to raise a signal
    post_change_window: float = 1800.0  # after a workload's spec changes, its namespace is looked at whole this long
    rerun_grace: float = 900.0  # a failed CronJob run waits this long for a later run to complete
    # A page (PagerDuty, Opsgenie) counts as firing until its pager resolves it or this long
    # after it triggered, whichever is first; after that only the cluster's own signals keep
    # its Incident open. 0: until the pager resolves it.
    page_hold: float = 900.0
    # Forecasts (docs/forecasts.md): how often, how far ahead, how sure, over how much history,
    # and the least history since a reset a forecast needs. 0: no forecasts.
    forecast_interval: float = 300.0
    forecast_horizon: float = 43200.0
    forecast_confidence: float = 0.8
    forecast_lookback: float = 259200.0
    forecast_min_history: float = 3600.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Thresholds:
        env = dict(os.environ if env is None else env)
        values = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"AISRE_DETECT_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = int(raw) if field.type in ("int", int) else float(raw)
        return cls(**values)

    @classmethod
    def compressed(cls) -> Thresholds:
        """For the scenario benchmark and tests, whose faults compress minutes into seconds:
        grace times shrink accordingly; the counts (restarts) stay as they are. A failed
        CronJob run waits 25 s for the next one: its Job controller and pods take 5-15 s
        under load here (10 s raised a false positive in CI)."""
        return cls(image_pull_grace=2.0, pending_grace=2.0, not_ready_grace=2.0, init_grace=12.0, node_grace=1.0,
                   pvc_grace=2.0, event_window=120.0, settle=1.0, resolve_after=10.0, tick=0.25,
                   metrics_interval=2.0, logs_interval=2.0, post_change_window=120.0, rerun_grace=25.0,
                   page_hold=8.0, forecast_interval=0.0)  # forecasts are for hours ahead: off unless asked

    @classmethod
    def real_time(cls) -> Thresholds:
        """For a benchmark run with scenarios the real kubelet plays: those run in real time,
        so a pod's cold start takes its real seconds (a process warming up, a liveness kill
        and the restart: 10-25 s here) and a 2 s not-ready grace calls every slow start a
        fault. The rest stays compressed: real faults show at once, and the other graces
        only wait for what is already failing."""
        return dataclasses.replace(cls.compressed(), not_ready_grace=20.0)

    def as_env(self) -> dict[str, str]:
        return {f"AISRE_DETECT_{f.name.upper()}": str(getattr(self, f.name)) for f in dataclasses.fields(self)}
