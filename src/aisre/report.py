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
    if actions:
        lines += ["", "## Recommended actions", ""]
        for action in actions:
            params = ", ".join(f"{k}={v}" for k, v in (action.get("parameters") or {}).items())
            lines.append(f"- `{action['id']}` **{action['type']}** {_resource(action.get('target'))}"
                         f"{' (' + params + ')' if params else ''}: {action.get('reason', '')}")
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
