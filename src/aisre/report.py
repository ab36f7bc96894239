"""Readable Markdown reports from an object's status (``aisre report``).

Pure: it renders what the operator wrote, nothing else, so every line of a report can
be traced to evidence in the status.
"""

from __future__ import annotations

from typing import Any


def _resource(ref: dict[str, Any] | None) -> str:
    if not ref:
        return "—"
    return f"{ref.get('kind')}/{ref.get('name')}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def chain_lines(chain: list[dict[str, Any]]) -> list[str]:
    """The causal chain under the root cause: each link, and the evidence ids that tie it."""
    if not chain:
        return []
    out = ["", "How it leads there:", ""]
    for step, link in enumerate(chain, 1):
        ids = ", ".join(link.get("evidenceIds") or []) or "—"
        out.append(f"{step}. `{link.get('ref', '?')}` (evidence: {ids})")
    return out


def runbook_lines(runbooks: list[dict[str, Any]]) -> list[str]:
    """The runbooks that apply to the root cause: why each matched, its steps, links and
    the actions it proposes (which the policy decides on)."""
    out: list[str] = []
    for runbook in runbooks:
        out += ["", f"### Runbook: {runbook.get('title', '')} (`{runbook.get('namespace')}/{runbook.get('name')}`)", "",
                f"Matched on {'; '.join(runbook.get('matchedOn') or []) or '—'}.", ""]
        out += [f"{step}. {text}" for step, text in enumerate(runbook.get("steps") or [], 1)]
        links = runbook.get("links") or []
        if links:
            out += ["", "Links: " + ", ".join(f"[{link.get('title')}]({link.get('url')})" for link in links)]
        actions = runbook.get("actions") or []
        if actions:
            out += ["", "Proposes (the RemediationPolicy decides): " + ", ".join(
                f"**{a['type']}**" + (f" ({', '.join(f'{k}={v}' for k, v in a['parameters'].items())})"
                                      if a.get("parameters") else "") for a in actions)]
    return out


def note_lines(note: dict[str, Any] | None) -> list[str]:
    """The remediation note: no catalog action can fix the root cause; what a person must
    do, and the runbook to follow."""
    if not note:
        return []
    runbook = f" Runbook: `{note['runbook']}`." if note.get("runbook") and note["runbook"] not in note.get("message", "") else ""
    return [f"- **No automatic fix.** {note.get('message', '')}{runbook}"]


def memory_lines(status: dict[str, Any]) -> list[str]:
    """What the memory of past incidents says: recurrences and the most similar past Incidents."""
    similar = status.get("similarIncidents") or []
    if not similar and not status.get("seenBefore"):
        return []
    out = ["", "## Seen before", ""]
    if status.get("seenBefore"):
        out += [status["seenBefore"], ""]
    for past in similar:
        out.append(f"- `{past.get('namespace')}/{past.get('name')}` {past.get('concludedAt', '')}: {past.get('category')} on "
                   f"`{past.get('resource') or '—'}`, similarity {past.get('similarity', 0):.2f} "
                   f"({'; '.join(past.get('matchedOn') or [])}); {past.get('outcome', '')}"
                   + (f"; root cause marked {past['verdict']}" if past.get("verdict") else ""))
    return out


