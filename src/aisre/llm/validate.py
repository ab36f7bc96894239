"""The gate an LLM hypothesis passes before it counts: a category of the taxonomy, a
resource that appears in the evidence (so it was observed in the cluster), and evidence
ids that exist, at least one. Anything else is discarded and the discard recorded with
its reason. Pure.

A hypothesis that passes still carries no action: recommended actions come from the
typed catalog for the best *deterministic* hypothesis only (see aisre.operator.llm_step).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aisre.api.taxonomy import RootCauseCategory
from aisre.llm.redact import redact_text

# LLM confidences are not calibrated against the scenario suite; they are capped below
# what the deterministic ranking reports when it is sure.
MAX_LLM_CONFIDENCE = 0.6
MAX_DISCARDED = 10


@dataclass(frozen=True)
class LLMHypothesis:
    category: RootCauseCategory
    resource: str
    summary: str
    confidence: float
    evidence_ids: tuple[str, ...]


@dataclass(frozen=True)
class Discarded:
    category: str
    resource: str
    reason: str


def _text(value: Any, limit: int) -> str:
    return redact_text(str(value if value is not None else ""))[:limit]


def validate(raw: Any, known_ids: set[str], known_resources: set[str],
             suspect_ids: frozenset[str] | set[str] = frozenset()) -> tuple[list[LLMHypothesis], list[Discarded]]:
    """Split the model's ``submit_hypotheses`` argument into accepted and discarded.
    ``suspect_ids``: evidence whose text reads like instructions; citing only those is not support."""
    accepted: list[LLMHypothesis] = []
    discarded: list[Discarded] = []
    if not isinstance(raw, list):
        return [], [Discarded("", "", "malformed answer: hypotheses is not a list")]
    for item in raw[:MAX_DISCARDED]:
        if not isinstance(item, dict):
            discarded.append(Discarded("", "", "malformed answer: a hypothesis is not an object"))
            continue
        category, resource = _text(item.get("category"), 64), _text(item.get("resource"), 256)
        ids = item.get("evidence_ids")
        ids = [str(i) for i in ids] if isinstance(ids, list) else []
        reason = None
        try:
            parsed = RootCauseCategory(category)
        except ValueError:
            reason = f"category {category!r} is not in the taxonomy"
        if reason is None and resource not in known_resources:
            reason = f"resource {resource!r} does not appear in the evidence"
        missing = [i for i in ids if i not in known_ids]
        if reason is None and (missing or not ids):
            reason = f"cites evidence ids that do not exist: {', '.join(missing)[:200]}" if missing \
                else "cites no evidence"
        if reason is None and not set(ids) - set(suspect_ids):
            reason = "cites only evidence whose text reads like instructions"
        if reason is not None:
            discarded.append(Discarded(category, resource, reason))
            continue
        try:
            confidence = min(MAX_LLM_CONFIDENCE, max(0.0, float(item.get("confidence", 0.0))))
        except (TypeError, ValueError):
            confidence = 0.0
        accepted.append(LLMHypothesis(parsed, resource, _text(item.get("summary"), 400), round(confidence, 3),
                                      tuple(dict.fromkeys(ids))[:16]))
    return accepted, discarded


def known_resources(findings: Iterable[Any], extra: Iterable[str] = ()) -> set[str]:
    """Kind/name of every object the evidence was observed on or names as an owner."""
    names = set(extra)
    for finding in findings:
        if finding.resource is not None:
            names.add(f"{finding.resource.kind}/{finding.resource.name}")
        owner = finding.data.get("owner") if isinstance(finding.data, dict) else None
        if isinstance(owner, str) and "/" in owner:
            names.add(owner)
    names.discard("")
    return names
