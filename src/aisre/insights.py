"""``aisre insights``: what the Incidents of a period say, for the people who run the cluster.

Aggregated from the Incidents themselves (their spec, status, timeline and remediation
journal; nothing else is stored for it): incidents by root cause and namespace, recurrences,
mean time to detect / identify / mitigate / resolve, actions taken and verified, approvals
waited on, the noisiest workloads, the share of root causes confirmed by feedback, and the
forecasts raised and whether they came true. ``aggregate`` is pure; ``render_markdown`` and
``render_json`` format it; ``draw_charts`` writes PNGs (matplotlib, Agg backend) beside the
Markdown. Times:

- detect: the trouble first seen (spec.firstSeen) → the Incident created;
- identify: created → the root cause identified (timeline RootCauseIdentified);
- mitigate: created → the first executed action that succeeded finished;
- resolve: first seen → resolved (status.resolvedAt).

A forecast came true when its Predicted Incident resolved because the limit was reached
(LimitReached), or when a reactive Incident of the predicted category opened on the same
object before the end of the predicted interval (+1 h).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CAME_TRUE_SLACK = dt.timedelta(hours=1)
TOP = 10


_PERIOD_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_period(text: str) -> dt.timedelta:
    """``7d``, ``36h``, ``90m``, ``1d12h``: a positive period."""
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in _PERIOD_UNITS and number:
            total += float(number) * _PERIOD_UNITS[char]
            number = ""
        else:
            raise ValueError(f"not a period (use e.g. 7d, 36h, 90m): {text!r}")
    if number or total <= 0:
        raise ValueError(f"not a period (use e.g. 7d, 36h, 90m): {text!r}")
    return dt.timedelta(seconds=total)


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _mean_seconds(values: Iterable[float]) -> float | None:
    kept = [v for v in values if v >= 0]
    return round(statistics.fmean(kept), 1) if kept else None


@dataclass
class ForecastOutcome:
    incident: str  # namespace/name
    category: str
    resource: str
    predicted_for: str  # failureTime
    outcome: str  # cameTrue | averted | open


@dataclass
class Insights:
    since: str
    until: str
    incidents: int = 0
    reactive: int = 0
    by_root_cause: dict[str, int] = field(default_factory=dict)
    by_namespace: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, dict[str, int]] = field(default_factory=dict)  # day → root cause → count
    recurring: int = 0  # incidents that had happened before on the same workload
    recurrences: int = 0
    mean_seconds: dict[str, float | None] = field(default_factory=dict)  # detect, identify, mitigate, resolve
    actions: dict[str, int] = field(default_factory=dict)  # executed, by type
    actions_executed: int = 0
    actions_verified: int = 0  # succeeded and, where assessed, cleared the fault
    decisions: dict[str, int] = field(default_factory=dict)
    approvals: int = 0
    approval_wait_mean_seconds: float | None = None
    awaiting_approval: int = 0
    noisiest: list[dict[str, Any]] = field(default_factory=list)
    feedback: int = 0
    confirmed: int = 0
    confirmed_share: float | None = None  # of the incidents with feedback
    forecasts: list[ForecastOutcome] = field(default_factory=list)

    @property
    def forecasts_came_true(self) -> int:
        return sum(1 for f in self.forecasts if f.outcome == "cameTrue")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["forecasts_raised"] = len(self.forecasts)
        out["forecasts_came_true"] = self.forecasts_came_true
        return out


def _ident(incident: dict[str, Any]) -> str:
    meta = incident.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _created(incident: dict[str, Any]) -> dt.datetime | None:
    return _time((incident.get("metadata") or {}).get("creationTimestamp"))


def _came_true(predicted: dict[str, Any], reactive: list[dict[str, Any]]) -> str:
    status = predicted.get("status") or {}
    reasons = {c.get("type"): c.get("reason") for c in status.get("conditions") or []}
    if reasons.get("Resolved") == "LimitReached":
        return "cameTrue"
    spec = predicted.get("spec") or {}
    p = spec.get("prediction") or {}
    opened = _created(predicted)
    deadline = (_time(p.get("latest")) or _time(p.get("failureTime")) or dt.datetime.max.replace(tzinfo=dt.UTC))
    resource = spec.get("resource") or {}
    for other in reactive:
        root = (other.get("status") or {}).get("rootCause") or {}
        where = other.get("spec", {}).get("resource") or {}
        named = root.get("resource") or where
        when = _created(other)
        if (root.get("category") == p.get("category") and named.get("kind") == resource.get("kind")
                and named.get("name") == resource.get("name")
                and (other.get("metadata") or {}).get("namespace") == (predicted.get("metadata") or {}).get("namespace")
                and when is not None and opened is not None and opened <= when <= deadline + CAME_TRUE_SLACK):
            return "cameTrue"
    return "open" if status.get("state") != "Resolved" else "averted"


def aggregate(incidents: list[dict[str, Any]], since: dt.datetime, until: dt.datetime) -> Insights:
    """The period's insights from its Incidents (those created within [since, until])."""
    chosen = [i for i in incidents if (c := _created(i)) is not None and since <= c <= until]
    out = Insights(since=since.isoformat(), until=until.isoformat(), incidents=len(chosen))
    reactive = [i for i in chosen if not (i.get("spec") or {}).get("prediction")]
    predicted = [i for i in chosen if (i.get("spec") or {}).get("prediction")]
    out.reactive = len(reactive)
    causes: Counter[str] = Counter()
    namespaces: Counter[str] = Counter()
    noisy: Counter[tuple[str, str]] = Counter()
    signals: Counter[tuple[str, str]] = Counter()
    times: dict[str, list[float]] = {"detect": [], "identify": [], "mitigate": [], "resolve": []}
    waits: list[float] = []
    for incident in reactive:
        spec, status = incident.get("spec") or {}, incident.get("status") or {}
        namespace = (incident.get("metadata") or {}).get("namespace", "")
        cause = (status.get("rootCause") or {}).get("category") or "Unknown"
        causes[cause] += 1
        namespaces[namespace] += 1
        created = _created(incident)
        day = created.date().isoformat() if created else "?"
        out.by_day.setdefault(day, {})
        out.by_day[day][cause] = out.by_day[day].get(cause, 0) + 1
        resource = spec.get("resource") or {}
        workload = (namespace, f"{resource.get('kind', '?')}/{resource.get('name', '?')}")
        noisy[workload] += 1
        signals[workload] += int(spec.get("occurrences") or 1)
        if status.get("recurrences"):
            out.recurring += 1
            out.recurrences += int(status["recurrences"])
        first = _time(spec.get("firstSeen"))
        if first and created:
            times["detect"].append((created - first).total_seconds())
        identified = next((_time(e.get("time")) for e in status.get("timeline") or []
                           if e.get("event") == "RootCauseIdentified"), None)
        if identified and created:
            times["identify"].append((identified - created).total_seconds())
        resolved = _time(status.get("resolvedAt"))
        if resolved and (first or created):
            times["resolve"].append((resolved - (first or created)).total_seconds())  # type: ignore[operator]
        mitigated = None
        for entry in status.get("remediations") or []:
            out.decisions[entry.get("decision", "?")] = out.decisions.get(entry.get("decision", "?"), 0) + 1
            if entry.get("decision") == "AwaitingApproval" and entry.get("result") == "Pending":
                out.awaiting_approval += 1
            if entry.get("approvedBy"):
                out.approvals += 1
                decided, started = _time(entry.get("decidedAt")), _time(entry.get("startedAt"))
                if decided and started:
                    waits.append((started - decided).total_seconds())
            if entry.get("startedAt"):
                out.actions_executed += 1
                out.actions[entry.get("type", "?")] = out.actions.get(entry.get("type", "?"), 0) + 1
                assessment = entry.get("assessment") or {}
                if entry.get("result") == "Succeeded" and assessment.get("cleared", True):
                    out.actions_verified += 1
                    finished = _time(entry.get("finishedAt"))
                    if finished and (mitigated is None or finished < mitigated):
                        mitigated = finished
        if mitigated and created:
            times["mitigate"].append((mitigated - created).total_seconds())
        feedback = spec.get("feedback") or {}
        if feedback.get("verdict"):
            out.feedback += 1
            out.confirmed += feedback["verdict"] == "correct"
    out.by_root_cause = dict(causes.most_common())
    out.by_namespace = dict(namespaces.most_common())
    out.by_day = dict(sorted(out.by_day.items()))
    out.mean_seconds = {what: _mean_seconds(values) for what, values in times.items()}
    out.approval_wait_mean_seconds = _mean_seconds(waits)
    out.confirmed_share = round(out.confirmed / out.feedback, 3) if out.feedback else None
    out.noisiest = [{"namespace": ns, "workload": w, "incidents": n, "signals": signals[(ns, w)]}
                    for (ns, w), n in sorted(noisy.items(), key=lambda kv: (-kv[1], -signals[kv[0]], kv[0]))[:TOP]]
    for incident in predicted:
        p = (incident.get("spec") or {}).get("prediction") or {}
        resource = (incident.get("spec") or {}).get("resource") or {}
        out.forecasts.append(ForecastOutcome(_ident(incident), p.get("category", "?"),
                                             f"{resource.get('kind', '?')}/{resource.get('name', '?')}",
                                             str(p.get("failureTime", "")), _came_true(incident, reactive)))
    return out