def render_investigation(obj: dict[str, Any]) -> str:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    lines = [f"# Investigation {meta.get('namespace')}/{meta.get('name')}", ""]
    target = status.get("target") or _resource(spec.get("target"))
    lines += [f"- **Target:** {target}", f"- **State:** {status.get('state', 'Pending')}"]
    if spec.get("question"):
        lines.append(f"- **Question:** {spec['question']}")
    if status.get("startedAt"):
        lines.append(f"- **Started:** {status['startedAt']}  **Completed:** {status.get('completedAt', '—')}")
    root = status.get("rootCause")
    lines.append("")
    lines.append("## Root cause")
    if root:
        lines += ["", f"**{root['category']}** on `{_resource(root.get('resource'))}` "
                  f"(confidence {root.get('confidence', 0):.2f})", "", root.get("summary", "")]
        lines += chain_lines((status.get("hypotheses") or [{}])[0].get("chain") or [])
        lines += runbook_lines(status.get("runbooks") or [])
        lines += memory_lines(status)
    else:
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        done = conditions.get("Completed")
        lines += ["", f"No root cause yet{': ' + done['reason'] + ' — ' + done['message'] if done else '.'}"]
    llm = status.get("llm") or {}
    if llm.get("narrative"):
        # Written by the LLM from the redacted evidence; for reading only, never acted on.
        lines += ["", "## Summary (written by the LLM)", "", f"> {_cell(llm['narrative'])}"]
    hypotheses = status.get("hypotheses") or []
    if hypotheses:
        lines += ["", "## Hypotheses", "", "| # | Category | Resource | Confidence | Evidence | Summary |", "|---|---|---|---|---|---|"]
        for rank, h in enumerate(hypotheses, 1):
            lines.append(f"| {rank} | {h['category']} | {_resource(h.get('resource'))} | {h.get('confidence', 0):.2f} | "
                         f"{', '.join(h.get('evidenceIds') or []) or '—'} | {_cell(h.get('summary', ''))} |")
    actions = status.get("recommendedActions") or []
    if actions or status.get("remediationNote"):
        lines += ["", "## Recommended actions", ""]
        for action in actions:
            params = ", ".join(f"{k}={v}" for k, v in (action.get("parameters") or {}).items())
            lines.append(f"- `{action['id']}` **{action['type']}** {_resource(action.get('target'))}"
                         f"{' (' + params + ')' if params else ''}: {action.get('reason', '')}")
        lines += note_lines(status.get("remediationNote"))
    evidence = status.get("evidence") or []
    if evidence:
        lines += ["", "## Evidence", "", "| Id | Agent | Kind | Observation |", "|---|---|---|---|"]
        for item in evidence:
            lines.append(f"| {item['id']} | {item['agent']} | {item['kind']} | {_cell(item['summary'])[:300]} |")
    agents = status.get("agents") or []
    if agents:
        lines += ["", "## Agents", "", "| Agent | Status | Latency (s) | Findings | Note |", "|---|---|---|---|---|"]
        for agent in agents:
            lines.append(f"| {agent['name']} | {agent['status']} | {agent.get('latencySeconds', 0):.3f} | "
                         f"{agent.get('findings', 0)} | {_cell(agent.get('message', ''))} |")
    timeline = status.get("timeline") or []
    if timeline:
        lines += ["", "## Timeline", ""]
        lines += [f"- {entry['time']} **{entry['event']}** {entry.get('message', '')}" for entry in timeline]
    cost = status.get("cost") or {}
    if llm or cost.get("usd"):
        discarded = llm.get("discarded") or []
        lines += ["", "## LLM", "", f"- model {llm.get('model', '—')}, {llm.get('calls', 0)} calls, "
                  f"{cost.get('llmInputTokens', 0)} input and {cost.get('llmOutputTokens', 0)} output tokens, "
                  f"${cost.get('usd', 0):.4f}"]
        lines += [f"- discarded {d.get('category') or '?'} {d.get('resource') or ''}: {_cell(d['reason'])}" for d in discarded]
    if status.get("truncated"):
        lines += ["", "## Cut to keep the status small", ""] + [f"- {t}" for t in status["truncated"]]
    return "\n".join(lines) + "\n"


