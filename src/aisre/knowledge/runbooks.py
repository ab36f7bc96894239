"""Which Runbooks apply to an Investigation's conclusion, and why.

Pure: the Investigation's status (root cause, hypotheses, evidence), the labels of the root
cause's resource and the Runbook objects decide. A runbook matches when every field of its
``match`` holds; the reasons it matched are kept, so status can say why each was listed.
Text matching is plain and case-insensitive (no regular expressions from a Runbook ever
run in the operator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aisre.api.runbook import Runbook
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.kube.scope import labels_match

MAX_MATCHED = 3  # runbooks listed per Investigation


@dataclass(frozen=True)
class Conclusion:
    """What runbooks are matched against: the root cause and the evidence behind it."""

    category: str
    kind: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    reasons: frozenset[str] = frozenset()  # lower-cased evidence kinds, reasons and log signatures
    log_text: tuple[str, ...] = ()  # lower-cased log templates and sample lines


def evidence_behind(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The evidence the top hypothesis cites (its chain included), and any observed on the
    root cause's resource itself: a runbook is matched on why this cause was named, not on
    every observation of the namespace."""
    hypotheses = status.get("hypotheses") or []
    top = hypotheses[0] if hypotheses else {}
    cited = set(top.get("evidenceIds") or []) | {i for link in top.get("chain") or [] for i in link.get("evidenceIds") or []}
    resource = (status.get("rootCause") or {}).get("resource") or {}
    at = (resource.get("kind"), resource.get("name"))
    return [e for e in status.get("evidence") or []
            if e.get("id") in cited or ((e.get("resource") or {}).get("kind"), (e.get("resource") or {}).get("name")) == at]


def conclusion_of(status: dict[str, Any], labels: dict[str, str] | None = None) -> Conclusion | None:
    """The Investigation's conclusion, or None while it has none."""
    root = status.get("rootCause")
    if not root:
        return None
    resource = root.get("resource") or {}
    reasons: set[str] = set()
    texts: list[str] = []
    for item in evidence_behind(status):
        data = item.get("data") or {}
        reasons.add(str(item.get("kind", "")).lower())
        for key in ("reason", "signature"):
            if data.get(key):
                reasons.add(str(data[key]).lower())
        if data.get("sample"):
            texts.append(str(data["sample"]).lower())
        texts.extend(str(t.get("template", "")).lower() for t in data.get("templates") or [] if isinstance(t, dict))
    return Conclusion(category=root.get("category", ""), kind=resource.get("kind"), name=resource.get("name"),
                      labels=dict(labels or {}), reasons=frozenset(reasons - {""}), log_text=tuple(texts))


def why_it_matches(runbook: Runbook, conclusion: Conclusion) -> list[str] | None:
    """The reasons each given match field holds, or None when one does not. A NoFault
    conclusion matches only a runbook written for NoFault."""
    match = runbook.spec.match
    why: list[str] = []
    if match.categories is not None:
        if conclusion.category not in match.categories:
            return None
        why.append(f"category {conclusion.category}")
    elif conclusion.category == C.NO_FAULT.value:
        return None
    if match.kinds is not None:
        if conclusion.kind not in match.kinds:
            return None
        why.append(f"kind {conclusion.kind}")
    if match.selector is not None:
        if not labels_match(match.selector.to_kube(), conclusion.labels):
            return None
        why.append(f"labels of {conclusion.kind}/{conclusion.name}")
    if match.signal_reasons is not None:
        found = [r for r in match.signal_reasons if r.lower() in conclusion.reasons]
        if not found:
            return None
        why.append(f"evidence {', '.join(found)}")
    if match.log_contains is not None:
        found = [t for t in match.log_contains if any(t.lower() in line for line in conclusion.log_text)]
        if not found:
            return None
        why.append(f"log text {', '.join(repr(t) for t in found)}")
    return why


def needs_labels(runbooks: list[dict[str, Any]]) -> bool:
    """Whether any runbook selects by labels (only then are the resource's labels read)."""
    return any(((rb.get("spec") or {}).get("match") or {}).get("selector") is not None for rb in runbooks)


def matching(runbooks: list[dict[str, Any]], conclusion: Conclusion, namespace: str) -> list[dict[str, Any]]:
    """Status entries for the runbooks that apply, best first: more match fields held, then
    higher priority, then the namespace's own before cluster-wide ones, then by name."""
    found: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for obj in runbooks:
        try:
            runbook = Runbook.model_validate(obj)
        except ValidationError:
            continue  # the API server validates on write; an older object that no longer does is skipped
        why = why_it_matches(runbook, conclusion)
        if why is None:
            continue
        meta = obj.get("metadata") or {}
        spec = runbook.spec
        entry: dict[str, Any] = {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                                 "title": spec.title, "matchedOn": why, "steps": list(spec.steps)}
        if spec.links:
            entry["links"] = [link.to_kube() for link in spec.links]
        if spec.actions:
            entry["actions"] = [action.to_kube() for action in spec.actions]
        order = (-len(why), -spec.priority, meta.get("namespace") != namespace, meta.get("name", ""))
        found.append((order, entry))
    return [entry for _, entry in sorted(found, key=lambda pair: pair[0])[:MAX_MATCHED]]