# --- formats ------------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_json(insights: Insights) -> str:
    return json.dumps(insights.as_dict(), indent=2) + "\n"


def render_markdown(insights: Insights, charts: dict[str, str] | None = None) -> str:
    """The report; ``charts``: PNG file names beside it, by chart (written by draw_charts)."""
    i, charts = insights, charts or {}
    lines = [f"# aisre insights: {i.since[:16]} → {i.until[:16]} UTC", "",
             f"{i.incidents} Incidents ({i.reactive} reactive, {len(i.forecasts)} predicted).", ""]
    lines += ["## Root causes", ""]
    if "causes" in charts:
        lines += [f"![Incidents per day by root cause]({charts['causes']})", ""]
    lines += ["| root cause | incidents |", "|---|---:|", *(f"| {c} | {n} |" for c, n in i.by_root_cause.items()), ""]
    lines += ["## Namespaces", "", "| namespace | incidents |", "|---|---:|",
              *(f"| {ns} | {n} |" for ns, n in i.by_namespace.items()), ""]
    m = i.mean_seconds
    lines += ["## Response times (means)", "", "| detect | identify | mitigate | resolve |", "|---:|---:|---:|---:|",
              f"| {_duration(m.get('detect'))} | {_duration(m.get('identify'))} | {_duration(m.get('mitigate'))} "
              f"| {_duration(m.get('resolve'))} |", ""]
    lines += ["## Recurrences", "", f"{i.recurring} Incidents had happened before on the same workload "
              f"({i.recurrences} earlier occurrences in all).", ""]
    lines += ["## Actions", "", f"{i.actions_executed} executed, {i.actions_verified} verified (succeeded and cleared "
              f"the fault); {i.approvals} approved after a wait of {_duration(i.approval_wait_mean_seconds)} on average, "
              f"{i.awaiting_approval} still awaiting approval.", ""]
    if i.actions:
        lines += ["| action | executed |", "|---|---:|", *(f"| {a} | {n} |" for a, n in sorted(i.actions.items())), ""]
    if i.decisions:
        lines += ["Policy decisions: " + ", ".join(f"{d} {n}" for d, n in sorted(i.decisions.items())), ""]
    lines += ["## Noisiest workloads", "", "| namespace | workload | incidents | signals |", "|---|---|---:|---:|",
              *(f"| {w['namespace']} | {w['workload']} | {w['incidents']} | {w['signals']} |" for w in i.noisiest), ""]
    share = "—" if i.confirmed_share is None else f"{i.confirmed_share:.0%}"
    lines += ["## Feedback", "", f"{i.feedback} root causes have feedback; {i.confirmed} confirmed correct ({share}).", ""]
    lines += ["## Forecasts", "", f"{len(i.forecasts)} raised, {i.forecasts_came_true} came true.", ""]
    if i.forecasts:
        lines += ["| incident | category | resource | predicted for | outcome |", "|---|---|---|---|---|",
                  *(f"| {f.incident} | {f.category} | {f.resource} | {f.predicted_for} | {f.outcome} |" for f in i.forecasts),
                  ""]
    return "\n".join(lines)


def draw_charts(insights: Insights, markdown: Path) -> dict[str, str]:
    """PNG charts beside the Markdown file; returns their file names by chart. Nothing to
    draw (no reactive Incident): none."""
    if not insights.by_day:
        return {}
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    days = list(insights.by_day)
    causes = list(insights.by_root_cause)
    figure, axes = plt.subplots(figsize=(8, 3.5), dpi=100)
    bottom = [0] * len(days)
    for cause in causes:
        counts = [insights.by_day[d].get(cause, 0) for d in days]
        axes.bar(days, counts, bottom=bottom, label=cause, width=0.6)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_ylabel("incidents")
    axes.set_title("Incidents per day by root cause")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.tight_layout()
    name = f"{markdown.stem}-causes.png"
    figure.savefig(markdown.with_name(name))
    plt.close(figure)
    return {"causes": name}
