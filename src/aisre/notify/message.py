"""The message: what a person on call needs first, in the same order for every sink —
severity and what is hurting, the root cause with its confidence, the evidence behind it,
the runbook, the action decided (and how to approve it), and where to look next.

Pure. ``notice_for`` reads the Incident (and its Investigation, for evidence and
runbooks) and returns a ``Notice`` whose every string has been redacted; the sinks only
lay it out. Nothing a sink sends comes from anywhere else, so redaction covers all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aisre.redact import redact

MAX_EVIDENCE = 5
MAX_STEPS = 3


@dataclass(frozen=True)
class Action:
    """A decided remediation action, and for one awaiting approval the command that approves it."""

    id: str
    type: str
    target: str
    decision: str
    result: str
    reason: str
    approve: str | None = None


@dataclass(frozen=True)
class Notice:
    """One change of one Incident, ready to lay out (every string already redacted)."""

    event: str
    namespace: str
    name: str
    uid: str
    title: str
    severity: str
    state: str
    resource: str
    affected: int
    root_cause: dict[str, Any] | None
    evidence: tuple[str, ...] = ()
    runbook: dict[str, Any] | None = None
    actions: tuple[Action, ...] = ()
    kubectl: str = ""
    grafana: str | None = None
    time: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        return f"[{self.severity.upper()}] {self.title} ({self.event})"

    @property
    def hurting(self) -> str:
        more = f" and {self.affected} affected objects" if self.affected else ""
        return f"{self.resource} in {self.namespace}{more}: {self.title}"

    @property
    def cause(self) -> str | None:
        root = self.root_cause
        if not root:
            return None
        where = root.get("resource") or ""
        summary = f": {root['summary']}" if root.get("summary") else ""
        return f"{root.get('category', '')} on {where} (confidence {float(root.get('confidence') or 0):.2f}){summary}"

    def sections(self) -> list[tuple[str, str]]:
        """(heading, text) in the order people read them; sinks lay these out."""
        out = [("What is hurting", self.hurting), ("State", f"{self.state} · severity {self.severity}")]
        if self.cause:
            out.append(("Root cause", self.cause))
        if self.evidence:
            out.append(("Evidence", "\n".join(f"• {line}" for line in self.evidence)))
        if self.runbook:
            steps = "\n".join(f"{n}. {s}" for n, s in enumerate(self.runbook.get("steps") or [], 1))
            out.append((f"Runbook: {self.runbook.get('title', '')}", steps or self.runbook.get("name", "")))
        for action in self.actions:
            line = f"{action.type} on {action.target}: {action.decision}"
            if action.result and action.result != "Pending":
                line += f", {action.result}"
            if action.reason:
                line += f" ({action.reason})"
            if action.approve:
                line += f"\nTo approve: `{action.approve}`"
            out.append(("Action", line))
        look = f"`{self.kubectl}`" + (f"\n{self.grafana}" if self.grafana else "")
        out.append(("Look", look))
        return out

    def text(self) -> str:
        """The whole message as plain text (Markdown-ish), for sinks without layout."""
        return "\n\n".join([self.headline] + [f"*{head}*\n{body}" for head, body in self.sections()])


def _evidence(investigation: dict[str, Any]) -> tuple[str, ...]:
    """Summaries of the evidence the top hypothesis cites, in its order."""
    status = investigation.get("status") or {}
    hypotheses = status.get("hypotheses") or []
    cited = list((hypotheses[0].get("evidenceIds") or []) if hypotheses else [])
    by_id = {e.get("id"): e for e in status.get("evidence") or []}
    return tuple(str(by_id[i].get("summary", "")) for i in cited if i in by_id)[:MAX_EVIDENCE]


def _runbook(investigation: dict[str, Any]) -> dict[str, Any] | None:
    listed = (investigation.get("status") or {}).get("runbooks") or []
    if not listed:
        return None
    top = listed[0]
    return {"name": f"{top.get('namespace', '')}/{top.get('name', '')}", "title": top.get("title", ""),
            "steps": list(top.get("steps") or [])[:MAX_STEPS]}


def _actions(incident: dict[str, Any]) -> tuple[Action, ...]:
    meta = incident.get("metadata") or {}
    out = []
    for entry in (incident.get("status") or {}).get("remediations") or []:
        target = entry.get("target") or {}
        waiting = entry.get("decision") == "AwaitingApproval" and entry.get("result", "Pending") == "Pending"
        out.append(Action(
            id=str(entry.get("id", "")), type=str(entry.get("type", "")),
            target=f"{target.get('kind', '')}/{target.get('name', '')}", decision=str(entry.get("decision", "")),
            result=str(entry.get("result", "")), reason=str(entry.get("reason", ""))[:300],
            approve=(f"kubectl aisre approve incident/{meta.get('name')} {entry.get('id')} -n {meta.get('namespace')}"
                     if waiting else None)))
    return tuple(out[-3:])


def grafana_link(template: str | None, namespace: str, name: str) -> str | None:
    """The configured Grafana URL, with {namespace} and {incident} filled in when it has them."""
    if not template:
        return None
    return template.replace("{namespace}", namespace).replace("{incident}", name)


def notice_for(incident: dict[str, Any], investigation: dict[str, Any] | None, event: str,
               grafana_url: str | None = None) -> Notice:
    meta, spec, status = incident.get("metadata") or {}, incident.get("spec") or {}, incident.get("status") or {}
    resource = spec.get("resource") or {}
    root = status.get("rootCause")
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    raw: dict[str, Any] = {
        "event": event, "namespace": namespace, "name": name, "uid": meta.get("uid", ""),
        "title": spec.get("title", name), "severity": spec.get("severity", "medium"),
        "state": status.get("state") or "Open", "resource": f"{resource.get('kind', '')}/{resource.get('name', '')}",
        "affected": len(spec.get("affected") or []),
        "root_cause": None if not root else {
            "category": root.get("category", ""), "summary": root.get("summary", ""),
            "confidence": root.get("confidence", 0),
            "resource": f"{(root.get('resource') or {}).get('kind', '')}/{(root.get('resource') or {}).get('name', '')}"},
        "evidence": list(_evidence(investigation or {})), "runbook": _runbook(investigation or {}),
        "kubectl": f"kubectl get incident {name} -n {namespace} -o yaml",
        "grafana": grafana_link(grafana_url, namespace, name),
        "time": status.get("resolvedAt") or meta.get("creationTimestamp") or "",
        "labels": dict(meta.get("labels") or {}),
    }
    clean = redact(raw)
    actions = tuple(Action(**redact(vars(a))) for a in _actions(incident))
    return Notice(**{**clean, "evidence": tuple(clean["evidence"]), "actions": actions})