def render_incident(incident: dict[str, Any], investigation: dict[str, Any] | None = None,
                    resolved_at: str | None = None) -> str:
    """The post-incident report: what happened, when, the root cause and the evidence that
    names it, and the actions taken. The operator keeps it in the Incident's status once
    it resolves; ``aisre report incident/NAME`` prints it (or renders it while open)."""
    meta, spec, status = incident.get("metadata", {}), incident.get("spec", {}), incident.get("status") or {}
    lines = [f"# Incident {meta.get('namespace')}/{meta.get('name')}", "", f"**{spec.get('title', '')}**", ""]
    lines += [f"- **Resource:** {_resource(spec.get('resource'))}", f"- **Severity:** {spec.get('severity', '—')}",
              f"- **Source:** {spec.get('source', '—')}",
              f"- **State:** {'Resolved' if resolved_at else status.get('state', 'Open')}",
              f"- **First seen:** {spec.get('firstSeen', '—')}  **Last seen:** {spec.get('lastSeen', '—')}  "
              f"**Occurrences:** {spec.get('occurrences', 1)}"]
    if resolved_at or status.get("resolvedAt"):
        lines.append(f"- **Resolved:** {resolved_at or status.get('resolvedAt')}")
    affected = spec.get("affected") or []
    if affected:
        lines.append(f"- **Affected:** {', '.join(_resource(a) for a in affected)}")
    signals = spec.get("signals") or []
    if signals:
        lines += ["", "## Signals", "", "| Source | Reason | Count | First seen | Last seen | Latest message |",
                  "|---|---|---|---|---|---|"]
        for s in signals:
            lines.append(f"| {s.get('source')} | {s.get('reason')} | {s.get('count', 1)} | {s.get('firstSeen', '—')} | "
                         f"{s.get('lastSeen', '—')} | {_cell(s.get('message', ''))[:200]} |")
    lines += ["", "## Root cause", ""]
    root = status.get("rootCause") or ((investigation or {}).get("status") or {}).get("rootCause")
    if root:
        lines += [f"**{root['category']}** on `{_resource(root.get('resource'))}` (confidence {root.get('confidence', 0):.2f})",
                  "", root.get("summary", "")]
    else:
        lines.append("Not identified.")
    inv_status = (investigation or {}).get("status") or {}
    hypotheses = inv_status.get("hypotheses") or []
    cited = set((hypotheses[0].get("evidenceIds") or []) if hypotheses else [])
    evidence = [e for e in inv_status.get("evidence") or [] if e.get("id") in cited]
    if evidence:
        lines += ["", "## Evidence for the root cause", "", "| Id | Agent | Kind | Observation |", "|---|---|---|---|"]
        lines += [f"| {e['id']} | {e['agent']} | {e['kind']} | {_cell(e['summary'])[:300]} |" for e in evidence]
    if status.get("seenBefore"):
        lines += ["", f"**Seen before:** {status['seenBefore']}"]
    runbooks = inv_status.get("runbooks") or []
    if runbooks:
        lines += ["", "## Runbook", "", f"The runbook for this root cause: **{runbooks[0].get('title', '')}** "
                  f"(`{runbooks[0].get('namespace')}/{runbooks[0].get('name')}`), matched on "
                  f"{'; '.join(runbooks[0].get('matchedOn') or []) or '—'}."]
        lines += [f"Also listed: {r.get('title', '')} (`{r.get('namespace')}/{r.get('name')}`)." for r in runbooks[1:]]
    if investigation:
        lines.append(f"\nInvestigation: `{investigation['metadata']['name']}` (`aisre report investigation/"
                     f"{investigation['metadata']['name']}` for every hypothesis and all evidence).")
    note = inv_status.get("remediationNote")
    if note:
        lines += ["", "## What a person must do", ""] + note_lines(note)
    journal = status.get("remediations") or []
    lines += ["", "## Actions taken", ""]
    if journal:
        lines += ["| Id | Action | Target | Decision | Result | Approved by | Detail |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {j.get('id')} | {j.get('type')} | {_resource(j.get('target'))} | {j.get('decision')} | "
                  f"{j.get('result', '—')} | {j.get('approvedBy') or '—'} | {_cell(j.get('reason') or j.get('detail', ''))[:200]} |"
                  for j in journal]
    else:
        lines.append("None.")
    timeline = status.get("timeline") or []
    if timeline:
        lines += ["", "## Timeline", ""]
        lines += [f"- {entry['time']} **{entry['event']}** {entry.get('message', '')}" for entry in timeline]
    return "\n".join(lines) + "\n"


def explanation(obj: dict[str, Any]) -> dict[str, Any]:
    """The ranked hypotheses of an Investigation, each with the evidence it cites (id,
    agent, kind, summary), as data: what ``kubectl aisre explain -o json|yaml`` prints."""
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    evidence = {e["id"]: e for e in status.get("evidence") or []}
    hypotheses = []
    for rank, h in enumerate(status.get("hypotheses") or [], 1):
        cited = []
        for evidence_id in h.get("evidenceIds") or []:
            item = evidence.get(evidence_id)
            # An id whose item was cut from the status (status.truncated) is still listed.
            cited.append({"id": evidence_id, "agent": item["agent"], "kind": item["kind"], "summary": item["summary"]}
                         if item else {"id": evidence_id, "agent": None, "kind": None, "summary": None})
        hypotheses.append({"rank": rank, "category": h["category"], "resource": h.get("resource"),
                           "confidence": h.get("confidence", 0), "source": h.get("source") or "ranking",
                           "summary": h.get("summary", ""), "evidence": cited})
    return {"investigation": meta.get("name"), "namespace": meta.get("namespace"),
            "state": status.get("state", "Pending"), "target": status.get("target") or _resource((obj.get("spec") or {}).get("target")),
            "rootCause": status.get("rootCause"), "hypotheses": hypotheses}


def render_explanation(data: dict[str, Any]) -> str:
    """``explanation`` as text for a terminal: the hypotheses best first, the evidence under each."""
    lines = [f"Investigation {data['namespace']}/{data['investigation']}: {data['state']}, target {data['target']}"]
    root = data.get("rootCause")
    if root:
        lines.append(f"Root cause: {root['category']} on {_resource(root.get('resource'))} "
                     f"(confidence {root.get('confidence', 0):.2f})")
    if not data["hypotheses"]:
        lines.append("No hypotheses yet." if data["state"] in ("Pending", "Running") else "No hypotheses.")
    for h in data["hypotheses"]:
        lines += ["", f"{h['rank']}. {h['category']} on {_resource(h.get('resource'))}  "
                  f"confidence {h['confidence']:.2f}  ({h['source']})"]
        if h["summary"]:
            lines.append(f"   {h['summary']}")
        if not h["evidence"]:
            lines.append("   evidence: none cited")
        for e in h["evidence"]:
            detail = f"{e['agent']:<10} {e['kind']}: {e['summary']}" if e["agent"] else "(cut from the status)"
            lines.append(f"   - {e['id']:<14} {detail}")
    return "\n".join(lines) + "\n"
